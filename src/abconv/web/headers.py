"""What every reply says about itself: the proxies believed, browser defences.

- ``ABCONV_TRUSTED_PROXIES`` = N wraps the app in werkzeug's ``ProxyFix`` for
  N hops of ``X-Forwarded-For/-Proto/-Host/-Port/-Prefix``: the client
  address (the admin check, the attempt counts) and the scheme (``Secure``
  cookies, the origin of admin writes) then come from the last N proxies.
  With 0, the default, no forwarding header is believed.
- Every reply gets ``X-Content-Type-Options: nosniff``, a Content Security
  Policy with no inline script or style and no framing, ``X-Frame-Options``
  for browsers without CSP level 2, and a ``Referrer-Policy`` that keeps
  dashboard URLs to this server. JSON replies get them too: harmless, and
  one rule is easier to check than two. They are added by a WSGI wrapper
  to the header list each reply starts with (a few appends, where a Flask
  hook would go through werkzeug's header checks four times per request),
  unless the reply already has one of that name.

The login cookie has a module of its own, :mod:`abconv.web.session`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def init_app(app: Flask) -> None:
    app.wsgi_app = SecurityHeaders(app.wsgi_app, SECURITY_HEADERS)  # type: ignore[method-assign]
    hops = app.config["ABCONV"].trusted_proxies
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )


class SecurityHeaders:
    """WSGI middleware adding ``headers`` to every reply that lacks one of their names."""

    def __init__(self, app: WSGIApplication, headers: Mapping[str, str]) -> None:
        self.app = app
        self.headers = list(headers.items())  # the header list a reply gets, made once
        self.names = frozenset(name.lower() for name in headers)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> object:
            present = self.names.intersection(name.lower() for name, _ in headers)
            if present:
                headers.extend(h for h in self.headers if h[0].lower() not in present)
            else:
                headers.extend(self.headers)
            return start_response(status, headers, exc_info)  # type: ignore[arg-type]

        return self.app(environ, start)  # type: ignore[arg-type]
