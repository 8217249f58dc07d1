"""CORS: `*`, a list, unknown origins, preflights; never credentials, never on admin routes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from abconv import create_app
from tests.conftest import ADMIN_AUTHORIZATION

SHOP = "https://shop.example.com"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type",
}
PUBLIC = [("get", "/api/assign?visitor=a"), ("post", "/api/assign"), ("post", "/api/convert")]
BODIES = {"/api/assign": {"visitor": "a"}, "/api/convert": {"visitor": "a", "goal": "purchase"}}


def cors_app(environ: dict[str, str], origins: str) -> Flask:
    return create_app({**environ, "ABCONV_ALLOWED_ORIGINS": origins})


@pytest.fixture(params=["*", f"{SHOP}, https://blog.example.com"])
def cors_client(request: pytest.FixtureRequest, environ: dict[str, str]) -> Iterator[FlaskClient]:
    app = cors_app(environ, request.param)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = ADMIN_AUTHORIZATION
    yield client
    app.extensions["abconv"].store.dispose()


def call(client: FlaskClient, method: str, url: str, origin: str | None) -> TestResponse:
    headers = {} if origin is None else {"Origin": origin}
    body = BODIES.get(url) if method == "post" else None
    reply: TestResponse = getattr(client, method)(url, json=body, headers=headers)
    return reply


@pytest.mark.parametrize(("method", "url"), PUBLIC)
def test_star_allows_every_origin_without_credentials(
    environ: dict[str, str], method: str, url: str
) -> None:
    app = cors_app(environ, "*")
    reply = call(app.test_client(), method, url, "https://anyone.example")
    assert reply.status_code == 200
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in reply.headers
    app.extensions["abconv"].store.dispose()


@pytest.mark.parametrize(("method", "url"), PUBLIC)
def test_a_list_echoes_a_listed_origin_and_varies(
    environ: dict[str, str], method: str, url: str
) -> None:
    app = cors_app(environ, f"{SHOP}, https://blog.example.com/")
    client = app.test_client()
    for origin in (SHOP, "https://blog.example.com"):
        reply = call(client, method, url, origin)
        assert reply.headers["Access-Control-Allow-Origin"] == origin
        assert "Origin" in reply.headers["Vary"]
        assert "Access-Control-Allow-Credentials" not in reply.headers
    unknown = call(client, method, url, "https://evil.example")
    assert unknown.status_code == 200
    assert "Access-Control-Allow-Origin" not in unknown.headers
    assert "Origin" in unknown.headers["Vary"]
    # A cache must not hand a listed origin's reply to a request without Origin, or back.
    assert "Origin" in call(client, method, url, None).headers["Vary"]
    app.extensions["abconv"].store.dispose()


@pytest.mark.parametrize("url", ["/api/assign", "/api/convert"])
def test_a_preflight_answers_204_with_the_allow_headers(cors_client: FlaskClient, url: str) -> None:
    reply = cors_client.options(url, headers={"Origin": SHOP, **PREFLIGHT})
    assert reply.status_code == 204 and reply.get_data() == b""
    assert reply.headers["Access-Control-Allow-Origin"] in ("*", SHOP)
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    assert reply.headers["Access-Control-Allow-Headers"].lower() == "content-type"
    assert int(reply.headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in reply.headers


def test_a_preflight_from_an_unknown_origin_gets_no_allow_headers(environ: dict[str, str]) -> None:
    app = cors_app(environ, SHOP)
    reply = app.test_client().options(
        "/api/convert", headers={"Origin": "https://evil.example", **PREFLIGHT}
    )
    assert reply.status_code == 204
    assert not [name for name in reply.headers.keys() if name.startswith("Access-Control-")]
    app.extensions["abconv"].store.dispose()


def test_no_origins_configured_means_no_cors(client: FlaskClient) -> None:
    reply = client.get("/api/assign?visitor=a", headers={"Origin": SHOP})
    assert not [name for name in reply.headers.keys() if name.startswith("Access-Control-")]


def test_admin_routes_never_get_cors_headers(cors_client: FlaskClient) -> None:
    app = cors_client.application
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("api.assign", "api.convert"):
            continue
        url = rule.build({arg: "shop" for arg in rule.arguments}, append_unknown=False)[1]
        for method in sorted((rule.methods or set()) - {"HEAD"}):
            reply = cors_client.open(url, method=method, headers={"Origin": SHOP, **PREFLIGHT})
            leaked = [name for name in reply.headers.keys() if name.startswith("Access-Control-")]
            assert leaked == [], (method, url)
