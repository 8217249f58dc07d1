"""The login cookie: Flask's signed session, kept small and strict.

- Signed with ``ABCONV_SECRET_KEY``, or without it with the key abconv
  generates in the instance folder (:mod:`abconv.web.admin_secret`) the first
  time a cookie is read or written, so that every worker signs alike.
- ``HttpOnly``, ``SameSite=Lax``, and ``Secure`` whenever the request came
  over HTTPS (behind a proxy: when ``ABCONV_TRUSTED_PROXIES`` lets
  ``X-Forwarded-Proto`` say so). It lasts until the browser closes, and a
  signature older than ``LIFETIME`` is refused even then.
- A request without the cookie (every visitor's ``/api/assign``) never
  touches the key, so a server that no person logs in to writes no key file.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.wrappers import Request
from itsdangerous import URLSafeTimedSerializer

from abconv.web.admin_secret import generated_secret_key

LIFETIME = timedelta(hours=12)


def init_app(app: Flask) -> None:
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="abconv_session",
        PERMANENT_SESSION_LIFETIME=LIFETIME,
    )
    app.secret_key = app.config["ABCONV"].secret_key
    app.session_interface = CookieSession()


class CookieSession(SecureCookieSessionInterface):
    """Flask's cookie session, ``Secure`` per request and with a key made on first need."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            app.secret_key = generated_secret_key(app.config["ABCONV"].instance_dir)
        return super().get_signing_serializer(app)
