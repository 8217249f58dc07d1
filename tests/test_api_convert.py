"""/api/convert: conversions credited to exposed visitors' variants, idempotent."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import assert_error, write_experiment


def expose(client: FlaskClient, visitor: str, experiment: str = "shop") -> str:
    reply = client.get(f"/api/assign?visitor={visitor}&experiment={experiment}").get_json()
    return str(reply["assignments"][0]["variant"])


def conversions(app: Flask, experiment: str = "shop") -> int:
    return app.extensions["abconv"].store.count_rows("conversion", experiment)


def test_a_conversion_is_stored_for_the_visitors_variant(app: Flask, client: FlaskClient) -> None:
    variant = expose(client, "alice")
    reply = client.post(
        "/api/convert", json={"visitor": "alice", "goal": "purchase", "value": 49.9}
    )
    assert reply.status_code == 200
    body = reply.get_json()
    assert body["duplicate"] is False
    assert body["recorded"] == [
        {"experiment": "shop", "variant": variant, "kind": "hard", "value": 49.9}
    ]
    [row] = app.extensions["abconv"].store.conversions_by_variant("shop")
    assert row["variant"] == variant and row["goal"] == "purchase"
    assert row["conversions"] == 1 and math.isclose(row["value_sum"], 49.9)


def test_soft_goals_are_stored_with_their_kind(app: Flask, client: FlaskClient) -> None:
    expose(client, "alice")
    body = client.post("/api/convert", json={"visitor": "alice", "goal": "newsletter"}).get_json()
    assert body["recorded"][0]["kind"] == "soft" and body["recorded"][0]["value"] is None


def test_an_unexposed_visitor_converts_nothing(app: Flask, client: FlaskClient) -> None:
    reply = client.post("/api/convert", json={"visitor": "stranger", "goal": "purchase"})
    assert reply.status_code == 200 and reply.get_json()["recorded"] == []
    assert conversions(app) == 0


def test_a_repeated_event_id_changes_nothing(app: Flask, client: FlaskClient) -> None:
    expose(client, "alice")
    event = {"visitor": "alice", "goal": "purchase", "value": 10, "event_id": "order-1"}
    first = client.post("/api/convert", json=event).get_json()
    again = client.post("/api/convert", json={**event, "value": 99}).get_json()
    assert again["duplicate"] is True and again["recorded"] == first["recorded"]
    assert conversions(app) == 1
    [row] = app.extensions["abconv"].store.conversions_by_variant("shop")
    assert row["value_sum"] == 10


def test_without_event_id_each_call_counts(app: Flask, client: FlaskClient) -> None:
    expose(client, "alice")
    for _ in range(2):
        client.post("/api/convert", json={"visitor": "alice", "goal": "purchase", "value": 5})
    assert conversions(app) == 2
    [row] = app.extensions["abconv"].store.conversions_by_variant("shop")
    # One converting visitor whose value is the sum of their events.
    assert (row["conversions"], row["value_sum"], row["value_sum_squares"]) == (1, 10, 100)


def test_a_conversion_counts_for_every_exposed_experiment_with_the_goal(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    write_experiment(experiments_dir, "other")
    app.extensions["abconv"].experiments.refresh()
    expose(client, "alice", "shop")
    expose(client, "alice", "other")
    body = client.post("/api/convert", json={"visitor": "alice", "goal": "purchase"}).get_json()
    assert sorted(r["experiment"] for r in body["recorded"]) == ["other", "shop"]
    only = client.post(
        "/api/convert", json={"visitor": "alice", "goal": "newsletter", "experiment": "other"}
    ).get_json()
    assert [r["experiment"] for r in only["recorded"]] == ["other"]


def test_paused_experiments_record_no_conversions(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    expose(client, "alice")
    write_experiment(experiments_dir, status="paused")
    app.extensions["abconv"].experiments.refresh()
    body = client.post("/api/convert", json={"visitor": "alice", "goal": "purchase"}).get_json()
    assert body["recorded"] == [] and conversions(app) == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"goal": "purchase"}, 400, "missing_visitor"),
        ({"visitor": "x" * 129, "goal": "purchase"}, 400, "bad_visitor"),
        ({"visitor": "alice"}, 400, "bad_request"),
        ({"visitor": "alice", "goal": "refund"}, 400, "unknown_goal"),
        ({"visitor": "alice", "goal": "purchase", "experiment": "nope"}, 404, "unknown_experiment"),
        ({"visitor": "alice", "goal": "purchase", "value": -1}, 400, "bad_value"),
        ({"visitor": "alice", "goal": "purchase", "value": "12"}, 400, "bad_value"),
        ({"visitor": "alice", "goal": "purchase", "value": True}, 400, "bad_value"),
        ({"visitor": "alice", "goal": "purchase", "value": 1e400}, 400, "bad_value"),
        ({"visitor": "alice", "goal": "purchase", "event_id": ""}, 400, "bad_event_id"),
        ({"visitor": "alice", "goal": "purchase", "event_id": "a b"}, 400, "bad_event_id"),
        ({"visitor": "alice", "goal": "purchase", "time": "yesterday"}, 400, "bad_time"),
        ({"visitor": "alice", "goal": "purchase", "time": "2999-01-01T00:00:00Z"}, 400, "bad_time"),
    ],
)
def test_bad_conversions_get_a_4xx_and_store_nothing(
    app: Flask, client: FlaskClient, body: dict[str, object], status: int, code: str
) -> None:
    expose(client, "alice")
    assert_error(client.post("/api/convert", json=body), status, code)
    assert conversions(app) == 0


@pytest.mark.parametrize("raw", [b"NaN", b'{"visitor": "alice", "goal": "purchase", "value": NaN}',
                                 b'{"visitor": "alice", "goal": "purchase", "value": Infinity}',
                                 b"[]", b"", b"{"])  # fmt: skip
def test_non_finite_and_malformed_bodies_are_rejected(
    app: Flask, client: FlaskClient, raw: bytes
) -> None:
    expose(client, "alice")
    reply = client.post("/api/convert", data=raw, content_type="application/json")
    assert reply.status_code == 400
    assert reply.get_json()["error"]["code"] in {"bad_json", "bad_value"}
    assert conversions(app) == 0


def test_beacons_send_json_as_text_plain(app: Flask, client: FlaskClient) -> None:
    expose(client, "alice")
    reply = client.post(
        "/api/convert", data='{"visitor": "alice", "goal": "newsletter"}', content_type="text/plain"
    )
    assert reply.status_code == 200 and conversions(app) == 1


def test_a_body_over_one_mebibyte_is_refused(app: Flask, client: FlaskClient) -> None:
    expose(client, "alice")
    padding = "x" * (1024 * 1024)
    raw = '{"visitor": "alice", "goal": "purchase", "pad": "' + padding + '"}'
    assert_error(client.post("/api/convert", data=raw, content_type="application/json"), 413,
                 "body_too_large")  # fmt: skip
    assert conversions(app) == 0
