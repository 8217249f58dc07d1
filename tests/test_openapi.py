"""The OpenAPI document: valid 3.1, the app's routes exactly, and enforced on replies.

Every reply the suite gets is checked against the document by the test
client (``tests/openapi_contract.py``, made the client of every app in
``conftest.py``); the tests here check the document itself and that the
check can fail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify
from flask.testing import FlaskClient
from openapi_spec_validator import validate
from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder, TestResponse
from werkzeug.wrappers import Request

from abconv import create_app, service
from tests.openapi_contract import (
    AUTOMATIC_METHODS,
    NON_JSON_ROUTES,
    ContractViolation,
    check_reply,
    document,
    openapi_path,
    resolve,
    validator,
)

ADMIN_SECURITY = [{"basicAuth": []}, {"bearerAuth": []}, {"sessionCookie": []}]
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method.upper(), operation


def test_the_document_is_valid_openapi_3_1() -> None:
    assert document()["openapi"].startswith("3.1.")
    validate(document())  # raises on any problem, $refs included


def test_the_document_has_exactly_the_json_routes_of_the_app(app: Flask) -> None:
    routes = {
        (openapi_path(rule.rule), method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and rule.rule not in NON_JSON_ROUTES
        for method in (rule.methods or set()) - AUTOMATIC_METHODS
    }
    documented = {(path, method) for path, method, _ in operations()}
    assert sorted(routes - documented) == [], "routes missing from the document"
    assert sorted(documented - routes) == [], "operations the app does not have"


def test_the_routes_left_out_are_not_json(client: FlaskClient) -> None:
    """The pages (dashboard, results, login, logout) and ``/metrics`` answer HTML or
    text, so no JSON route hides among the routes the document leaves out."""
    rules = [r for r in client.application.url_map.iter_rules() if r.rule in NON_JSON_ROUTES]
    assert {rule.rule for rule in rules} == NON_JSON_ROUTES
    for rule in rules:
        url = rule.build({arg: "shop" for arg in rule.arguments}, append_unknown=False)[1]
        if "GET" in (rule.methods or set()):
            reply = client.get(url)
            assert reply.status_code == 200, url
        else:
            reply = client.post(url)  # no CSRF token: an HTML page saying so
        assert reply.mimetype in ("text/html", "text/plain"), url


def test_the_document_is_served_to_anyone(environ: dict[str, str]) -> None:
    app = create_app({**environ, "ABCONV_ADMIN_PASSWORD": "12345"})
    try:
        reply = app.test_client().get("/api/openapi.json", environ_base={"REMOTE_ADDR": "1.2.3.4"})
    finally:
        app.extensions["abconv"].store.dispose()
    assert reply.status_code == 200 and reply.mimetype == "application/json"
    assert reply.get_json() == document()
    packaged = Path(__file__).parents[1] / "src" / "abconv" / "web" / "openapi.json"
    assert json.loads(packaged.read_text()) == document()


def test_admin_routes_and_only_they_name_basic_and_bearer(environ: dict[str, str]) -> None:
    """Without credentials, the routes that answer 401 (pages: send to the login form)
    are exactly those with security."""
    app = create_app({**environ, "ABCONV_ADMIN_PASSWORD": "12345"})
    client = app.test_client()
    try:
        for path, method, operation in operations():
            url = path.replace("{key}", "shop")
            # 429: a brute-force limit may count these as failed attempts
            reply = client.open(url, method=method, json={})
            to_login = reply.status_code == 302 and reply.location.startswith("/login?")
            refused = reply.status_code in (401, 429) or to_login
            security = operation.get("security", [])
            assert refused == bool(security), (method, path)
            if refused:
                assert security == ADMIN_SECURITY, (method, path)
                assert "401" in operation["responses"] and "403" in operation["responses"]
    finally:
        app.extensions["abconv"].store.dispose()
    schemes = document()["components"]["securitySchemes"]
    assert schemes["basicAuth"] == {**schemes["basicAuth"], "type": "http", "scheme": "basic"}
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["sessionCookie"]["name"] == "abconv_session"


def test_every_error_reply_is_the_shared_envelope() -> None:
    error = "#/components/schemas/Error"
    for path, method, operation in operations():
        for status, reply in operation["responses"].items():
            if int(status) < 400 or (path, status) == ("/healthz", "503"):
                continue
            content = resolve(reply)["content"]
            if not path.startswith("/api/") and set(content) == {"text/html"}:
                continue  # pages answer errors as an HTML page (web/errors.py)
            schema = resolve(content["application/json"]["schema"])
            assert schema == {"$ref": error} or {"$ref": error} in schema["allOf"], (
                method,
                path,
                status,
            )


def test_every_route_documents_the_statuses_every_request_can_get() -> None:
    for path, method, operation in operations():
        statuses = set(operation["responses"])
        assert {"200", "414", "431", "503"} <= statuses, (method, path)
        if method == "POST":
            assert "413" in statuses and "requestBody" in operation, (method, path)


def test_the_examples_follow_their_schemas() -> None:
    schemas = document()["components"]["schemas"]
    checked = 0
    for name, schema in schemas.items():
        for example in schema.get("examples", []):
            errors = list(validator(f"#/components/schemas/{name}").iter_errors(example))
            assert errors == [], (name, example)
            checked += 1
    assert checked >= 2


def _reply(
    path: str, body: Any, status: int = 200, method: str = "GET", mimetype: str = "application/json"
) -> TestResponse:
    request = Request(EnvironBuilder(path=path, method=method).get_environ())
    data = json.dumps(body) if mimetype == "application/json" else str(body)
    headers = Headers([("Content-Type", mimetype)])
    return TestResponse([data.encode()], str(status), headers, request)


@pytest.mark.parametrize(
    ("reply", "complaint"),
    [
        (_reply("/api/assign", {"visitor": "a"}), "'assignments' is a required property"),
        (_reply("/api/assign", {"visitor": "a", "assignments": [], "extra": 1}), "extra"),
        (_reply("/api/experiments/shop", {"error": {"code": "x", "message": "m"}}, 201), "201"),
        (_reply("/api/experiments/shop", {"error": {"code": "nope", "message": "m"}}, 404), "nope"),
        (_reply("/api/convert", {"error": "boom"}, 500, "POST"), "status not in the document"),
        (_reply("/api/convert", "<h1>Bad</h1>", 400, "POST", "text/html"), "text/html"),
        (_reply("/api/nowhere", "<h1>Not Found</h1>", 404, mimetype="text/html"), "text/html"),
        (_reply("/api/nowhere", {"error": {"code": "not_found", "message": "m"}}, 400), "404"),
        (_reply("/api/assign", {"detail": "no"}, 405, "DELETE"), "required property"),
    ],
)
def test_the_contract_check_refuses_replies_the_document_does_not_allow(
    app: Flask, reply: TestResponse, complaint: str
) -> None:
    with pytest.raises(ContractViolation, match=complaint):
        check_reply(app.url_map, reply)


def test_the_contract_check_is_on_for_every_test_client(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "assign_visitor", lambda *_, **__: {"visitor": "a"})
    with pytest.raises(ContractViolation, match="assignments"):
        client.get("/api/assign?visitor=a")
    app.view_functions["api.healthz"] = lambda: (jsonify(status="ok", database="ok"), 202)
    with pytest.raises(ContractViolation, match="202"):
        client.get("/healthz")


def test_a_degraded_assignment_enrols_no_one() -> None:
    schema = validator("#/components/schemas/AssignReply")
    one = {"experiment": "shop", "variant": "trial", "kind": "cta", "enrolled": False}
    assert schema.is_valid({"visitor": "a", "assignments": [one], "degraded": "no database"})
    enrolled = {**one, "enrolled": True}
    assert schema.is_valid({"visitor": "a", "assignments": [enrolled]})
    assert not schema.is_valid({"visitor": "a", "assignments": [enrolled], "degraded": "no db"})


def _document_codes() -> dict[str, set[str]]:
    """Error codes per status, from the enums and consts of the error schemas."""
    codes: dict[str, set[str]] = {}
    for _, _, operation in operations():
        for status, reply in operation["responses"].items():
            schema = resolve(reply).get("content", {}).get("application/json", {}).get("schema")
            for part in resolve(schema or {}).get("allOf", []):
                code = part.get("properties", {}).get("error", {}).get("properties", {})
                allowed = code.get("code", {})
                codes.setdefault(status, set()).update(allowed.get("enum", []))
                if "const" in allowed:
                    codes[status].add(allowed["const"])
    return codes


def test_every_error_code_of_the_readme_is_in_the_document() -> None:
    """A code added to the README's table (tests/test_docs.py wants each there) must
    reach the document too, with the same status."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("### Error codes", 1)[1].split("\n## ", 1)[0]
    table = re.findall(r"^\| `([a-z_]+)` \| (\d{3}|4xx) \|", section, flags=re.MULTILINE)
    assert len(table) > 15
    documented = _document_codes()
    not_of_a_route = {"http_error", "internal_error", "not_found", "method_not_allowed"}
    not_of_a_route |= {"csrf_refused"}  # the login form's, an HTML page: not in the document
    missing = [
        (code, status)
        for code, status in table
        if code not in not_of_a_route and code not in documented.get(status, set())
    ]
    assert missing == []
