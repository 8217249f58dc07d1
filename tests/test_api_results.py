"""Results of a live experiment: stored events become the results document and CSV."""

from __future__ import annotations

import csv
import datetime
import io
import os
import random
from collections import defaultdict
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from abconv import analyze
from abconv.results import results_document
from abconv.store import Store, utcnow
from tests.conftest import assert_error, experiment_toml
from tests.results_counts import Conversion, Exposure, counts_from_events


def record(client: FlaskClient) -> None:
    """trial: 4 visitors, 2 buy (10 + 5 and 20); guide: 2 visitors, 1 signs up."""
    events: list[dict[str, object]] = [
        {"type": "exposure", "visitor": f"t{i}", "experiment": "shop", "variant": "trial"}
        for i in range(4)
    ]
    events += [
        {"type": "exposure", "visitor": f"g{i}", "experiment": "shop", "variant": "guide"}
        for i in range(2)
    ]
    events += [
        {"type": "conversion", "visitor": "t0", "goal": "purchase", "value": 10},
        {"type": "conversion", "visitor": "t0", "goal": "purchase", "value": 5},
        {"type": "conversion", "visitor": "t1", "goal": "purchase", "value": 20},
        {"type": "conversion", "visitor": "g0", "goal": "newsletter"},
    ]
    assert client.post("/api/events", json={"events": events}).status_code == 200


def test_results_count_visitors_converters_and_values(client: FlaskClient) -> None:
    record(client)
    document = client.get("/api/experiments/shop/results").get_json()
    assert document["experiment"] == "shop" and document["method"] == "bayesian"
    purchase, newsletter = document["goals"]
    trial, guide = purchase["variants"]
    assert (trial["key"], trial["control"], trial["visitors"], trial["conversions"]) == (
        "trial",
        True,
        4,
        2,
    )
    # Visitor values 15 and 20: sum 35, per visitor 35 / 4, AOV 35 / 2.
    assert trial["value"]["sum"] == 35 and trial["value"]["aov"] == 17.5
    assert trial["value"]["per_visitor"] == 8.75
    assert (guide["visitors"], guide["conversions"], guide["value"]["sum"]) == (2, 0, 0)
    assert (
        newsletter["variants"][1]["conversions"] == 1 and newsletter["variants"][1]["value"] is None
    )
    # Too few visitors for any verdict (min_visitors = 100 by default).
    assert document["decision"]["status"] == "keep_running"


def test_results_csv_has_a_row_per_goal_and_variant(client: FlaskClient) -> None:
    record(client)
    reply = client.get("/api/experiments/shop/results.csv")
    assert reply.status_code == 200 and reply.mimetype == "text/csv"
    every = list(csv.DictReader(io.StringIO(reply.get_data(as_text=True))))
    rows = [r for r in every if r["row"] == "goal"]
    goals_variants = [(r["goal"], r["variant"]) for r in rows]
    assert goals_variants == [
        (g, v) for g in ("purchase", "newsletter") for v in ("trial", "guide")
    ]
    assert rows[0]["conversions"] == "2" and rows[0]["value_sum"] == "35.0"
    assert rows[0]["abs_diff"] == "" and rows[1]["abs_diff"] != ""
    assert rows[0]["control"] == "true" and rows[1]["control"] == "false"
    # Then the soft goal newsletter → the hard goal purchase, per variant.
    pairs = [(r["soft_goal"], r["goal"], r["variant"]) for r in every if r["row"] == "soft_to_hard"]
    assert pairs == [("newsletter", "purchase", v) for v in ("trial", "guide")]


def test_results_of_an_empty_experiment_are_valid(client: FlaskClient) -> None:
    document = client.get("/api/experiments/shop/results").get_json()
    assert document["goals"][0]["variants"][0]["visitors"] == 0
    assert document["decision"]["status"] == "keep_running"


def test_results_of_an_unknown_experiment_are_404(client: FlaskClient) -> None:
    assert_error(client.get("/api/experiments/nope/results"), 404, "unknown_experiment")
    assert_error(client.get("/api/experiments/nope/results.csv"), 404, "unknown_experiment")


def test_results_equal_the_analysis_of_the_events_counted_by_hand(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    """Stored events → results equal ``abconv.analyze`` of counts computed here from the
    events (repeats, values, a cap, past times); with rollups, soft→hard and the
    timeline equal those of the same counts too."""
    path = experiments_dir / "shop.toml"
    path.write_text(experiment_toml().replace("primary = true\n", "primary = true\ncap = 40\n"))
    stamp = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))
    rng = random.Random(15)
    start = datetime.datetime(2026, 10, 1, 8)
    exposures, conversions = [], []
    for i in range(240):
        at = start + datetime.timedelta(days=rng.randrange(6), minutes=rng.randrange(1440))
        exposures.append(Exposure(f"v{i}", rng.choice(["trial", "guide"]), at))
        for goal, chance in (("purchase", 0.3), ("newsletter", 0.25)):
            while rng.random() < chance:
                later = at + datetime.timedelta(hours=rng.randrange(60))
                value = rng.choice([5.0, 12.5, 30.0]) if goal == "purchase" else None
                conversions.append(Conversion(f"v{i}", goal, later, value))
    events: list[dict[str, object]] = [
        {"type": "exposure", "visitor": e.visitor, "experiment": "shop", "variant": e.variant}
        | {"time": e.at.isoformat() + "Z"}
        for e in exposures
    ]
    events += [
        {"type": "conversion", "visitor": c.visitor, "goal": c.goal, "time": c.at.isoformat() + "Z"}
        | ({} if c.value is None else {"value": c.value})
        for c in conversions
    ]
    assert client.post("/api/events", json={"events": events}).status_code == 200
    experiment = app.extensions["abconv"].experiment("shop")
    assert experiment.goal("purchase").cap == 40
    counts = counts_from_events(experiment, exposures, conversions)
    document = client.get("/api/experiments/shop/results").get_json()
    # The analysis input, by hand from the events.
    totals: dict[tuple[str, str], float] = defaultdict(float)
    orders: dict[tuple[str, str], int] = defaultdict(int)
    for c in conversions:
        totals[c.goal, c.visitor] += c.value or 0.0
        orders[c.goal, c.visitor] += 1
    variant_of = {e.visitor: e.variant for e in exposures}
    hand_goals = []
    for goal in experiment.goals:
        per_variant = {}
        for v in ("trial", "guide"):
            keys = [(g, x) for g, x in totals if g == goal.key and variant_of[x] == v]
            mine = [min(totals[key], 40.0) for key in keys]
            n = [orders[key] for key in keys]
            entry: dict[str, float] = {"conversions": len(mine)}
            entry |= {"events": sum(n), "events_sum_squares": sum(k * k for k in n)}
            if goal.value:
                entry |= {
                    "value_sum": sum(mine),
                    "value_sum_squares": sum(t * t for t in mine),
                    "value_sum_cubes": sum(t**3 for t in mine),
                    "value_events_sum": sum(t * k for t, k in zip(mine, n, strict=True)),
                }
            per_variant[v] = entry
        hand_goals.append(
            {"key": goal.key, "kind": str(goal.kind), "primary": goal.primary}
            | {"value": goal.value, "counts": per_variant}
        )
    visitors = [
        {"key": v, "visitors": list(variant_of.values()).count(v)} for v in ("trial", "guide")
    ]
    expected = analyze(
        {"experiment": "shop", "control": "trial", **experiment.analysis.to_dict()}
        | {"variants": visitors, "goals": hand_goals}
    )
    for field in ("srm", "decision", "plan"):
        assert document[field] == expected[field]
    purchase = document["goals"][0]["variants"]
    assert [v["value"]["capped_visitors"] for v in purchase] == [
        counts.goals["purchase", v].capped_visitors for v in ("trial", "guide")
    ]
    for shown, reference in zip(document["goals"], expected["goals"], strict=True):
        for variant, ref in zip(shown["variants"], reference["variants"], strict=True):
            if variant["value"] is not None:
                variant["value"].pop("capped_visitors")
            assert close(variant, ref)
    assert sum(counts.goals["purchase", v].capped_visitors for v in ("trial", "guide")) > 0
    if hasattr(Store, "result_counts"):  # rollups: the daily and soft→hard figures too
        now = utcnow()
        by_hand = results_document(experiment, counts, now)
        assert document["timeline"] == by_hand["timeline"]
        assert document["soft_to_hard"] == by_hand["soft_to_hard"]
        assert document["progress"]["days_running"] == (now.date() - start.date()).days + 1


def close(shown: object, expected: object) -> bool:
    """Equal, numbers within 1e-9 (the database adds in its own order)."""
    if isinstance(shown, dict) and isinstance(expected, dict):
        return shown.keys() == expected.keys() and all(close(shown[k], expected[k]) for k in shown)
    if isinstance(shown, list) and isinstance(expected, list):
        return len(shown) == len(expected) and all(map(close, shown, expected))
    if isinstance(shown, float) and isinstance(expected, float):
        return shown == pytest.approx(expected, rel=1e-9, abs=1e-12)
    return shown == expected
