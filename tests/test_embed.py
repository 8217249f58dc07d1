"""What sites embed: /abconv.js as served, one assignment request for several
experiments, sendBeacon bodies, the demo shop, the engagement goal."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from abconv import create_app
from abconv.experiments.files import load_experiment_file as load_experiment
from abconv.experiments.model import ExperimentFileError
from tests.conftest import assert_error, experiment_toml, write_experiment

SNIPPET_LIMIT = 6 * 1024  # bytes as served, uncompressed (the bound)


def test_the_snippet_is_served_as_javascript_under_6_kb(client: FlaskClient) -> None:
    reply = client.get("/abconv.js")
    assert reply.status_code == 200 and reply.mimetype == "text/javascript"
    body = reply.get_data()
    assert len(body) <= SNIPPET_LIMIT
    assert len(gzip.compress(body)) < len(body) / 2
    assert reply.headers["Cache-Control"] == "public, max-age=300"
    assert reply.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert b"sendBeacon" in body and b"abconv_visitor" in body


def test_one_request_assigns_several_experiments_and_skips_unknown_keys(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    write_experiment(experiments_dir, "banner")
    reply = client.get("/api/assign?visitor=alice&experiments=shop,gone,banner,shop")
    assert reply.status_code == 200
    assert [a["experiment"] for a in reply.get_json()["assignments"]] == ["shop", "banner"]
    store = app.extensions["abconv"].store
    assert set(store.exposures_of("alice", ["shop", "banner"])) == {"shop", "banner"}
    posted = client.post("/api/assign", json={"visitor": "bob", "experiments": ["banner"]})
    assert [a["experiment"] for a in posted.get_json()["assignments"]] == ["banner"]


def test_an_unknown_key_alone_gives_an_empty_list(client: FlaskClient) -> None:
    reply = client.get("/api/assign?visitor=alice&experiments=gone")
    assert reply.status_code == 200 and reply.get_json()["assignments"] == []


@pytest.mark.parametrize(
    "query",
    [
        "experiments=shop&experiment=shop",
        "experiments=Shop!",
        "experiments=,,",
        "experiments=" + ",".join(f"e{n}" for n in range(51)),
        "experiments=shop&force=trial",
    ],
)
def test_bad_experiment_lists_get_a_400(client: FlaskClient, query: str) -> None:
    assert_error(client.get(f"/api/assign?visitor=alice&{query}"), 400, "bad_request")


def test_a_list_that_is_not_keys_gets_a_400(client: FlaskClient) -> None:
    reply = client.post("/api/assign", json={"visitor": "a", "experiments": [1, 2]})
    assert_error(reply, 400, "bad_request")


def test_a_beacon_body_sent_as_text_plain_is_recorded_once(app: Flask, client: FlaskClient) -> None:
    client.get("/api/assign?visitor=alice&experiment=shop")
    body = '{"visitor": "alice", "goal": "purchase", "value": 5, "event_id": "e-1"}'
    for _ in range(2):  # a retried beacon
        reply = client.post(
            "/api/convert", data=body, headers={"Content-Type": "text/plain;charset=UTF-8"}
        )
        assert reply.status_code == 200
    assert app.extensions["abconv"].store.count_rows("conversion", "shop") == 1


def test_the_demo_shop_embeds_the_snippet_and_marks_its_goals(client: FlaskClient) -> None:
    reply = client.get("/demo")
    assert reply.status_code == 200 and reply.mimetype == "text/html"
    page = reply.get_data(as_text=True)
    assert '<script src="/abconv.js" async></script>' in page
    assert 'data-abconv="homepage-cta"' in page
    for goal in ('"newsletter"', '"guide-download"', '"purchase" data-abconv-value="49"'):
        assert f"data-abconv-goal={goal}" in page
    with client.get("/static/landing.css") as css:
        assert css.status_code == 200


def test_the_allowed_origin_reads_a_several_experiment_reply(environ: dict[str, str]) -> None:
    app = create_app({**environ, "ABCONV_ALLOWED_ORIGINS": "https://shop.example.com"})
    try:
        reply = app.test_client().get(
            "/api/assign?visitor=a&experiments=shop",
            headers={"Origin": "https://shop.example.com"},
        )
    finally:
        app.extensions["abconv"].store.dispose()
    assert reply.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"


# -- engagement ---------------------------------------------------------------


def engaged_experiment(folder: Path, key: str = "shop", extra: str = "") -> Path:
    path = write_experiment(folder, key)
    text = path.read_text().replace('kind = "cta"', 'kind = "cta"\nengagement = true')
    path.write_text(text + extra)
    return path


def test_engagement_adds_the_soft_goal_engaged(tmp_path: Path) -> None:
    experiment = load_experiment(engaged_experiment(tmp_path))
    goal = experiment.goal("engaged")
    assert experiment.engagement and goal is not None
    assert str(goal.kind) == "soft" and not goal.primary and not goal.value
    assert experiment.to_dict()["engagement"] is True


def test_a_goal_called_engaged_beside_engagement_is_an_error(tmp_path: Path) -> None:
    path = engaged_experiment(tmp_path, extra='\n[[goals]]\nkey = "engaged"\nkind = "soft"\n')
    with pytest.raises(ExperimentFileError, match="engagement = true adds the goal"):
        load_experiment(path)


def test_engagement_must_be_true_or_false(tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    path.write_text(experiment_toml().replace('kind = "cta"', 'kind = "cta"\nengagement = 1'))
    with pytest.raises(ExperimentFileError, match="engagement"):
        load_experiment(path)


def test_enrolled_visitors_are_told_to_report_engagement(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    engaged_experiment(experiments_dir)
    enrolled = client.get("/api/assign?visitor=alice&experiment=shop").get_json()
    assert enrolled["assignments"][0]["engagement"] is True
    forced = client.get("/api/assign?visitor=bob&experiment=shop&force=guide").get_json()
    assert "engagement" not in forced["assignments"][0]
    reply = client.post("/api/convert", json={"visitor": "alice", "goal": "engaged"})
    assert [r["kind"] for r in reply.get_json()["recorded"]] == ["soft"]
    results = client.get("/api/experiments/shop/results").get_json()
    assert "engaged" in str(results)
