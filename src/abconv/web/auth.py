"""The admin check: the dashboard, results and definition APIs.

With ``ABCONV_ADMIN_PASSWORD`` set, a request needs it as the password of
HTTP Basic auth (any user name) or as a ``Bearer`` token. Without it, only
direct requests from this machine pass: a request that came through a proxy
(``X-Forwarded-For``) does not count as local.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, request

from abconv.errors import AbconvError

View = TypeVar("View", bound=Callable[..., Any])


def admin_required(view: View) -> View:
    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        check_admin()
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def check_admin() -> None:
    password = current_app.config["ABCONV"].admin_password
    if password is None:
        if not _is_local_request():
            raise AbconvError(
                "forbidden",
                "set ABCONV_ADMIN_PASSWORD to reach this from another machine",
                403,
            )
        return
    given = _given_password()
    if given is None or not hmac.compare_digest(given.encode(), password.encode()):
        raise AbconvError("unauthorized", "the admin password is required", 401)


def _given_password() -> str | None:
    if request.authorization is None:
        return None
    if request.authorization.type == "basic":
        return request.authorization.password
    return request.authorization.token


def _is_local_request() -> bool:
    if request.headers.get("X-Forwarded-For"):
        return False
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False
