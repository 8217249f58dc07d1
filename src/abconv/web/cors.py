"""CORS for the public routes, from ``ABCONV_ALLOWED_ORIGINS``.

No route needs cookies or credentials across sites, so
``Access-Control-Allow-Credentials`` is never sent: with ``*`` every origin
gets ``Access-Control-Allow-Origin: *``, with a list a listed origin is
echoed (and ``Vary: Origin`` tells caches the reply depends on it). A
preflight ``OPTIONS`` on a public route answers 204, with the allow headers
only for an allowed origin. Admin routes never get CORS headers: a browser
page elsewhere has no business reading them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from flask import current_app, request
from flask.wrappers import Response

ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Content-Type"
PREFLIGHT_MAX_AGE = "86400"  # seconds a browser may cache the preflight answer


def allow_cross_origin(public: set[str]) -> Callable[[Response], Response]:
    """An ``after_request`` hook that answers allowed origins on the ``public`` endpoints."""

    def add_headers(response: Response) -> Response:
        if request.endpoint not in public:
            return response
        preflight = request.method == "OPTIONS"
        if preflight:  # Flask's automatic answer, made a preflight's
            response.status_code = 204
            response.set_data(b"")
        allowed = current_app.config["ABCONV"].allowed_origins
        vary, headers = cors_headers(allowed, request.headers.get("Origin"), preflight)
        if vary:
            response.vary.add("Origin")
        response.headers.update(headers)
        return response

    return add_headers


def cors_headers(
    allowed: Collection[str], origin: str | None, preflight: bool
) -> tuple[bool, list[tuple[str, str]]]:
    """For a public route's reply to ``origin``: whether it varies with the
    origin, and the CORS headers it gets (``allowed``: ABCONV_ALLOWED_ORIGINS)."""
    vary = bool(allowed) and "*" not in allowed
    if origin is None or not allowed:
        return vary, []
    if "*" in allowed:
        headers = [("Access-Control-Allow-Origin", "*")]
    elif origin.rstrip("/") in allowed:
        headers = [("Access-Control-Allow-Origin", origin)]
    else:
        return vary, []
    if preflight:
        headers += [
            ("Access-Control-Allow-Methods", ALLOWED_METHODS),
            ("Access-Control-Allow-Headers", ALLOWED_HEADERS),
            ("Access-Control-Max-Age", PREFLIGHT_MAX_AGE),
        ]
    return vary, headers
