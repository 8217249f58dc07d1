"""The one place where exceptions become replies.

API routes (``/api/...``, ``/healthz``, ``/metrics``) answer
``{"error": {"code", "message"}}`` with a 4xx status (503 when the database is
unreachable); pages get a short HTML page. A traceback is logged, never shown.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, jsonify, make_response, render_template, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from abconv.errors import AbconvError
from abconv.store import UNAVAILABLE
from abconv.web.metrics import count_error

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def init_app(app: Flask) -> None:
    app.register_error_handler(AbconvError, _abconv_error)
    app.register_error_handler(HTTPException, _http_error)
    for unavailable in (*UNAVAILABLE, DBAPIError):
        app.register_error_handler(unavailable, _database_down)
    app.register_error_handler(Exception, _unexpected)


def error_reply(
    code: str, message: str, status: int, details: list[str] | None = None
) -> tuple[Response | str, int]:
    count_error(code)
    if not _wants_json():
        return render_template("pages/error.html", status=status, message=message), status
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return jsonify(error=body), status


def _wants_json() -> bool:
    path = request.path
    return path == "/api" or path.startswith("/api/") or path in ("/healthz", "/metrics")


def _abconv_error(error: AbconvError) -> tuple[Response | str, int]:
    reply, status = error_reply(error.code, error.message, error.status, error.details)
    headers = dict(error.headers)
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="abconv"'
    if not isinstance(reply, Response):  # an HTML page
        reply = make_response(reply)
    reply.headers.update(headers)
    return reply, status


def _http_error(error: HTTPException) -> tuple[Response | str, int] | Response:
    status = error.code or 500
    if status == 413:
        message = f"the body is over the limit of {current_app.config['MAX_CONTENT_LENGTH']} bytes"
    else:
        message = error.description or error.name
    reply, status = error_reply(HTTP_CODES.get(status, "http_error"), message, status)
    if isinstance(reply, Response):
        reply.headers.extend(
            (k, v) for k, v in error.get_headers() if k in ("Allow", "WWW-Authenticate")
        )
    return reply, status


def _database_down(error: Exception) -> tuple[Response | str, int]:
    current_app.logger.error("database unavailable: %s", error)
    return error_reply("database_unavailable", "the database is not reachable; try again", 503)


def _unexpected(error: Exception) -> tuple[Response | str, int]:
    current_app.logger.exception("unexpected error on %s %s", request.method, request.path)
    return error_reply("internal_error", "something went wrong on the server", 500)
