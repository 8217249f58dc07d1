"""/api/assign: variants, recorded exposures, stickiness, bots, force, statuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import assert_error, write_experiment


def stored_exposures(app: Flask, experiment: str = "shop") -> int:
    return app.extensions["abconv"].store.count_rows("exposure", experiment)


def reload_experiments(app: Flask) -> None:
    app.extensions["abconv"].experiments.refresh()


def test_assign_gives_a_variant_and_records_the_exposure(app: Flask, client: FlaskClient) -> None:
    reply = client.get("/api/assign?visitor=alice&experiment=shop")
    assert reply.status_code == 200
    body = reply.get_json()
    assert body["visitor"] == "alice"
    [assignment] = body["assignments"]
    assert assignment["experiment"] == "shop" and assignment["kind"] == "cta"
    assert assignment["variant"] in {"trial", "guide"}
    assert assignment["content"]["href"] in {"/signup", "/guide"}
    assert assignment["enrolled"] is True
    assert (
        app.extensions["abconv"].store.exposures_of("alice", ["shop"])["shop"].variant
        == assignment["variant"]
    )


def test_a_returning_visitor_is_recorded_once(app: Flask, client: FlaskClient) -> None:
    first = client.get("/api/assign?visitor=alice&experiment=shop").get_json()
    for _ in range(3):
        assert client.get("/api/assign?visitor=alice&experiment=shop").get_json() == first
    assert stored_exposures(app) == 1


def test_post_with_a_json_body_works_like_get(app: Flask, client: FlaskClient) -> None:
    by_get = client.get("/api/assign?visitor=bob&experiment=shop").get_json()
    by_post = client.post("/api/assign", json={"visitor": "bob", "experiment": "shop"}).get_json()
    assert by_get == by_post


def test_without_experiment_every_running_experiment_is_assigned(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    write_experiment(experiments_dir, "second")
    write_experiment(experiments_dir, "halted", status="paused")
    reload_experiments(app)
    body = client.get("/api/assign?visitor=carol").get_json()
    assert sorted(a["experiment"] for a in body["assignments"]) == ["second", "shop"]
    assert stored_exposures(app, "second") == stored_exposures(app, "shop") == 1


def test_a_weight_change_does_not_move_an_exposed_visitor(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    visitors = [f"v{i}" for i in range(60)]
    before = {
        v: client.get(f"/api/assign?visitor={v}&experiment=shop").get_json() for v in visitors
    }
    write_experiment(experiments_dir, weight_trial=1, weight_guide=1000)
    reload_experiments(app)
    after = {v: client.get(f"/api/assign?visitor={v}&experiment=shop").get_json() for v in visitors}
    assert after == before
    # New visitors do follow the new weights.
    fresh = [
        client.get(f"/api/assign?visitor=new{i}&experiment=shop").get_json() for i in range(20)
    ]
    assert all(a["assignments"][0]["variant"] == "guide" for a in fresh)


def test_visitors_outside_traffic_see_the_control_and_are_not_recorded(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    write_experiment(experiments_dir, traffic=0.01)
    reload_experiments(app)
    replies = [
        client.get(f"/api/assign?visitor=t{i}&experiment=shop").get_json() for i in range(100)
    ]
    outside = [r["assignments"][0] for r in replies if not r["assignments"][0]["enrolled"]]
    assert len(outside) > 80
    assert {a["variant"] for a in outside} == {"trial"}
    assert stored_exposures(app) == 100 - len(outside)


def test_bots_get_content_but_no_exposure(app: Flask, client: FlaskClient) -> None:
    reply = client.get(
        "/api/assign?visitor=crawler&experiment=shop",
        headers={"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"},
    )
    assert reply.status_code == 200 and reply.get_json()["assignments"][0]["enrolled"] is False
    assert stored_exposures(app) == 0


def test_a_server_side_caller_can_pass_the_visitors_user_agent(
    app: Flask, client: FlaskClient
) -> None:
    client.post("/api/assign", json={"visitor": "x", "user_agent": "bingbot/2.0"})
    assert stored_exposures(app) == 0


def test_force_serves_a_variant_and_records_nothing(app: Flask, client: FlaskClient) -> None:
    for variant in ("trial", "guide"):
        reply = client.get(f"/api/assign?visitor=qa&experiment=shop&force={variant}").get_json()
        assert reply["assignments"][0]["variant"] == variant
    assert stored_exposures(app) == 0


def test_paused_serves_the_control_without_recording(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    write_experiment(experiments_dir, status="paused")
    reload_experiments(app)
    for i in range(20):
        reply = client.get(f"/api/assign?visitor=p{i}&experiment=shop").get_json()
        assert reply["assignments"][0]["variant"] == "trial"
    assert stored_exposures(app) == 0
    assert client.get("/api/assign?visitor=p1").get_json()["assignments"] == []


def test_concluded_serves_the_winner_without_recording(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    path = write_experiment(experiments_dir, status="concluded")
    path.write_text(
        path.read_text().replace('status = "concluded"', 'status = "concluded"\nwinner = "guide"')
    )
    reload_experiments(app)
    for i in range(20):
        reply = client.get(f"/api/assign?visitor=c{i}&experiment=shop").get_json()
        assert reply["assignments"][0]["variant"] == "guide"
    assert stored_exposures(app) == 0


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("", 400, "missing_visitor"),
        ("visitor=", 400, "missing_visitor"),
        ("visitor=" + "x" * 129, 400, "bad_visitor"),
        ("visitor=has%20space", 400, "bad_visitor"),
        ("visitor=%3Cscript%3E", 400, "bad_visitor"),
        ("visitor=a&experiment=nope", 404, "unknown_experiment"),
        ("visitor=a&experiment=NOPE%21", 404, "unknown_experiment"),
        ("visitor=a&experiment=shop&force=nope", 400, "unknown_variant"),
        ("visitor=a&force=trial", 400, "bad_request"),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    app: Flask, client: FlaskClient, query: str, status: int, code: str
) -> None:
    assert_error(client.get(f"/api/assign?{query}"), status, code)
    assert stored_exposures(app) == 0


@pytest.mark.parametrize(
    "body", [b"[1, 2]", b"not json", b'"a string"', b"\xff\xfe", b'{"visitor": 5}']
)
def test_bad_post_bodies_get_a_4xx(client: FlaskClient, body: bytes) -> None:
    reply = client.post("/api/assign", data=body, content_type="application/json")
    assert reply.status_code == 400
    assert reply.get_json()["error"]["code"] in {"bad_json", "bad_visitor"}


def test_a_128_character_visitor_id_is_fine(client: FlaskClient) -> None:
    assert client.get("/api/assign?visitor=" + "v" * 128).status_code == 200
