"""Results of a live experiment: stored events become the results document and CSV."""

from __future__ import annotations

import csv
import io

from flask.testing import FlaskClient

from tests.conftest import assert_error


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
