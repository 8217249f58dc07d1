"""What every reply says about itself: the proxies believed, browser defences, cookies.

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
- The session cookie (unused today, but Flask's) is ``HttpOnly``,
  ``SameSite=Lax``, and ``Secure`` whenever the request came over HTTPS.
"""

from __future__ import annotations

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
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
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.session_interface = _SecureWhenHttps()
    app.after_request(_add_security_headers)


def _add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class _SecureWhenHttps(SecureCookieSessionInterface):
    """Flask's cookie session, ``Secure`` per request rather than per config."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure
