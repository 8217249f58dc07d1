"""The hot public routes, answered without Flask's request machinery.

Every page view of a site pays for ``GET /api/assign`` or ``GET /lp/KEY``,
every conversion for ``POST /api/convert``. Flask's request context, URL
routing, hooks and Response objects cost about 130 µs a request, more than
abconv's own work for a returning visitor (README, "Performance"). This
WSGI layer answers those requests itself when they are plain, with the
functions the Flask routes call (:func:`abconv.web.api.assign_reply`,
:func:`~abconv.web.api.convert_reply`, :func:`abconv.service.assign_visitor`)
and the same request id, access line, metrics and CORS headers.

Everything else goes to Flask untouched: other paths and methods, a body of
unknown length or over the limit, a landing page that renders a template,
a draft, ``force``. An error raised while answering is handed to Flask's
error handlers (:mod:`abconv.web.errors`) in a request context made for
it, so it gets the reply, log line and counts the Flask route would give.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from flask import Flask
from markupsafe import escape
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import ClientDisconnected
from werkzeug.http import parse_cookie

from abconv import service
from abconv.inputs import KEY
from abconv.logs import (
    ENVIRON_REQUEST_ID,
    ENVIRON_STARTED,
    FAST_REQUEST_ID,
    REQUEST_ID_HEADER,
    log_access,
    request_id_from,
)
from abconv.vocabulary import ExperimentKind, Status
from abconv.web.api import assign_reply, convert_reply
from abconv.web.cors import cors_headers
from abconv.web.embed import VISITOR_COOKIE, visitor_cookie, visitor_id
from abconv.web.landing import merged_url
from abconv.web.metrics import observe

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: What a route answers: status, headers, body, and the reply (for the event counts).
Answer = tuple[int, list[tuple[str, str]], bytes, Any]
Route = Callable[[], Answer]


class FastLane:
    """WSGI middleware in front of ``app``'s own WSGI callable."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.flask: WSGIApplication = app.wsgi_app
        self.max_body: int = app.config["MAX_CONTENT_LENGTH"]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        taken = self._route(environ)
        if taken is None:
            return self.flask(environ, start_response)
        endpoint, answer = taken
        started = time.perf_counter()
        request_id = request_id_from(environ.get("HTTP_X_REQUEST_ID", ""))
        token = FAST_REQUEST_ID.set(request_id)
        try:
            status, headers, body, reply = answer()
        except Exception as error:
            environ[ENVIRON_REQUEST_ID], environ[ENVIRON_STARTED] = request_id, started
            return self._flask_error(environ, start_response, error)
        finally:
            FAST_REQUEST_ID.reset(token)
        headers.append(("Content-Length", str(len(body))))
        headers.append((REQUEST_ID_HEADER, request_id))
        start_response(f"{status} {HTTPStatus(status).phrase.upper()}", headers)
        seconds = time.perf_counter() - started
        observe(self.app.extensions["metrics"], endpoint, status, seconds, reply)
        if self.app.config.get("ACCESS_LOG", True):
            method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
            log_access(request_id, method, endpoint, path, status, seconds)
        return [body]

    def _route(self, environ: WSGIEnvironment) -> tuple[str, Route] | None:
        """The endpoint and answer of a request this layer serves; None for Flask's."""
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if method == "GET" and path == "/api/assign":
            return "api.assign", lambda: self._assign(environ)
        if method == "POST" and path == "/api/convert":
            length = environ.get("CONTENT_LENGTH", "")
            if length.isascii() and length.isdigit() and int(length) <= self.max_body:
                return "api.convert", lambda: self._convert(environ, int(length))
            return None
        if method == "GET" and path.startswith("/lp/") and self._plain_redirect(path[4:], environ):
            return "landing.landing", lambda: self._redirect(environ, path[4:])
        return None

    def _plain_redirect(self, key: str, environ: WSGIEnvironment) -> bool:
        """Whether ``/lp/KEY`` is a redirect experiment's, served to a visitor
        (no ``force``) to an ASCII URL; the rest is the landing route's, as is
        any doubt (the registry failing to answer)."""
        if not KEY.fullmatch(key) or "force=" in environ.get("QUERY_STRING", ""):
            return False
        try:
            experiment = self._services().experiments.get(key)
        except Exception:  # the landing route meets it again and answers it
            return False
        return (
            experiment is not None
            and experiment.kind is ExperimentKind.REDIRECT
            and experiment.status is not Status.DRAFT
            and all((v.url or "/").isascii() for v in experiment.variants)
        )

    def _assign(self, environ: WSGIEnvironment) -> Answer:
        params = dict(_query(environ).items())
        reply = assign_reply(self._services(), params, environ.get("HTTP_USER_AGENT"))
        return self._json(environ, reply)

    def _convert(self, environ: WSGIEnvironment, length: int) -> Answer:
        try:
            body = environ["wsgi.input"].read(length)
        except (OSError, ValueError) as error:  # the client went quiet or away
            raise ClientDisconnected() from error
        if len(body) != length:
            raise ClientDisconnected()
        return self._json(environ, convert_reply(self._services(), body))

    def _json(self, environ: WSGIEnvironment, reply: dict[str, Any]) -> Answer:
        """A JSON reply as ``jsonify`` writes it, with the public routes' CORS headers."""
        body = (json.dumps(reply, separators=(",", ":")) + "\n").encode()
        headers = [("Content-Type", "application/json")]
        allowed = self.app.config["ABCONV"].allowed_origins
        vary, cors = cors_headers(allowed, environ.get("HTTP_ORIGIN"), preflight=False)
        if vary:
            headers.append(("Vary", "Origin"))
        return 200, headers + cors, body, reply

    def _redirect(self, environ: WSGIEnvironment, key: str) -> Answer:
        """``landing.landing`` for a redirect experiment: the exposure is committed,
        then the variant's URL with the visitor's query string."""
        query = _query(environ)
        if query.get("force"):  # spelt with escapes: a preview, the landing route's
            raise _Reroute()
        visitor = visitor_id(parse_cookie(environ).get(VISITOR_COOKIE, ""))
        reply = service.assign_visitor(
            self._services(), visitor, experiment_key=key,
            user_agent=environ.get("HTTP_USER_AGENT"),
        )  # fmt: skip
        experiment = self._services().experiments.get(key)
        variant = None if experiment is None else experiment.variant(
            reply["assignments"][0]["variant"]
        )  # fmt: skip
        if variant is None:  # the file changed meanwhile: the landing route's 404 page
            raise _Reroute()
        location = merged_url(variant.url or "/", query, drop={"force"})
        link = escape(location)
        body = f'<!doctype html>\n<title>Redirecting</title>\n<a href="{link}">{link}</a>\n'
        secure = environ.get("wsgi.url_scheme") == "https"
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Location", location),
            ("Cache-Control", "private, no-store"),
            ("Set-Cookie", visitor_cookie(visitor, secure=secure)),
        ]
        return 302, headers, body.encode(), None

    def _services(self) -> service.Services:
        return self.app.extensions["abconv"]  # type: ignore[no-any-return]

    def _flask_error(
        self, environ: WSGIEnvironment, start_response: StartResponse, error: Exception
    ) -> Iterable[bytes]:
        """The reply Flask gives when its route raises ``error``:
        the before-request hooks (request id, timer), the error handlers, the
        after-request hooks (CORS, metrics, access line)."""
        app = self.app
        with app.request_context(environ):
            try:
                rv = app.preprocess_request()
                if rv is None and isinstance(error, _Reroute):
                    rv = app.dispatch_request()
                elif rv is None:
                    raise error  # raised here, so that its handler sees it being handled
            except Exception as raised:
                rv = app.handle_user_exception(raised)
            try:
                response = app.finalize_request(rv)
            except Exception as failed:
                response = app.handle_exception(failed)
            return response(environ, start_response)


class _Reroute(Exception):
    """Let the Flask route answer this request after all."""


def _query(environ: WSGIEnvironment) -> MultiDict[str, str]:
    """The query string as ``request.args`` parses it."""
    raw = environ.get("QUERY_STRING", "").encode("latin-1").decode()
    return MultiDict(parse_qsl(raw, keep_blank_values=True, errors="werkzeug.url_quote"))
