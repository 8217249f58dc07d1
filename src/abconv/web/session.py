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
- The public JSON routes (``PUBLIC_PATHS``: a visitor's assignment and
  conversion, the health check) have no session at all: their replies and
  errors never read it, so the cookie is not even parsed, nor the reply's
  cookie considered. On the other routes a request without the cookie skips
  the parse too, and a session nobody read or changed is not saved.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NoReturn

from flask import Flask, request
from flask.sessions import (
    NullSession,
    SecureCookieSession,
    SecureCookieSessionInterface,
    SessionMixin,
)
from flask.wrappers import Request, Response
from itsdangerous import URLSafeTimedSerializer

from abconv.web.admin_secret import generated_secret_key

LIFETIME = timedelta(hours=12)
PUBLIC_PATHS = frozenset({"/api/assign", "/api/convert", "/healthz"})


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
        if request.path in PUBLIC_PATHS:
            return NoSession()
        name = self.get_cookie_name(app)
        if name not in request.environ.get("HTTP_COOKIE", "") or name not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not (session or session.accessed or session.modified):
            return  # what Flask's method would do, less working out the cookie's settings
        super().save_session(app, session, response)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            app.secret_key = generated_secret_key(app.config["ABCONV"].instance_dir)
        return super().get_signing_serializer(app)


class NoSession(NullSession):
    """The session of a public route: empty, never saved, and not to be written."""

    def _fail(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError(f"the public routes ({', '.join(sorted(PUBLIC_PATHS))}) have no session")

    __setitem__ = __delitem__ = clear = pop = popitem = update = setdefault = _fail
    del _fail
