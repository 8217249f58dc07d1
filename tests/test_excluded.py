"""Excluded requests: each reason counted end to end through the HTTP API, nothing
for recorded visitors, one write a request, a failing counter never fails the
request, and the results document, CSV and page show the counts."""

from __future__ import annotations

import csv
import io
import logging
import textwrap
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from abconv.assignment import in_layer_share, in_traffic
from abconv.results.excluded import REASONS
from abconv.store import utcnow
from abconv.store.tables import EXCLUDED_COUNT
from abconv.web.embed import VISITOR_COOKIE
from tests.conftest import write_experiment
from tests.test_landing import PAGE
from tests.test_layers import write_layered

NONE = dict.fromkeys(REASONS, 0)
BOT = {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}
VISITORS = [f"v{i}" for i in range(200)]


@pytest.fixture
def experiments_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "experiments"
    folder.mkdir()
    write_experiment(folder)  # shop, running
    write_experiment(folder, "held", status="paused")
    write_experiment(folder, "thin", traffic=0.5)
    done = write_experiment(folder, "done", status="concluded")
    done.write_text(done.read_text().replace('"concluded"', '"concluded"\nwinner = "guide"'))
    write_layered(folder, "hero", 1, 0.5)
    write_layered(folder, "button", 2, 0.5)
    (folder / "pricing.toml").write_text(
        textwrap.dedent(PAGE).format(key="pricing", status="running", extra="")
    )
    return folder


def excluded(client: FlaskClient, key: str) -> dict[str, int]:
    reply = client.get(f"/api/experiments/{key}/results")
    assert reply.status_code == 200, reply.get_data(as_text=True)
    return reply.get_json()["excluded"]  # type: ignore[no-any-return]


def assign(client: FlaskClient, query: str, **headers: str) -> dict[str, Any]:
    reply = client.get(f"/api/assign?{query}", headers=headers)
    assert reply.status_code == 200, reply.get_data(as_text=True)
    return reply.get_json()  # type: ignore[no-any-return]


def enrolled(client: FlaskClient, query: str, **headers: str) -> bool:
    [assignment] = assign(client, query, **headers)["assignments"]
    return assignment["enrolled"]  # type: ignore[no-any-return]


def stored_rows(app: Flask) -> list[tuple[Any, ...]]:
    with app.extensions["abconv"].store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(EXCLUDED_COUNT))]


def test_each_reason_is_counted_through_the_api(app: Flask, client: FlaskClient) -> None:
    assert (
        assign(client, "visitor=b1&experiment=shop", **BOT)["assignments"][0]["enrolled"] is False
    )
    assign(client, "visitor=b2&experiment=shop&user_agent=Googlebot/2.1")  # a server-side caller
    for _ in range(3):
        assign(client, "visitor=f1&experiment=shop&force=guide")
    assign(client, "visitor=p1&experiment=held")
    outside = next(v for v in VISITORS if not in_traffic("thin", v, 0.5))
    inside = next(v for v in VISITORS if in_traffic("thin", v, 0.5))
    assert (
        assign(client, f"visitor={outside}&experiment=thin")["assignments"][0]["enrolled"] is False
    )
    assert assign(client, f"visitor={inside}&experiment=thin")["assignments"][0]["enrolled"] is True
    layer = app.extensions["abconv"].experiments.layer("homepage")
    elsewhere = next(v for v in VISITORS if in_layer_share(layer, "button", v))
    assign(client, f"visitor={elsewhere}&experiment=hero")
    assert assign(client, "visitor=w1&experiment=done")["assignments"][0]["variant"] == "guide"

    assert excluded(client, "shop") == {**NONE, "bot": 2, "forced": 3}
    assert excluded(client, "held") == {**NONE, "not_running": 1}
    assert excluded(client, "thin") == {**NONE, "outside_traffic": 1}
    assert excluded(client, "hero") == {**NONE, "layer": 1}
    assert excluded(client, "button") == NONE
    assert excluded(client, "done") == {**NONE, "concluded": 1}
    document = client.get("/api/experiments/shop/results").get_json()
    today = utcnow().date().isoformat()
    assert document["excluded_by_day"] == [{"day": today, **NONE, "bot": 2, "forced": 3}]


def test_landing_pages_count_bots_head_and_force(app: Flask, client: FlaskClient) -> None:
    client.set_cookie(VISITOR_COOKIE, "lp1")
    assert client.get("/lp/pricing", headers=BOT).status_code == 200
    assert client.head("/lp/pricing").status_code == 200  # a link checker: a bot
    assert client.get("/lp/pricing?force=one-plan").status_code == 200
    assert client.get("/lp/pricing").status_code == 200  # recorded
    assert client.get("/lp/pricing").status_code == 200  # returning: recorded already
    assert excluded(client, "pricing") == {**NONE, "bot": 2, "forced": 1}
    assert app.extensions["abconv"].store.count_rows("exposure", "pricing") == 1


def test_recorded_visitors_are_counted_nowhere_and_cost_no_write(
    app: Flask, client: FlaskClient, experiments_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = app.extensions["abconv"].store
    calls: list[dict[str, str]] = []
    counting = store.count_excluded
    monkeypatch.setattr(store, "count_excluded", lambda r, d: (calls.append(r), counting(r, d)))
    inside = next(v for v in VISITORS if in_traffic("thin", v, 0.5))
    for visitor in [*VISITORS[:20], inside]:
        for _ in range(2):  # a first visit, then a returning one
            assign(client, f"visitor={visitor}&experiment=shop")
            assign(client, f"visitor={visitor}&experiments=shop,pricing")
    assign(client, f"visitor={inside}&experiment=thin")
    # Traffic cut to almost nothing: the enrolled visitor keeps their variant, uncounted.
    write_experiment(experiments_dir, "thin", traffic=0.01)
    app.extensions["abconv"].experiments.refresh()
    assert not in_traffic("thin", inside, 0.01)
    assert enrolled(client, f"visitor={inside}&experiment=thin") is True
    assert calls == [] and stored_rows(app) == []
    assert excluded(client, "shop") == excluded(client, "thin") == NONE


def test_one_write_for_a_request_that_leaves_out_several(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = app.extensions["abconv"].store
    calls: list[dict[str, str]] = []
    counting = store.count_excluded
    monkeypatch.setattr(store, "count_excluded", lambda r, d: (calls.append(r), counting(r, d)))
    assign(client, "visitor=m1&experiments=held,done,shop,nothing-here", **BOT)
    assert calls == [{"held": "not_running", "done": "concluded", "shop": "bot"}]
    assert excluded(client, "shop")["bot"] == excluded(client, "held")["not_running"] == 1


@pytest.mark.parametrize("failure", [RuntimeError("boom"), sa.exc.OperationalError("x", {}, None)])
def test_a_counter_that_fails_does_not_fail_the_request(
    app: Flask,
    client: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failure: Exception,
) -> None:
    expected = assign(client, "visitor=x1&experiment=shop&force=guide")

    def broken(reasons: object, day: object) -> None:
        raise failure

    monkeypatch.setattr(app.extensions["abconv"].store, "count_excluded", broken)
    with caplog.at_level(logging.WARNING, logger="abconv.service"):
        assert assign(client, "visitor=x1&experiment=shop&force=guide") == expected
        [held] = assign(client, "visitor=x2&experiment=held")["assignments"]
        assert (held["variant"], held["enrolled"]) == ("trial", False)  # the control
    assert "excluded requests not counted" in caplog.text
    assert excluded(client, "shop") == {**NONE, "forced": 1}  # the first one only


def test_a_database_that_refuses_the_counter_still_serves(app: Flask, client: FlaskClient) -> None:
    expected = assign(client, "visitor=y1&experiment=shop", **BOT)
    with app.extensions["abconv"].store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE excluded_count"))
    assert assign(client, "visitor=y1&experiment=shop", **BOT) == expected
    reply = client.get("/lp/pricing?force=one-plan")
    assert reply.status_code == 200 and "One plan for all" in reply.get_data(as_text=True)
    recorded = assign(client, "visitor=y2&experiment=shop")  # recording is untouched
    assert recorded["assignments"][0]["enrolled"] is True


HOSTILE = ['<script>alert("x")</script>', "=HYPERLINK(1)"]


def test_the_document_csv_and_page_show_the_counts(app: Flask, client: FlaskClient) -> None:
    store = app.extensions["abconv"].store
    today = utcnow().date()
    yesterday = today - timedelta(days=1)
    for _ in range(1234):
        store.count_excluded({"shop": "bot"}, yesterday)
    store.count_excluded({"shop": "outside_traffic", "thin": "bot"}, today)
    store.count_excluded({"shop": "layer"}, today)
    for reason in HOSTILE:  # written around the API: not a reason this version knows
        store.count_excluded({"shop": reason}, today)
    document = client.get("/api/experiments/shop/results").get_json()
    assert document["excluded"] == {**NONE, "bot": 1234, "outside_traffic": 1, "layer": 1}
    assert document["excluded_by_day"] == [
        {"day": yesterday.isoformat(), **NONE, "bot": 1234},
        {"day": today.isoformat(), **NONE, "outside_traffic": 1, "layer": 1},
    ]

    text = client.get("/api/experiments/shop/results.csv").get_data(as_text=True)
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["row"] == "excluded"]
    assert [(r["excluded_reason"], r["excluded_requests"]) for r in rows] == [
        ("bot", "1234"),
        ("outside_traffic", "1"),
        ("layer", "1"),
    ]
    assert rows[0]["decision_status"] == document["decision"]["status"]
    assert "script" not in text and "HYPERLINK" not in text

    page = client.get("/experiments/shop").get_data(as_text=True)
    assert '<section class="excluded" id="not-counted">' in page
    section = page[page.index('id="not-counted"') : page.index('<section class="variants">')]
    for reason, meaning in REASONS.items():
        assert f'data-reason="{reason}"' in section
        assert meaning.replace("'", "&#39;") in section
    assert '<td class="number" data-label="Requests">1,234</td>' in section
    assert "consent" in section and "<script>" not in section and "HYPERLINK" not in page


def test_a_new_experiment_shows_zeros(client: FlaskClient) -> None:
    document = client.get("/api/experiments/button/results").get_json()
    assert document["excluded"] == NONE and document["excluded_by_day"] == []
    page = client.get("/experiments/button").get_data(as_text=True)
    assert "Not counted" in page


def test_a_counter_adds_up_in_one_row_per_day(app: Flask, client: FlaskClient) -> None:
    store = app.extensions["abconv"].store
    store.count_excluded({"shop": "forced"}, date(2026, 1, 1))
    store.count_excluded({"shop": "forced"}, date(2026, 1, 1))
    assert stored_rows(app) == [("shop", "forced", date(2026, 1, 1), 2)]
