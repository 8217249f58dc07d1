"""The fast lane (web/fast_lane.py) answers the hot routes as the Flask routes do.

Two servers on databases of their own get the same requests in the same
order: one as served, the other with the fast lane turned off, so that
Flask's routes answer everything. Their replies must be the same bytes,
headers and statuses, and they must log and count the same.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from abconv import create_app, service
from abconv.web.embed import VISITOR_COOKIE
from abconv.web.fast_lane import FastLane
from tests.conftest import ADMIN_AUTHORIZATION, ADMIN_PASSWORD, assert_error, write_experiment
from tests.test_landing import REDIRECT, write

VISITOR_VALUE = re.compile(r"^abconv_visitor=[^;]*; Expires=[^;]*;")

# (method, path, JSON body or None, headers): every shape of the hot routes'
# requests, the fast lane's and those it leaves to Flask.
REQUESTS: list[tuple[str, str, Any, dict[str, str]]] = [
    ("GET", "/api/assign?visitor=alice&experiment=shop", None, {}),
    ("GET", "/api/assign?visitor=alice&experiment=shop", None, {}),  # returning
    ("GET", "/api/assign?visitor=bob", None, {"Origin": "https://shop.example"}),
    ("GET", "/api/assign?visitor=bob", None, {"Origin": "https://elsewhere.example"}),
    ("GET", "/api/assign?visitor=carol&experiments=shop,gone", None, {}),
    ("GET", "/api/assign?visitor=dan&experiment=shop", None, {"User-Agent": "Googlebot/2.1"}),
    ("GET", "/api/assign?visitor=erin&experiment=shop&user_agent=bingbot", None, {}),
    ("GET", "/api/assign?visitor=frank&experiment=shop&force=guide", None, {}),
    ("GET", "/api/assign?visitor=gail&visitor=other&experiment=shop&x=%ff", None, {}),
    ("GET", "/api/assign?visitor=bad%20id", None, {}),
    ("GET", "/api/assign?experiment=shop", None, {}),
    ("GET", "/api/assign?visitor=hal&experiment=nope", None, {}),
    ("GET", "/api/assign?visitor=hal&experiment=shop&force=nope", None, {}),
    ("POST", "/api/assign", {"visitor": "ivy", "experiment": "shop"}, {}),
    ("OPTIONS", "/api/assign", None, {"Origin": "https://shop.example"}),
    ("POST", "/api/convert", {"visitor": "alice", "goal": "purchase", "value": 5}, {}),
    ("POST", "/api/convert", {"visitor": "alice", "goal": "newsletter", "event_id": "e1"}, {}),
    ("POST", "/api/convert", {"visitor": "alice", "goal": "newsletter", "event_id": "e1"}, {}),
    ("POST", "/api/convert", {"visitor": "nobody", "goal": "purchase", "value": 1}, {}),
    ("POST", "/api/convert", {"visitor": "alice", "goal": "nope"}, {}),
    ("POST", "/api/convert", {"visitor": "alice", "goal": "purchase", "value": "x"}, {}),
    ("POST", "/api/convert", {"goal": "purchase"}, {"Origin": "https://shop.example"}),
    ("POST", "/api/convert", [1, 2], {}),
    ("POST", "/api/convert", b"{not json", {}),
    ("POST", "/api/convert", b"[" * 5000 + b"]" * 5000, {}),
    ("POST", "/api/convert", b"", {}),
    ("POST", "/api/convert", b" " * (1024 * 1024 + 1), {}),
    ("GET", "/lp/flow?utm_source=ads&utm_source=news&n=%e2%82%ac", None, {"Cookie": "x=1"}),
    ("GET", "/lp/flow", None, {"Cookie": f"{VISITOR_COOKIE}=alice"}),
    ("GET", "/lp/flow", None, {"Cookie": f"{VISITOR_COOKIE}=alice", "User-Agent": "curl/8"}),
    ("GET", "/lp/flow?utm_source=ads", None, {"Cookie": f"{VISITOR_COOKIE}=alice"}),
    ("GET", "/lp/flow", None, {"Cookie": f"{VISITOR_COOKIE}=not%20valid"}),
    ("GET", "/lp/flow?force=tour", None, {"Cookie": f"{VISITOR_COOKIE}=jan"}),
    ("GET", "/lp/flow?%66orce=tour", None, {"Cookie": f"{VISITOR_COOKIE}=lee"}),
    ("GET", "/lp/flow?force=", None, {"Cookie": f"{VISITOR_COOKIE}=mo"}),
    ("HEAD", "/lp/flow", None, {"Cookie": f"{VISITOR_COOKIE}=kim"}),
    ("GET", "/lp/draft", None, {}),
    ("GET", "/lp/shop", None, {}),
    ("GET", "/lp/Bad.Key", None, {}),
]


# The metrics both servers must agree on (not the latencies themselves).
COUNTED = (
    "abconv_http_requests_total",
    "abconv_events_total",
    "abconv_error_replies_total",
    "abconv_http_request_duration_seconds_count",
)


def fast_lane_of(app: Flask) -> FastLane:
    layer = app.wsgi_app
    while not isinstance(layer, FastLane):
        layer = layer.app  # type: ignore[attr-defined]
    return layer


@pytest.fixture
def experiments_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "experiments"
    folder.mkdir()
    write_experiment(folder)
    write(folder, REDIRECT, "flow")
    write(folder, REDIRECT, "draft", status="draft")
    return folder


def make_app(experiments_dir: Path, folder: Path, fast: bool) -> Flask:
    folder.mkdir()
    app = create_app(
        {
            "ABCONV_EXPERIMENTS_DIR": str(experiments_dir),
            "ABCONV_DATABASE_URL": f"sqlite:///{folder / 'abconv.sqlite3'}",
            "ABCONV_INSTANCE_DIR": str(folder / "instance"),
            "ABCONV_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "ABCONV_ALLOWED_ORIGINS": "https://shop.example",
        }
    )
    if not fast:
        fast_lane_of(app)._route = lambda environ: None  # type: ignore[method-assign]
    return app


@pytest.fixture
def apps(experiments_dir: Path, tmp_path: Path) -> Iterator[tuple[Flask, Flask]]:
    pair = (
        make_app(experiments_dir, tmp_path / "fast", fast=True),
        make_app(experiments_dir, tmp_path / "flask", fast=False),
    )
    yield pair
    for app in pair:
        app.extensions["abconv"].store.dispose()


def send(client: FlaskClient, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    return client.open(path, method=method, data=data, headers=headers)


def comparable(reply: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A reply less what differs between any two requests: the request id, a
    new visitor's random id and the cookie's expiry time; a redirect's body
    (the fast lane writes its own short link page). A new visitor's random
    id picks their variant: their redirects are compared but for Location."""
    headers = []
    for name, value in reply.headers:
        if name == "X-Request-Id":
            value = "<id>"
        elif name == "Set-Cookie":
            value = VISITOR_VALUE.sub("abconv_visitor=<visitor>; Expires=<time>;", value)
        headers.append((name, value))
    if reply.status_code == 302:
        given = reply.request.headers.get("Cookie", "")
        new = reply.headers["Set-Cookie"].split(";")[0] not in given
        drop = {"Content-Length", "Location"} if new else {"Content-Length"}
        headers = [(n, v) for n, v in headers if n not in drop]
        return reply.status_code, sorted(headers), b""
    return reply.status_code, sorted(headers), reply.get_data()


def test_replies_are_those_of_the_flask_routes(apps: tuple[Flask, Flask]) -> None:
    fast, flask = (app.test_client(use_cookies=False) for app in apps)
    for method, path, body, headers in REQUESTS:
        got = comparable(send(fast, method, path, body, headers))
        want = comparable(send(flask, method, path, body, headers))
        assert got == want, (method, path, body)


def test_the_same_requests_are_counted_and_logged(
    apps: tuple[Flask, Flask], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="abconv")
    seen = []
    for app in apps:
        client = app.test_client(use_cookies=False)
        caplog.clear()
        ids = [send(client, *request).headers["X-Request-Id"] for request in REQUESTS]
        access = [r for r in caplog.records if r.name == "abconv.access"]
        assert [r.request_id for r in access] == ids  # type: ignore[attr-defined]
        lines = [{k: v for k, v in r.fields.items() if k != "duration_ms"} for r in access]  # type: ignore[attr-defined]
        scrape = client.get("/metrics", headers={"Authorization": ADMIN_AUTHORIZATION})
        counts = sorted(
            line for line in scrape.get_data(as_text=True).splitlines() if line.startswith(COUNTED)
        )
        seen.append((lines, counts))
    assert seen[0] == seen[1]
    assert any("api.convert" in line and 'status="200"' in line for line in seen[0][1])


def test_a_redirect_is_served_by_the_fast_lane_with_the_visitors_cookie(
    apps: tuple[Flask, Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = apps[0]
    served = []
    original = service.assign_visitor

    def spy(*args: Any, **kwargs: Any) -> dict[str, Any]:
        from flask import has_request_context

        served.append(has_request_context())
        return original(*args, **kwargs)

    monkeypatch.setattr(service, "assign_visitor", spy)
    reply = app.test_client().get("/lp/flow?utm_source=ads", base_url="https://shop.example")
    assert served == [False]  # no Flask request context: the fast lane answered
    assert reply.status_code == 302 and "utm_source=ads" in reply.headers["Location"]
    cookie = reply.headers["Set-Cookie"]
    assert "; Secure" in cookie and "Max-Age=31536000" in cookie and "SameSite=Lax" in cookie
    visitor = cookie.split(";")[0].split("=")[1]
    assert app.extensions["abconv"].store.exposures_of(visitor, ["flow"])


def test_an_unexpected_error_is_a_logged_500_with_the_request_id(
    apps: tuple[Flask, Flask], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(service, "convert_visitor", broken)
    caplog.set_level(logging.INFO, logger="abconv")
    # A plain client: a 500 is in no route's documented replies.
    client = FlaskClient(apps[0], apps[0].response_class)
    reply = client.post(
        "/api/convert", json={"visitor": "alice", "goal": "purchase"},
        headers={"X-Request-Id": "lb-17"},
    )  # fmt: skip
    assert_error(reply, 500, "internal_error")
    assert reply.headers["X-Request-Id"] == "lb-17"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info and "a bug" in str(errors[0].exc_info[1])
    assert errors[0].request_id == "lb-17"  # type: ignore[attr-defined]
    access = [r for r in caplog.records if r.name == "abconv.access"]
    assert [(r.request_id, r.fields["status"]) for r in access] == [("lb-17", 500)]  # type: ignore[attr-defined]


def test_lines_logged_while_the_fast_lane_serves_carry_the_request_id(
    apps: tuple[Flask, Flask], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*args: Any, **kwargs: Any) -> None:
        raise OSError("connection refused")

    store = apps[0].extensions["abconv"].store
    monkeypatch.setattr(service, "UNAVAILABLE", (OSError,))
    monkeypatch.setattr(store, "exposures_of", unavailable)
    capsys.readouterr()
    reply = (
        apps[0]
        .test_client()
        .get("/api/assign?visitor=zed&experiment=shop", headers={"X-Request-Id": "lb-18"})
    )
    assert reply.status_code == 200 and "degraded" in reply.get_json()
    lines = capsys.readouterr().err.splitlines()
    warnings = [line for line in lines if " level=warning " in line]
    assert warnings and all(" request_id=lb-18 " in line for line in warnings), lines
