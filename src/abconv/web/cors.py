"""CORS for the public routes, from ``ABCONV_ALLOWED_ORIGINS``."""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app, request
from flask.wrappers import Response


def allow_cross_origin(public: set[str]) -> Callable[[Response], Response]:
    """An ``after_request`` hook that answers allowed origins on the ``public`` endpoints."""

    def add_headers(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin is None or request.endpoint not in public:
            return response
        allowed = current_app.config["ABCONV"].allowed_origins
        if "*" in allowed or origin.rstrip("/") in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type"
            response.headers["Access-Control-Max-Age"] = "86400"
        response.vary.add("Origin")
        return response

    return add_headers
