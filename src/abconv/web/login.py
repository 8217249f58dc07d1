"""The login form for people: ``GET/POST /login``, ``POST /logout``.

Scripts send the password with each request (:mod:`abconv.web.auth`); a
person types it once here and the browser keeps a signed session cookie
(:mod:`abconv.web.session`). The form is guarded like the other admin
routes: from this machine only when no ``ABCONV_ADMIN_PASSWORD`` is set, and
wrong passwords count towards the same lockout (:mod:`abconv.web.attempts`).

Both forms carry a CSRF token: a random value kept in the session and
repeated in a hidden field, compared in constant time. A page elsewhere
can make the browser post, but cannot read the token, so it cannot log a
person out, nor into an account of its choosing.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, redirect, render_template, request, session
from werkzeug.wrappers import Response

from abconv.errors import AbconvError
from abconv.web.admin_secret import PASSWORD_FILE
from abconv.web.auth import check_client, failed_attempt, gate

bp = Blueprint("login", __name__)


def init_app(app: Flask) -> None:
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.register_blueprint(bp)


def csrf_token() -> str:
    """The session's CSRF token, made on first need."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse a form post whose token is not the session's."""
    held, given = session.get("csrf"), request.form.get("csrf_token", "")
    if not isinstance(held, str) or not hmac.compare_digest(held.encode(), given.encode()):
        raise AbconvError(
            "csrf_refused",
            "this form is out of date or was sent from another site; open the page again "
            "and send it from there",
            400,
        )


@bp.get("/login")
def form() -> str:
    check_client(gate())
    return _form_page()


@bp.post("/login")
def log_in() -> Response | tuple[str, int]:
    admin = gate()
    check_client(admin)
    check_csrf()
    if not admin.check(request.form.get("password", "")):
        failed_attempt(admin)
        return _form_page(wrong=True), 401
    session.clear()  # a fresh cookie and token for the new login
    session["admin"] = admin.fingerprint(current_app.secret_key or "")
    csrf_token()
    return redirect(_safe_next(request.form.get("next", "")), 303)


@bp.post("/logout")
def log_out() -> Response:
    check_csrf()
    session.clear()
    return redirect("/login", 303)


def _form_page(wrong: bool = False) -> str:
    return render_template(
        "pages/login.html",
        wrong=wrong,
        next=_safe_next(request.values.get("next", "")),
        local_only=gate().local_only,
        password_file=PASSWORD_FILE,
    )


def _safe_next(target: str) -> str:
    """Where to go after logging in: a path on this server, or the dashboard.

    ``//evil.example`` and ``/\\evil.example`` are other sites to a browser.
    """
    parts = urlsplit(target)
    if (
        not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or parts.scheme
        or parts.netloc
        or any(c in target for c in "\r\n\t")
    ):
        return "/"
    return target
