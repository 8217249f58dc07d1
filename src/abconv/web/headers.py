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
  one rule is easier to check than two.

The login cookie has a module of its own, :mod:`abconv.web.session`.
"""

from __future__ import annotations

from flask import Flask
from flask.wrappers import Response
from werkzeug.middleware.proxy_fix import ProxyFix

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
    hops = app.config["ABCONV"].trusted_proxies
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )
    app.after_request(_add_security_headers)


def _add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
