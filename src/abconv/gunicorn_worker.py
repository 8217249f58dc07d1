"""The gunicorn worker of ``abconv serve``: gunicorn's threaded worker, made
fit for clients on the internet.

Four small changes, each for a failure seen with the stock workers:

- A client that goes quiet in the middle of its request (headers sent, body
  promised and not sent) held a sync worker until gunicorn's ``timeout``
  killed it, 30 s, and two such clients stalled the whole server. Here such a
  client holds one thread at most :data:`READ_TIMEOUT_SECONDS` per silence
  (``SO_RCVTIMEO`` on its socket, and ``SO_SNDTIMEO`` for one that stops
  reading), then is cut off.
- gunicorn accepts connections while every thread is busy and queues them
  behind the stuck ones; a worker here stops accepting while its threads are
  all taken, so new connections go to a worker that can answer them now.
- A keep-alive connection carries at most :data:`KEEPALIVE_REQUESTS`
  requests, so that a few long-lived connections spread over the workers.
- Requests gunicorn refuses before the app sees them (request line or headers
  too long, not HTTP at all) get the API's JSON error envelope, with the same
  status, instead of gunicorn's HTML page.

Relies on gunicorn 27's ``ThreadWorker`` (``enqueue_req``, ``finish_request``,
``set_accept_enabled``), whose behaviour ``tests/test_server*.py`` pins.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
from typing import Any

from gunicorn.http import errors as http
from gunicorn.workers.gthread import ThreadWorker

# Long enough for a phone on a bad network to send the next packet, short
# enough that a stalled client frees its thread soon.
READ_TIMEOUT_SECONDS = 10

# Requests one keep-alive connection may carry before the worker closes it
# (Apache's default; nginx closes after 1,000). A connection stays with the
# worker that accepted it: a proxy's or load tester's few long-lived
# connections could all sit on one worker while the other idled (seen: 16
# of 16, at half the throughput). Reconnecting, they go to a worker with a
# free thread. A reconnection costs about what one request does.
KEEPALIVE_REQUESTS = 100

# gunicorn's refusal → (status, reason phrase, error code); the messages are
# made in _message(). Anything else keeps gunicorn's own handling.
REFUSALS: tuple[tuple[type[Exception] | tuple[type[Exception], ...], int, str, str], ...] = (
    (http.LimitRequestLine, 414, "URI Too Long", "request_line_too_long"),
    (http.LimitRequestHeaders, 431, "Request Header Fields Too Large", "headers_too_large"),
    (
        (
            http.InvalidRequestLine,
            http.InvalidRequestMethod,
            http.InvalidHTTPVersion,
            http.InvalidHeader,
            http.InvalidHeaderName,
            http.ObsoleteFolding,
            http.InvalidChunkSize,
            http.ChunkMissingTerminator,
            http.InvalidChunkExtension,
        ),
        400,
        "Bad Request",
        "bad_request",
    ),
)
# Subclasses of InvalidHeader that are the app's fault, not the client's.
APP_FAULTS = (http.InvalidResponseHeader, http.InvalidResponseHeaderName)


class AbconvWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's ``gthread`` worker with a read timeout, accepting only while
    a thread is free, and JSON refusals."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_threads = 0  # connections handed to the pool and not finished

    def init_process(self) -> None:
        self.log.error_log.addFilter(quiet_timeouts)
        super().init_process()

    def handle(self, conn: Any) -> Any:
        """Runs in a pool thread, once per request on ``conn``."""
        timeval = struct.pack("ll", READ_TIMEOUT_SECONDS, 0)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        # The same bound for a client that stops reading its replies.
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        return super().handle(conn)

    def handle_request(self, req: Any, conn: Any) -> Any:
        """Runs in a pool thread; the last request a connection may carry says
        ``Connection: close``."""
        served = conn.abconv_served = getattr(conn, "abconv_served", 0) + 1
        if served >= KEEPALIVE_REQUESTS:
            req.must_close = True
        return super().handle_request(req, conn)

    # enqueue_req and finish_request run on the worker's main thread only.
    def enqueue_req(self, conn: Any) -> None:
        self.in_threads += 1
        super().enqueue_req(conn)
        self._update_accepting()

    def finish_request(self, conn: Any, fs: Any) -> None:
        self.in_threads -= 1
        super().finish_request(conn, fs)
        self._update_accepting()

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and self.in_threads < self.cfg.threads)

    def _update_accepting(self) -> None:
        self.set_accept_enabled(self.alive and self.nr_conns < self.worker_connections)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: Exception) -> None:
        refusal = _refusal(exc)
        if refusal is None:
            super().handle_error(req, client, addr, exc)
            return
        status, reason, code = refusal
        peer = addr[0] if addr else "unix socket"
        self.log.warning("refused a request from %s: %s %s", peer, status, exc)
        body = json.dumps({"error": {"code": code, "message": _message(code, exc, self.cfg)}})
        head = (
            f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            "Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        try:
            client.sendall((head + body).encode("latin-1"))
        except OSError:
            pass  # the client is gone; nothing to tell


def _refusal(exc: Exception) -> tuple[int, str, str] | None:
    if isinstance(exc, APP_FAULTS):
        return None
    for kinds, status, reason, code in REFUSALS:
        if isinstance(exc, kinds):
            return status, reason, code
    return None


def _message(code: str, exc: Exception, cfg: Any) -> str:
    if code == "request_line_too_long":
        return (
            f"the request line (method, URL and version) is over {cfg.limit_request_line} "
            "bytes; send long data in a POST body"
        )
    if code == "headers_too_large":
        return (
            f"the request headers are too large: at most {cfg.limit_request_fields} headers "
            f"of {cfg.limit_request_field_size} bytes each"
        )
    detail = str(exc)
    return f"not a valid HTTP request: {detail[:200]}{'...' if len(detail) > 200 else ''}"


def quiet_timeouts(record: logging.LogRecord) -> bool:
    """gunicorn logs a traceback when a stalled client trips the socket
    timeouts outside the app (reading headers, writing); one line says it all."""
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, BlockingIOError | TimeoutError):
        record.msg, record.args, record.exc_info = (
            "closed a connection stalled for %d s (sending its request or reading the reply)",
            (READ_TIMEOUT_SECONDS,),
            None,
        )
        record.levelno, record.levelname = logging.INFO, "INFO"
    return True
