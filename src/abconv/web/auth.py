"""The admin check: the dashboard, definitions, results and batch writes.

A secret is always needed, because a proxy on this machine that adds no
forwarding header makes every request look local:

- with ``ABCONV_ADMIN_PASSWORD`` set, anyone who gives it gets in;
- without it, the password abconv generated in the instance folder
  (:mod:`abconv.web.admin_secret`) is needed *and* the request must come
  from a loopback address; from elsewhere it is 403 ``forbidden``.

Scripts give the password in HTTP Basic auth (any user name) or as a
``Bearer`` token; people type it into the login form
(:mod:`abconv.web.login`), which leaves a signed session cookie holding a
fingerprint of the password (a changed password logs everyone out). A
page asked for with neither goes to the login form; an API route answers
401 JSON. The client's address is the socket peer, rewritten only by
``ProxyFix`` for the ``ABCONV_TRUSTED_PROXIES`` hops (:mod:`abconv.web.headers`);
``X-Forwarded-For``, ``Forwarded`` and ``X-Real-IP`` count for nothing
otherwise. Wrong passwords are counted per client (:mod:`abconv.web.attempts`).

Admin writes must also be JSON and, when the browser names an ``Origin``,
come from the server's own: a page elsewhere cannot post a form or a
``text/plain`` beacon with the Basic credentials or the cookie a browser
holds.
A ``Bearer`` token is exempt from the origin check, as no browser attaches
one by itself.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, abort, current_app, redirect, request, session, url_for

from abconv.errors import AbconvError
from abconv.web.admin_secret import PASSWORD_FILE, generated_password
from abconv.web.attempts import WINDOW_SECONDS, FailedAttempts

View = TypeVar("View", bound=Callable[..., Any])
EXTENSION = "abconv.admin"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class AdminGate:
    """What the check needs, kept per app (so per worker process)."""

    configured_password: str | None
    instance_dir: Path
    attempts: FailedAttempts = field(default_factory=FailedAttempts)
    _generated: str | None = None

    @property
    def local_only(self) -> bool:
        return self.configured_password is None

    def check(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.password().encode())

    def fingerprint(self, secret_key: str | bytes) -> str:
        """What the login cookie holds: the password's HMAC under the signing key."""
        key = secret_key.encode() if isinstance(secret_key, str) else secret_key
        return hmac.new(key, self.password().encode(), "sha256").hexdigest()

    def password(self) -> str:
        """The configured password, or the generated one (read on first need)."""
        if self.configured_password is not None:
            return self.configured_password
        if self._generated is None:
            self._generated = generated_password(self.instance_dir)
        return self._generated


def init_app(app: Flask) -> None:
    settings = app.config["ABCONV"]
    app.extensions[EXTENSION] = AdminGate(settings.admin_password, settings.instance_dir)


def admin_required(view: View) -> View:
    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        check_admin()
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def gate() -> AdminGate:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]


def check_admin() -> None:
    admin = gate()
    check_client(admin)
    admin.password()  # the generated one is written now, if it is the first time
    given, bearer = _given_password()
    if given is None and logged_in(admin):
        bearer = False  # the cookie: writes are checked as with Basic
    elif given is None:
        if request.blueprint == "pages":
            abort(redirect(url_for("login.form", next=request.full_path.rstrip("?"))))
        raise AbconvError("unauthorized", _password_hint(admin), 401)
    elif not admin.check(given):
        failed_attempt(admin)
        raise AbconvError("unauthorized", "wrong admin password", 401)
    if request.method not in READ_METHODS:
        _check_write(bearer)


def check_client(admin: AdminGate) -> None:
    """Refuse another machine when no password is set, and a client locked out."""
    client = request.remote_addr or ""
    if admin.local_only and not is_loopback(client):
        raise AbconvError(
            "forbidden",
            "no ABCONV_ADMIN_PASSWORD is set, so the admin routes answer only on the "
            "server's own machine; set one to reach them from elsewhere",
            403,
        )
    wait = admin.attempts.retry_after(client)
    if wait is not None:
        current_app.logger.warning(
            "admin: refused %s on %s %s: too many wrong passwords, %d s to wait",
            client, request.method, request.path, wait,
        )  # fmt: skip
        raise AbconvError(
            "too_many_attempts",
            f"too many wrong admin passwords from this address; try again in {wait} s",
            429,
            headers={"Retry-After": str(wait)},
        )


def failed_attempt(admin: AdminGate) -> None:
    client = request.remote_addr or ""
    failures = admin.attempts.record_failure(client)
    current_app.logger.warning(
        "admin: wrong password from %s on %s %s (%d within %d s)",
        client, request.method, request.path, failures, WINDOW_SECONDS,
    )  # fmt: skip


def logged_in(admin: AdminGate) -> bool:
    """Whether the login cookie holds the current password's fingerprint."""
    held = session.get("admin")
    if not isinstance(held, str) or current_app.secret_key is None:
        return False
    return hmac.compare_digest(held, admin.fingerprint(current_app.secret_key))


def is_loopback(address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped.is_loopback
    return parsed.is_loopback


def _given_password() -> tuple[str | None, bool]:
    """The password given and whether it came as a Bearer token."""
    credentials = request.authorization
    if credentials is None:
        return None, False
    if credentials.type == "basic":
        return credentials.password, False
    if credentials.type == "bearer":
        return credentials.token, True
    return None, False


def _password_hint(admin: AdminGate) -> str:
    if admin.local_only:
        return (
            "the admin password is required: the one abconv generated in "
            f"its instance folder ({PASSWORD_FILE}), as Basic auth or a Bearer token"
        )
    return "the admin password is required, as Basic auth or a Bearer token"


def _check_write(bearer: bool) -> None:
    if request.mimetype != "application/json":
        raise AbconvError(
            "unsupported_media_type", "admin writes need Content-Type: application/json", 415
        )
    if bearer:
        return
    origin = request.headers.get("Origin")
    own = request.host_url.rstrip("/")
    cross_site = request.headers.get("Sec-Fetch-Site") == "cross-site"
    if cross_site or (origin is not None and origin.rstrip("/") != own):
        raise AbconvError(
            "cross_site_request",
            f"admin writes from another site are refused (Origin {origin!r}, this server "
            f"is {own!r}); send the password as a Bearer token from scripts",
            403,
        )
