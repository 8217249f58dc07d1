"""The JSON API. Each route: parse, call the service, reply."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from abconv import results as results_module
from abconv import service
from abconv.experiments import phases
from abconv.inputs import (
    conversion_input,
    experiment_list,
    json_too_deep,
    require_object,
    require_shallow,
    require_visitor,
)
from abconv.store import utcnow
from abconv.web.auth import admin_required
from abconv.web.cors import allow_cross_origin

bp = Blueprint("api", __name__)
bp.after_request(allow_cross_origin(public={"api.assign", "api.convert"}))


def services() -> service.Services:
    return current_app.extensions["abconv"]  # type: ignore[no-any-return]


def json_body(required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object (see :func:`json_object`)."""
    return json_object(request.get_data(cache=True), required)


def json_object(raw: bytes, required: bool = True) -> dict[str, Any]:
    """A body as a JSON object, whatever its Content-Type: browsers'
    ``sendBeacon`` sends JSON as text/plain. An empty body is ``{}`` unless
    ``required``.

    Deep nesting is refused here, for every route: the parser gives up with
    ``RecursionError`` past about a thousand levels, and below that a deep
    value would reach the checks and their messages.
    """
    if not raw and not required:
        return {}
    try:
        body = json.loads(raw)
    except RecursionError:
        raise json_too_deep() from None
    except (ValueError, UnicodeDecodeError):
        body = None
    return require_object(require_shallow(body))


@bp.route("/api/assign", methods=["GET", "POST"])
def assign() -> Response:
    params: dict[str, Any] = dict(request.args)
    if request.method == "POST":
        params.update(json_body(required=False))
    return jsonify(assign_reply(services(), params, request.headers.get("User-Agent")))


def assign_reply(
    services: service.Services, params: dict[str, Any], user_agent: str | None
) -> dict[str, Any]:
    """``/api/assign``'s reply to ``params`` (query and body); ``user_agent``
    is the request's, unless a server-side caller passes the visitor's."""
    given = params.get("user_agent")
    return service.assign_visitor(
        services,
        require_visitor(params.get("visitor")),
        experiment_key=params.get("experiment") or None,
        force=params.get("force") or None,
        user_agent=given if isinstance(given, str) and given else user_agent,
        experiment_keys=experiment_list(params.get("experiments")),
    )


@bp.post("/api/convert")
def convert() -> Response:
    return jsonify(convert_reply(services(), request.get_data(cache=True)))


def convert_reply(services: service.Services, body: bytes) -> dict[str, Any]:
    """``/api/convert``'s reply to the request ``body``."""
    return service.convert_visitor(services, conversion_input(json_object(body)))


@bp.post("/api/events")
@admin_required
def events() -> Response:
    return jsonify(service.ingest_events(services(), json_body()))


@bp.get("/api/experiments")
@admin_required
def experiments() -> Response:
    registry = services().experiments
    return jsonify(experiments=[e.to_dict() for e in registry.all().values()])


@bp.get("/api/experiments/<key>")
@admin_required
def experiment(key: str) -> Response:
    return jsonify(services().experiment(key).to_dict())


@bp.get("/api/experiments/<key>/results")
@admin_required
def results(key: str) -> Response:
    return jsonify(results_of(key, request.args.get("phase")))


@bp.get("/api/experiments/<key>/results.csv")
@admin_required
def results_csv(key: str) -> Response:
    text = results_module.results_csv(results_of(key, request.args.get("phase")))
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{key}-results.csv"'},
    )


def results_of(key: str, phase: str | None = None) -> dict[str, Any]:
    """The results document of experiment ``key`` in ``phase`` (default the current
    one; 404 unknown experiment or phase, 409 stored data out of range)."""
    experiment = services().experiment(key)
    shown, every = service.results_phase(services(), experiment, phase)
    if shown.definition is not None:
        experiment = phases.as_in_phase(experiment, shown.definition)
    with results_module.stored_data_checked(key):
        store = services().store
        counts = store.result_counts(key, results_module.caps(experiment), shown.number)
        excluded = store.excluded_counts(key)
        document = results_module.results_document(experiment, counts, utcnow(), excluded)
    return {**document, "phase": shown.number, "phases": [p.to_dict() for p in every]}


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    ok, reply = service.health(services())
    return jsonify(reply), 200 if ok else 503


@bp.get("/api/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document of every JSON route, kept beside the routes it describes."""
    return Response(_openapi_document(), mimetype="application/json")


@cache
def _openapi_document() -> bytes:
    return files("abconv.web").joinpath("openapi.json").read_bytes()
