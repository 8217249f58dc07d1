"""Malformed bodies and times: deep nesting, huge numbers, times before 2000 — 400, never 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from abconv.errors import AbconvError
from abconv.inputs import MAX_JSON_DEPTH, require_shallow
from tests.conftest import assert_error

ROUTES = ["/api/convert", "/api/assign", "/api/events"]


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


DEEP_BODIES = {
    "arrays-100000": "[" * 100_000,
    "objects-100000": '{"a":' * 100_000,
    "closed-arrays-100000": nested(100_000),
    "visitor-900": f'{{"visitor": {nested(900)}, "goal": "purchase"}}',
    "visitor-100000": f'{{"visitor": {nested(100_000)}, "goal": "purchase"}}',
    "field-33": f'{{"visitor": "alice", "goal": "purchase", "x": {nested(MAX_JSON_DEPTH)}}}',
    "events-100000": f'{{"events": [{{"type": "exposure", "visitor": {nested(100_000)}}}]}}',
}


def stored_rows(app: Flask) -> int:
    store = app.extensions["abconv"].store
    return int(store.count_rows("exposure") + store.count_rows("conversion"))


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("body", list(DEEP_BODIES.values()), ids=list(DEEP_BODIES))
def test_deeply_nested_json_is_bad_json(
    app: Flask, client: FlaskClient, route: str, body: str
) -> None:
    reply = client.post(route, data=body, content_type="application/json")
    error = assert_error(reply, 400, "bad_json")
    assert len(error["message"]) < 200
    assert stored_rows(app) == 0


def test_nesting_up_to_the_limit_is_read(app: Flask, client: FlaskClient) -> None:
    # The body object is one level, so the field may nest MAX_JSON_DEPTH - 1 deep.
    body = f'{{"visitor": "alice", "experiment": "shop", "x": {nested(MAX_JSON_DEPTH - 1)}}}'
    reply = client.post("/api/assign", data=body, content_type="application/json")
    assert reply.status_code == 200 and reply.get_json()["assignments"][0]["enrolled"]
    assert stored_rows(app) == 1


@pytest.mark.parametrize(
    ("data", "ok"),
    [
        (1, True),
        ([], True),
        ({"a": [{"b": []}]}, True),
        (json.loads(nested(MAX_JSON_DEPTH, "0")), True),
        (json.loads(nested(MAX_JSON_DEPTH + 1, "0")), False),
        ({"a": [1, 2, {"b": json.loads(nested(MAX_JSON_DEPTH - 2, "0"))}]}, False),
        ({"a": [1, 2, {"b": json.loads(nested(MAX_JSON_DEPTH - 3, "0"))}]}, True),
    ],
)
def test_require_shallow_counts_arrays_and_objects(data: Any, ok: bool) -> None:
    if ok:
        assert require_shallow(data) is data
    else:
        with pytest.raises(AbconvError) as caught:
            require_shallow(data)
        assert caught.value.code == "bad_json"


@pytest.mark.parametrize("route", ["/api/convert", "/api/events"])
@pytest.mark.parametrize("field", ["value", "time"])
def test_a_400_digit_number_is_a_clean_400(
    app: Flask, client: FlaskClient, route: str, field: str
) -> None:
    client.get("/api/assign?visitor=alice&experiment=shop")
    event = f'"visitor": "alice", "goal": "purchase", "{field}": {"9" * 400}'
    if route == "/api/convert":
        body, code = f"{{{event}}}", f"bad_{field}"
    else:
        body, code = f'{{"events": [{{"type": "conversion", {event}}}]}}', "invalid_events"
    error = assert_error(client.post(route, data=body, content_type="application/json"), 400, code)
    assert len(error["message"]) < 300
    assert app.extensions["abconv"].store.count_rows("conversion") == 0


TOO_EARLY = ["1999-12-31T23:59:59Z", "0001-01-01T00:00:00", "1970-01-01", 0, 946684799]


@pytest.mark.parametrize("time", TOO_EARLY)
def test_a_time_before_2000_is_refused(app: Flask, client: FlaskClient, time: Any) -> None:
    client.get("/api/assign?visitor=alice&experiment=shop")
    conversion = {"visitor": "alice", "goal": "newsletter", "time": time}
    error = assert_error(client.post("/api/convert", json=conversion), 400, "bad_time")
    assert "before 2000-01-01" in error["message"]
    exposure = {"type": "exposure", "visitor": "bob", "experiment": "shop", "time": time}
    events = [exposure, {"type": "conversion", **conversion}]
    error = assert_error(client.post("/api/events", json={"events": events}), 400, "invalid_events")
    assert [line.split(" is before")[0] for line in error["details"]] == [
        "events[0].time",
        "events[1].time",
    ]
    store = app.extensions["abconv"].store
    assert (store.count_rows("exposure"), store.count_rows("conversion")) == (1, 0)  # alice's


@pytest.mark.parametrize("time", ["2000-01-01T00:00:00Z", 946684800])
def test_a_time_from_2000_on_is_accepted(app: Flask, client: FlaskClient, time: Any) -> None:
    events = [{"type": "exposure", "visitor": "bob", "experiment": "shop", "time": time}]
    assert client.post("/api/events", json={"events": events}).status_code == 200
    assert app.extensions["abconv"].store.count_rows("exposure") == 1


def test_a_number_past_pythons_digit_limit_is_bad_json(app: Flask, client: FlaskClient) -> None:
    # Python refuses to read integers of over 4,300 digits: the body is unreadable.
    body = f'{{"visitor": "alice", "goal": "purchase", "value": {"9" * 5000}}}'
    reply = client.post("/api/convert", data=body, content_type="application/json")
    assert_error(reply, 400, "bad_json")
    assert app.extensions["abconv"].store.count_rows("conversion") == 0
