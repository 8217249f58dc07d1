"""Bounce rate of ``engagement = true`` experiments: 1 − the engaged rate, lower is better.

Hand counts: control 400 visitors of whom 160 engaged (240 bounces, 60 %),
B 410 of whom 205 engaged (205 bounces, 50 %). References: statsmodels'
``proportion_confint`` (Wilson), ``confint_proportions_2indep`` (Wald, the
frequentist difference's interval) and ``proportions_ztest`` (pooled).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

from abconv.experiments import Goal
from abconv.results import results_csv, results_document
from abconv.store.counts import GoalCounts, ResultCounts
from abconv.vocabulary import GoalKind, Method
from abconv.web import verdict
from tests.results_counts import experiment
from tests.test_embed import engaged_experiment

NOW = datetime.datetime(2026, 11, 9, 18)
GOALS = (
    Goal("purchase", GoalKind.HARD, value=False, primary=True),
    Goal("engaged", GoalKind.SOFT, value=False, primary=False),
)
VISITORS = {"control": 400, "B": 410}
ENGAGED = {"control": 160, "B": 205}


def document(method: Method = Method.FREQUENTIST, engagement: bool = True) -> dict[str, Any]:
    exp = dataclasses.replace(experiment(GOALS, method=method), engagement=engagement)
    goals = {("engaged", v): GoalCounts(n, n, 0.0, 0.0, 0.0, 0) for v, n in ENGAGED.items()}
    goals |= {("purchase", v): GoalCounts(12, 12, 0.0, 0.0, 0.0, 0) for v in VISITORS}
    return results_document(exp, ResultCounts(VISITORS, goals, [], []), NOW)


@pytest.mark.parametrize("method", list(Method))
def test_the_bounce_rate_is_counted_by_hand_and_turned_the_right_way(method: Method) -> None:
    found = document(method)
    bounce = found["bounce"]
    assert bounce["goal"] == "engaged"
    control, treatment = bounce["variants"]
    assert (control["key"], control["control"], treatment["key"]) == ("control", True, "B")
    assert (control["visitors"], control["bounces"]) == (400, 240)
    assert (treatment["visitors"], treatment["bounces"]) == (410, 205)
    assert control["rate"] == pytest.approx(0.6) and treatment["rate"] == pytest.approx(0.5)
    for variant in (control, treatment):
        low, high = proportion_confint(variant["bounces"], variant["visitors"], 0.05, "wilson")
        assert variant["rate_ci"] == pytest.approx([low, high], abs=1e-12)
    assert control["vs_control"] is None
    versus = treatment["vs_control"]
    assert versus["abs_diff"] == pytest.approx(-0.1)  # fewer bounces: negative
    assert versus["rel_diff"] == pytest.approx(0.5 / 0.6 - 1)
    _, p_value = proportions_ztest([205, 240], [410, 400])
    engaged = next(g for g in found["goals"] if g["key"] == "engaged")["variants"][1]
    if method is not Method.SEQUENTIAL:
        assert versus["p_value"] == pytest.approx(p_value, rel=1e-9)
    assert versus["p_value"] == engaged["vs_control"]["p_value"]
    # P(bounce lower) = P(engaged higher): high here, as 10 points fewer bounces should be.
    assert versus["chance_lower"] == engaged["vs_control"]["chance_to_beat_control"] > 0.99
    low, high = versus["abs_diff_ci"]
    assert low < -0.1 < high  # around the difference (the bounce's, not the engaged rate's)
    if method is not Method.SEQUENTIAL:  # the confidence sequence is wider
        ref = confint_proportions_2indep(205, 410, 240, 400, method="wald", compare="diff")
        assert [low, high] == pytest.approx(list(ref), abs=1e-12)


def test_no_bounce_without_engagement() -> None:
    found = document(engagement=False)
    assert found["bounce"] is None
    assert not [r for r in csv.DictReader(io.StringIO(results_csv(found))) if r["row"] == "bounce"]


def test_without_visitors_the_rates_are_undefined_not_errors() -> None:
    exp = dataclasses.replace(experiment(GOALS), engagement=True)
    found = results_document(exp, ResultCounts({}, {}, [], []), NOW)
    bounce = found["bounce"]
    for variant in bounce["variants"]:
        assert (variant["visitors"], variant["bounces"], variant["rate"]) == (0, 0, None)
        assert variant["rate_ci"] is None
    assert bounce["variants"][1]["vs_control"] == {
        "abs_diff": None, "abs_diff_ci": None, "rel_diff": None,
        "p_value": None,
        "chance_lower": found["goals"][1]["variants"][1]["vs_control"]["chance_to_beat_control"],
    }  # fmt: skip
    assert verdict.bounce_sentences(bounce, "bayesian") == [
        "B: not enough visitors yet to compare."
    ]


BOUNCE_PATHS = {
    "visitors": ("visitors",),
    "bounces": ("bounces",),
    "bounce_rate": ("rate",),
    "bounce_rate_ci_low": ("rate_ci", 0),
    "bounce_rate_ci_high": ("rate_ci", 1),
    "bounce_abs_diff": ("vs_control", "abs_diff"),
    "bounce_abs_diff_ci_low": ("vs_control", "abs_diff_ci", 0),
    "bounce_abs_diff_ci_high": ("vs_control", "abs_diff_ci", 1),
    "bounce_rel_diff": ("vs_control", "rel_diff"),
    "bounce_p_value": ("vs_control", "p_value"),
    "bounce_chance_lower": ("vs_control", "chance_lower"),
}


def test_the_csv_has_a_bounce_row_per_variant_field_by_field() -> None:
    from tests.test_results_csv import parsed, read

    found = document(Method.BAYESIAN)
    rows = [r for r in csv.DictReader(io.StringIO(results_csv(found))) if r["row"] == "bounce"]
    assert [(r["goal"], r["variant"], r["control"]) for r in rows] == [
        ("engaged", "control", "true"),
        ("engaged", "B", "false"),
    ]
    for row, variant in zip(rows, found["bounce"]["variants"], strict=True):
        for column, path in BOUNCE_PATHS.items():
            assert parsed(row[column]) == read(path, variant), column
        assert row["decision_status"] == found["decision"]["status"]
    assert rows[1]["bounce_abs_diff"].startswith("-")  # a number, not a neutralised text


@pytest.mark.parametrize("view", ["bayesian", "frequentist"])
def test_the_sentence_says_fewer_bounces_for_a_lower_rate(view: verdict.View) -> None:
    [sentence] = verdict.bounce_sentences(document(Method.BAYESIAN)["bounce"], view)
    assert sentence.startswith("B: 50.0 % bounced vs 60.0 % on control: 10.0 points fewer")
    assert "likely between 16.8 points fewer and 3.2 points fewer" in sentence
    if view == "bayesian":
        assert sentence.endswith("chance of fewer bounces.")
    else:
        assert sentence.endswith("unlikely to be chance.")
    assert verdict.bounce_sentences(None, view) == []


def test_more_bounces_are_said_to_be_more() -> None:
    bounce = document()["bounce"]
    bounce["variants"][1]["vs_control"] |= {"abs_diff": 0.02, "abs_diff_ci": [-0.01, 0.05]}
    [sentence] = verdict.bounce_sentences(bounce, "frequentist")
    assert ": 2.0 points more (likely between 1.0 points fewer and 5.0 points more)" in sentence


def test_the_api_the_csv_and_the_page_count_bounces_of_stored_events(
    client: FlaskClient, experiments_dir: Path
) -> None:
    engaged_experiment(experiments_dir)
    shown: dict[str, list[bool]] = {"trial": [], "guide": []}
    for n in range(30):
        visitor = f"v{n}"
        reply = client.get(f"/api/assign?visitor={visitor}&experiment=shop").get_json()
        engages = n % 3 == 0
        if engages:
            client.post("/api/convert", json={"visitor": visitor, "goal": "engaged"})
            client.post("/api/convert", json={"visitor": visitor, "goal": "engaged"})  # once
        shown[reply["assignments"][0]["variant"]].append(engages)
    bounce = client.get("/api/experiments/shop/results").get_json()["bounce"]
    by_key = {v["key"]: v for v in bounce["variants"]}
    for key, engaged in shown.items():
        assert by_key[key]["visitors"] == len(engaged)
        assert by_key[key]["bounces"] == engaged.count(False)
    text = client.get("/api/experiments/shop/results.csv").get_data(as_text=True)
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["row"] == "bounce"]
    assert {r["variant"]: int(r["bounces"]) for r in rows} == {
        k: e.count(False) for k, e in shown.items()
    }
    page = client.get("/experiments/shop").get_data(as_text=True)
    assert 'id="bounce"' in page and "lower is better" in page
    assert "A bounce is a visitor who left without engaging" in page
