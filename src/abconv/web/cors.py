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

from collections.abc import Callable

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
        if request.method == "OPTIONS":  # Flask's automatic answer, made a preflight's
            response.status_code = 204
            response.set_data(b"")
        allowed = current_app.config["ABCONV"].allowed_origins
        if "*" not in allowed and allowed:
            response.vary.add("Origin")
        origin = request.headers.get("Origin")
        if origin is None or not allowed:
            return response
        if "*" in allowed:
            response.headers["Access-Control-Allow-Origin"] = "*"
        elif origin.rstrip("/") in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
        else:
            return response
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return response

    return add_headers
