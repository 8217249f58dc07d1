"""One-line ``key=value`` logs, each carrying the id of the request it belongs to.

Every request gets an id: the caller's ``X-Request-Id`` when it is 1-64
characters of ``A-Z a-z 0-9 . _ : -`` (a proxy's id, so its lines and ours
can be matched), else a fresh one. The reply sends it back in
``X-Request-Id``; every line the ``abconv`` loggers write while the request
runs carries it as ``request_id``, and one ``abconv.access`` line per
request gives method, endpoint, path, status and duration. Headers, query
strings and bodies are never logged, so neither are passwords.

A line looks like::

    time=2026-11-29T21:04:05.123Z level=info logger=abconv.access request_id=4f0c…
    method=GET endpoint=api.assign path=/api/assign status=200 duration_ms=2.41

(on one line). Values with anything but ``A-Z a-z 0-9 . _ : / @ + -`` are
quoted with JSON escapes, so a newline in a path or a traceback never
starts a line of its own.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import Any

from flask import Flask, Response, current_app, g, has_request_context, request
from flask.logging import default_handler

LOGGER = "abconv"
ACCESS_LOGGER = "abconv.access"
REQUEST_ID_HEADER = "X-Request-Id"
MAX_LOGGED_PATH = 200
UNMATCHED = "none"

# Where the hot routes (abconv.web.fast_lane), served without Flask's request
# context, keep their request's id for log lines, and hand it and their start
# time to Flask in the WSGI environ when Flask answers for them.
FAST_REQUEST_ID: ContextVar[str | None] = ContextVar("abconv_request_id", default=None)
ENVIRON_REQUEST_ID = "abconv.request_id"
ENVIRON_STARTED = "abconv.started"

_ACCESS = logging.getLogger(ACCESS_LOGGER)
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_BARE_VALUE = re.compile(r"[A-Za-z0-9._:/@+-]+")


def init_app(app: Flask) -> None:
    """Send the app's log lines to stderr in this format and log each request.

    Call it before anything logs through ``app.logger``. ``ACCESS_LOG =
    False`` in the app's config silences the access lines (the simulator
    sends thousands of in-process requests).
    """
    _install_handler()
    app.logger.removeHandler(default_handler)
    app.before_request(_start_request)
    app.after_request(_finish_request)


def current_request_id() -> str | None:
    """The id of the request being served, or ``None`` outside a request."""
    if has_request_context():
        return g.get("request_id")  # type: ignore[no-any-return]
    return FAST_REQUEST_ID.get()


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request's id (``-`` outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() or "-"
        return True


class LogfmtFormatter(logging.Formatter):
    """``time level logger request_id msg`` and a record's ``fields``, on one line."""

    _second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text

    def format(self, record: logging.LogRecord) -> str:
        pairs: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", None) or current_request_id() or "-",
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            pairs.update(fields)
        else:
            pairs["msg"] = record.getMessage()
        if record.exc_info:
            pairs["exc"] = self.formatException(record.exc_info)
        return " ".join(f"{key}={_value(value)}" for key, value in pairs.items())

    def _time(self, created: float) -> str:
        """``2026-11-29T21:04:05.123Z``; the part up to the second is made once a second."""
        second = int(created)
        micro = round((created - second) * 1_000_000)  # as datetime rounds it
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        done, text = self._second
        if done != second:
            text = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
            self._second = (second, text)
        return f"{text}{micro // 1000:03d}Z"


def _value(value: Any) -> str:
    if type(value) is int or type(value) is float:  # digits, '.', '-', 'e', inf, nan
        return str(value)
    text = str(value)
    return text if _BARE_VALUE.fullmatch(text) else json.dumps(text)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (gunicorn's error log
    when served, the capture of a test), never to a stream closed since."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def _install_handler() -> None:
    """Configure the ``abconv`` logger once per process, however many apps it builds."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.INFO)
    if any(isinstance(h, _StderrHandler) for h in logger.handlers):
        return
    handler = _StderrHandler()
    handler.setFormatter(LogfmtFormatter())
    handler.addFilter(RequestIdFilter())  # for records of the child loggers
    logger.addHandler(handler)
    logger.addFilter(RequestIdFilter())  # for any other handler of its records (tests)


def _start_request() -> None:
    given = request.environ.get(ENVIRON_REQUEST_ID) or request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = request_id_from(given)
    g.request_started = request.environ.get(ENVIRON_STARTED) or time.perf_counter()


def request_id_from(given: str) -> str:
    """The caller's request id if sane, else a fresh one."""
    return given if _SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _finish_request(response: Response) -> Response:
    request_id = current_request_id()
    if request_id is None:  # a hook registered before ours failed: still give an id
        request_id = g.request_id = uuid.uuid4().hex
    response.headers[REQUEST_ID_HEADER] = request_id
    if current_app.config.get("ACCESS_LOG", True):
        log_access(
            request_id, request.method, endpoint_name(), request.path, response.status_code,
            request_seconds(),
        )  # fmt: skip
    return response


def log_access(
    request_id: str, method: str, endpoint: str, path: str, status: int, seconds: float | None
) -> None:
    """The ``abconv.access`` line of a request (see the module's docstring)."""
    if not _ACCESS.isEnabledFor(logging.INFO):
        return
    fields = {
        "method": method[:16],
        "endpoint": endpoint,
        "path": path[:MAX_LOGGED_PATH],
        "status": status,
        "duration_ms": "-" if seconds is None else round(seconds * 1000, 2),
    }
    # What ``logger.info`` does, less its walk up the stack for a file and
    # line that the line never shows.
    record = _ACCESS.makeRecord(
        ACCESS_LOGGER, logging.INFO, "(unknown file)", 0, "%s %s %s",
        (fields["method"], fields["path"], status), None,
        extra={"fields": fields, "request_id": request_id},
    )  # fmt: skip
    _ACCESS.handle(record)


def endpoint_name() -> str:
    """The name of the route serving the request: ``none`` for unknown paths and
    methods, so that callers cannot invent new values of a log field or label."""
    return request.endpoint or UNMATCHED


def request_seconds() -> float | None:
    """Seconds since the current request started (``None`` if it was never timed)."""
    started = g.get("request_started")
    return None if started is None else time.perf_counter() - started
