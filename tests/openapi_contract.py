"""The OpenAPI document as a contract every test reply must keep.

``tests/conftest.py`` makes :class:`ContractClient` the test client of every
app the suite builds, so each JSON reply of a documented route is checked
against the schema the document gives for its status, and a status the
document does not list for that route fails the test. Unknown routes and
wrong methods under ``/api/`` must answer the error envelope with 404 or
405. The document cannot drift from the app without some test failing.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib.resources import files
from typing import Any

from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, RequestRedirect, Rule
from werkzeug.test import TestResponse

DOCUMENT_URI = "urn:abconv:openapi.json"
NON_JSON_ENDPOINTS = {
    "static", "pages.dashboard", "pages.results", "login.form", "login.log_in", "login.log_out",
    "metrics",
}  # fmt: skip
"""Endpoints that answer HTML or text by design (and are not in the document)."""
NON_JSON_ROUTES = {"/", "/experiments/<key>", "/login", "/logout", "/metrics"}
APP_ENDPOINTS = {"metrics"}
"""abconv's endpoints outside a blueprint; any other such endpoint is a test's own."""
AUTOMATIC_METHODS = {"HEAD", "OPTIONS"}
"""Answered by Flask and werkzeug for every route, not by a view."""


class ContractViolation(AssertionError):
    """A reply that the OpenAPI document does not allow."""


@cache
def document() -> dict[str, Any]:
    return json.loads(files("abconv.web").joinpath("openapi.json").read_text())  # type: ignore[no-any-return]


@cache
def _registry() -> Registry[Any]:
    resource: Resource[Any] = Resource.from_contents(document(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
    return registry


@cache
def validator(pointer: str) -> Draft202012Validator:
    """A validator for the schema at ``pointer`` (``#/...``) inside the document,
    whose ``$ref``s resolve against the whole document."""
    return Draft202012Validator({"$ref": DOCUMENT_URI + pointer}, registry=_registry())


def openapi_path(rule: str) -> str:
    """``/api/experiments/<key>`` → ``/api/experiments/{key}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def check_reply(url_map: Map, response: TestResponse) -> None:
    """Raise :class:`ContractViolation` when ``response`` breaks the document."""
    request = response.request
    method = request.method.upper()
    try:
        rule, _ = url_map.bind_to_environ(request.environ).match(return_rule=True)
    except RequestRedirect:  # "/api//assign": a redirect to the one spelling
        return
    except HTTPException:
        if request.path.startswith("/api/") and method != "HEAD":  # HEAD: no body to check
            _check_unrouted(request.path, method, response)
        return
    assert isinstance(rule, Rule)
    if method in AUTOMATIC_METHODS:
        return
    if rule.endpoint in NON_JSON_ENDPOINTS or rule.rule in NON_JSON_ROUTES:
        return
    if "." not in rule.endpoint and rule.endpoint not in APP_ENDPOINTS:
        return  # a route a test added to its own app, not one of abconv's
    path = openapi_path(rule.rule)
    operation = document()["paths"].get(path, {}).get(method.lower())
    if operation is None:
        raise ContractViolation(f"{method} {path} is a route of the app but not in the document")
    _check_documented(path, method, operation, response)


def _check_documented(
    path: str, method: str, operation: dict[str, Any], response: TestResponse
) -> None:
    status = str(response.status_code)
    where = f"{method} {path} -> {status}"
    pointer = f"#/paths/{_escape(path)}/{method.lower()}/responses/{status}"
    described = operation["responses"].get(status)
    if described is None:
        raise ContractViolation(f"{where}: status not in the document; body {_shown(response)}")
    if "$ref" in described:
        pointer = described["$ref"]
        described = resolve(described)
    content = described.get("content", {})
    if response.mimetype not in content:
        raise ContractViolation(
            f"{where}: {response.mimetype!r} is not among {sorted(content)}; "
            f"body {_shown(response)}"
        )
    if response.mimetype == "application/json":
        media = f"{pointer}/content/{_escape(response.mimetype)}/schema"
        _validate(where, media, response)


def _check_unrouted(path: str, method: str, response: TestResponse) -> None:
    """Unknown routes and wrong methods under /api/ answer the envelope, 404 or 405."""
    where = f"{method} {path} -> {response.status_code}"
    if response.status_code not in (404, 405):
        raise ContractViolation(f"{where}: an unrouted request must answer 404 or 405")
    if response.mimetype != "application/json":
        raise ContractViolation(f"{where}: {response.mimetype!r} instead of the JSON envelope")
    _validate(where, "#/components/schemas/Error", response)


def _validate(where: str, pointer: str, response: TestResponse) -> None:
    try:
        body = json.loads(response.get_data())
    except ValueError as error:
        raise ContractViolation(f"{where}: not JSON ({error}): {_shown(response)}") from None
    problem = best_match(validator(pointer).iter_errors(body))
    if problem is not None:
        at = "/".join(str(part) for part in problem.absolute_path)
        raise ContractViolation(
            f"{where}: the reply breaks {pointer} at '/{at}': {problem.message}; "
            f"body {_shown(response)}"
        )


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """``node``, or what its ``$ref`` (and theirs) point to inside the document."""
    while "$ref" in node:
        target: Any = document()
        for token in node["$ref"].removeprefix("#/").split("/"):
            target = target[token.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _shown(response: TestResponse) -> str:
    text = response.get_data(as_text=True)
    return text if len(text) <= 600 else text[:600] + "..."


class ContractClient(FlaskClient):
    """The test client, checking every reply against the OpenAPI document."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        response = super().open(*args, **kwargs)
        check_reply(self.application.url_map, response)
        return response
