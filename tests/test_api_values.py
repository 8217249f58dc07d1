"""Values at the door and in the results: bounds, goals without values, caps, floods.

Each refusal is checked twice: the 400 reply and the rows that were (not) stored.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from abconv.inputs import MAX_EVENT_VALUE
from abconv.store.tables import CONVERSION
from tests.conftest import assert_error, experiment_toml


def set_experiment(app: Flask, folder: Path, text: str, key: str = "shop") -> None:
    """Write an experiment file and make the app's registry read it now."""
    path = folder / f"{key}.toml"
    path.write_text(text)
    stamp = path.stat().st_mtime_ns + 1_000_000_000  # seen as changed within one tick
    os.utime(path, ns=(stamp, stamp))
    app.extensions["abconv"].experiments.refresh()


def shop_with(purchase_lines: str, key: str = "shop", **fields: Any) -> str:
    """The shop experiment with extra lines in its purchase goal."""
    text = experiment_toml(key, **fields)
    return text.replace("primary = true\n", f"primary = true\n{purchase_lines}", 1)


def expose(client: FlaskClient, variants: dict[str, str], experiment: str = "shop") -> None:
    events = [
        {"type": "exposure", "visitor": v, "experiment": experiment, "variant": variant}
        for v, variant in variants.items()
    ]
    assert client.post("/api/events", json={"events": events}).status_code == 200


def stored(app: Flask) -> list[tuple[str, str, str, float | None]]:
    """Every conversion row: (experiment, visitor, goal, value)."""
    columns = (CONVERSION.c.experiment, CONVERSION.c.visitor, CONVERSION.c.goal, CONVERSION.c.value)
    query = sa.select(*columns).order_by(CONVERSION.c.id)
    with app.extensions["abconv"].store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query).all()]  # type: ignore[misc]


def convert_raw(client: FlaskClient, value: str, goal: str = "purchase") -> Any:
    """A conversion whose value is written as raw JSON text (NaN, 400 digits, ...)."""
    body = f'{{"visitor": "alice", "goal": "{goal}", "value": {value}}}'
    return client.post("/api/convert", data=body, content_type="application/json")


# -- the door ----------------------------------------------------------------

OUT_OF_RANGE = [
    "NaN", "Infinity", "-Infinity", "1e400", "-1", "-0.01", "1.1e50", "1e308",
    "1000000000.5", "1" + "0" * 399, "-" + "9" * 400, '"5"', "true", "[5]", '{"v": 5}',
]  # fmt: skip


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_a_value_out_of_range_is_refused_at_the_door(
    app: Flask, client: FlaskClient, value: str
) -> None:
    expose(client, {"alice": "trial"})
    error = assert_error(convert_raw(client, value), 400, "bad_value")
    assert error["message"].startswith("value must be a")
    assert len(error["message"]) < 200  # a 400-digit number is not echoed whole
    assert stored(app) == []


@pytest.mark.parametrize(("value", "kept"), [("0", 0.0), ("-0.0", 0.0), ("1000000000", 1e9)])
def test_values_at_the_bounds_are_kept(
    app: Flask, client: FlaskClient, value: str, kept: float
) -> None:
    expose(client, {"alice": "trial"})
    reply = convert_raw(client, value)
    assert reply.status_code == 200
    assert reply.get_json()["recorded"][0]["value"] == kept
    assert stored(app) == [("shop", "alice", "purchase", kept)]
    assert MAX_EVENT_VALUE == 1e9


def test_a_batch_with_a_value_out_of_range_stores_nothing(app: Flask, client: FlaskClient) -> None:
    events = [
        {"type": "exposure", "visitor": "alice", "experiment": "shop", "variant": "trial"},
        {"type": "conversion", "visitor": "alice", "goal": "purchase", "value": 1.1e50},
    ]
    error = assert_error(client.post("/api/events", json={"events": events}), 400, "invalid_events")
    assert error["details"][0].startswith("events[1].value must be a finite number from 0 to")
    assert stored(app) == [] and app.extensions["abconv"].store.count_rows("exposure") == 0


def test_a_value_on_a_goal_without_values_is_refused(app: Flask, client: FlaskClient) -> None:
    expose(client, {"alice": "trial"})
    error = assert_error(convert_raw(client, "5", goal="newsletter"), 400, "bad_value")
    assert "goal 'newsletter' takes no value" in error["message"]
    events = [{"type": "conversion", "visitor": "alice", "goal": "newsletter", "value": 0}]
    error = assert_error(client.post("/api/events", json={"events": events}), 400, "invalid_events")
    assert error["details"][0].startswith("events[0].value: goal 'newsletter' takes no value")
    assert stored(app) == []
    # Without a value it counts as before.
    assert client.post("/api/convert", json={"visitor": "alice", "goal": "newsletter"}).json
    assert stored(app) == [("shop", "alice", "newsletter", None)]


def test_an_experiment_whose_goal_takes_no_value_stores_none(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    no_value = experiment_toml("other").replace("value = true\n", "")
    set_experiment(app, experiments_dir, no_value, "other")
    expose(client, {"alice": "trial"})
    expose(client, {"alice": "guide"}, "other")
    reply = client.post("/api/convert", json={"visitor": "alice", "goal": "purchase", "value": 30})
    recorded = {row["experiment"]: row["value"] for row in reply.get_json()["recorded"]}
    assert recorded == {"shop": 30.0, "other": None}
    assert sorted(stored(app)) == [
        ("other", "alice", "purchase", None),
        ("shop", "alice", "purchase", 30.0),
    ]


def test_the_running_experiments_decide_whether_a_goal_takes_a_value(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    # "shop" pauses; "other" runs and its purchase takes no value: a value is refused.
    set_experiment(app, experiments_dir, experiment_toml(status="paused"))
    no_value = experiment_toml("other").replace("value = true\n", "")
    set_experiment(app, experiments_dir, no_value, "other")
    assert_error(convert_raw(client, "5"), 400, "bad_value")
    # Nothing runs: the files that define the goal decide, and "shop" takes values.
    set_experiment(app, experiments_dir, experiment_toml("other", status="draft"), "other")
    reply = convert_raw(client, "5")
    assert reply.status_code == 200 and reply.get_json()["recorded"] == []
    assert stored(app) == []


def test_a_value_above_the_goals_max_value_is_refused(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    set_experiment(app, experiments_dir, shop_with("max_value = 500\n"))
    expose(client, {"alice": "trial"})
    error = assert_error(convert_raw(client, "500.01"), 400, "bad_value")
    assert error["message"] == (
        "value 500.01 is above the max_value 500 of goal 'purchase' (experiment 'shop')"
    )
    events = [{"type": "conversion", "visitor": "alice", "goal": "purchase", "value": 501}]
    error = assert_error(client.post("/api/events", json={"events": events}), 400, "invalid_events")
    assert error["details"] == [
        "events[0].value 501 is above the max_value 500 of goal 'purchase' (experiment 'shop')"
    ]
    assert stored(app) == []
    assert convert_raw(client, "500").status_code == 200
    assert stored(app) == [("shop", "alice", "purchase", 500.0)]


# -- a visitor flooding conversions ---------------------------------------------

HONEST = {"t1": "trial", "t2": "trial", "g1": "guide", "g2": "guide", "mallory": "guide"}


def flood(client: FlaskClient, event_ids: str | None) -> None:
    """mallory sends 1,000 purchases of 1,000,000; honest visitors buy a little.

    ``event_ids``: None (no event ids), "distinct" or "same" (one id repeated).
    """
    for visitor, value in (("t1", 80), ("g1", 50), ("g2", 30), ("g2", 20)):
        event = {"visitor": visitor, "goal": "purchase", "value": value}
        assert client.post("/api/convert", json=event).status_code == 200
    for index in range(1000):
        event: dict[str, Any] = {"visitor": "mallory", "goal": "purchase", "value": 1e6}
        if event_ids is not None:
            event["event_id"] = f"order-{index if event_ids == 'distinct' else 0}"
        reply = client.post("/api/convert", json=event)
        assert reply.status_code == 200 and reply.get_json()["recorded"]


def purchase_of(client: FlaskClient, variant: str) -> dict[str, Any]:
    document = client.get("/api/experiments/shop/results").get_json()
    purchase = next(goal for goal in document["goals"] if goal["key"] == "purchase")
    found: dict[str, Any] = next(v for v in purchase["variants"] if v["key"] == variant)
    return found


@pytest.mark.parametrize(
    ("event_ids", "rows"), [(None, 1004), ("distinct", 1004), ("same", 5)], ids=str
)
def test_a_flood_counts_once_and_the_cap_bounds_its_value(
    app: Flask, client: FlaskClient, experiments_dir: Path, event_ids: str | None, rows: int
) -> None:
    set_experiment(app, experiments_dir, shop_with("cap = 2000\n"))
    expose(client, HONEST)
    flood(client, event_ids)
    # Distinct events are all kept (the results bound them); a repeated id is kept once.
    assert len(stored(app)) == rows
    guide = purchase_of(client, "guide")
    # Converting visitors g1, g2 and mallory, each once.
    assert (guide["visitors"], guide["conversions"]) == (3, 3)
    # By hand: mallory's total (1e9, or 1e6 with one repeated id) is capped at 2,000;
    # g1 50; g2 30 + 20.
    assert guide["value"]["sum"] == 2000 + 50 + 50
    assert guide["value"]["per_visitor"] == pytest.approx(2100 / 3)
    assert guide["value"]["aov"] == pytest.approx(2100 / 3)
    assert guide["value"]["capped_visitors"] == 1
    [row] = [
        r
        for r in app.extensions["abconv"].store.conversions_by_variant("shop", {"purchase": 2000})
        if r["variant"] == "guide"
    ]
    assert row["value_sum_squares"] == 2000**2 + 50**2 + 50**2
    trial = purchase_of(client, "trial")
    assert (trial["conversions"], trial["value"]["sum"], trial["value"]["capped_visitors"]) == (
        1,
        80,
        0,
    )
    text = client.get("/api/experiments/shop/results.csv").get_data(as_text=True)
    csv_rows = list(csv.DictReader(io.StringIO(text)))
    assert (csv_rows[1]["variant"], csv_rows[1]["capped_visitors"]) == ("guide", "1")


def test_without_a_cap_a_flood_still_counts_once(app: Flask, client: FlaskClient) -> None:
    expose(client, HONEST)
    flood(client, event_ids=None)
    guide = purchase_of(client, "guide")
    assert (guide["conversions"], guide["value"]["capped_visitors"]) == (3, 0)
    assert guide["value"]["sum"] == 1000 * 1e6 + 100  # what a cap is for


def test_a_cap_only_cuts_totals_above_it(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    set_experiment(app, experiments_dir, shop_with("cap = 50\n"))
    expose(client, HONEST)
    for visitor, value in (("t1", 80), ("t2", 50), ("g1", 49.5), ("g2", 30), ("g2", 30)):
        client.post("/api/convert", json={"visitor": visitor, "goal": "purchase", "value": value})
    trial, guide = purchase_of(client, "trial"), purchase_of(client, "guide")
    # trial: 80 → 50, 50 stays (not above); guide: 49.5 stays, 30 + 30 → 50.
    assert (trial["value"]["sum"], trial["value"]["capped_visitors"]) == (100, 1)
    assert (guide["value"]["sum"], guide["value"]["capped_visitors"]) == (99.5, 1)


# -- stored data out of the analysis' range ----------------------------------


def insert_conversion(app: Flask, visitor: str, value: float) -> None:
    """A conversion written around the door, as an old server or a script could."""
    row = {
        "experiment": "shop", "variant": "trial", "visitor": visitor, "goal": "purchase",
        "kind": "hard", "value": value, "event_id": None, "created_at": datetime(2026, 1, 1),
    }  # fmt: skip
    with app.extensions["abconv"].store.writing() as conn:
        conn.execute(CONVERSION.insert(), row)


@pytest.mark.parametrize("value", [1.1e50, 1e300])
def test_results_of_stored_data_out_of_range_answer_409(
    app: Flask,
    client: FlaskClient,
    experiments_dir: Path,
    caplog: pytest.LogCaptureFixture,
    value: float,
) -> None:
    set_experiment(app, experiments_dir, experiment_toml("other"), "other")
    expose(client, {"alice": "trial"})
    expose(client, {"bob": "trial"}, "other")
    assert client.post("/api/convert", json={"visitor": "bob", "goal": "purchase"}).json
    insert_conversion(app, "alice", value)
    caplog.clear()  # the info lines of the requests above
    with caplog.at_level(logging.ERROR, logger="abconv.results.document"):
        for route in ("/api/experiments/shop/results", "/api/experiments/shop/results.csv"):
            error = assert_error(client.get(route), 409, "stored_data_out_of_range")
            assert error["message"].startswith("experiment 'shop': the stored data are out")
            assert "value_sum" in error["message"]  # the field the analysis refused
    assert [r.getMessage()[:34] for r in caplog.records] == [
        "results of experiment 'shop': stor"
    ] * 2
    # Other experiments' results are untouched.
    other = client.get("/api/experiments/other/results")
    assert other.status_code == 200
    assert other.get_json()["goals"][0]["variants"][0]["conversions"] == 1
    assert client.get("/api/experiments/other/results.csv").status_code == 200
