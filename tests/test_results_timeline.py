"""``timeline`` and ``progress``: cumulative figures against hand counts; lifts as the analysis."""

from __future__ import annotations

import datetime
import math
from typing import Any

import pytest

from abconv import analyze
from abconv.experiments import Experiment, Goal
from abconv.results import analysis_input, results_document
from abconv.store.counts import DayCounts, GoalCounts, ResultCounts
from abconv.vocabulary import GoalKind, Method
from tests.results_counts import experiment

D1, D2, D3 = (datetime.date(2026, 11, d) for d in (1, 2, 4))
NOW = datetime.datetime(2026, 11, 5, 8, 30)
GOALS = (
    Goal("purchase", GoalKind.HARD, value=False, primary=True),
    Goal("guide", GoalKind.SOFT, value=False, primary=False),
)

# New on each day: visitors per variant, and first conversions per (goal, variant).
DAYS = [
    DayCounts(D1, {"control": 1000}, {("purchase", "control"): 30, ("guide", "control"): 90}),
    DayCounts(
        D2,
        {"control": 1100, "B": 2050},
        {("purchase", "control"): 33, ("purchase", "B"): 80, ("guide", "B"): 150},
    ),
    DayCounts(D3, {"B": 20}, {("purchase", "B"): 4, ("guide", "control"): 100}),
]
# By hand, cumulative at the end of each day:
#   D1: control 1000 visitors, 30 purchase, 90 guide; B 0
#   D2: control 2100, 63, 90;   B 2050, 80, 150
#   D3: control 2100, 63, 190;  B 2070, 84, 150
BY_HAND = {
    "2026-11-01": {"control": (1000, 30, 90), "B": (0, 0, 0)},
    "2026-11-02": {"control": (2100, 63, 90), "B": (2050, 80, 150)},
    "2026-11-04": {"control": (2100, 63, 190), "B": (2070, 84, 150)},
}


def day_counts(days: list[DayCounts] = DAYS) -> ResultCounts:
    """Totals that agree with the days."""
    visitors = {"control": 2100, "B": 2070}
    converting = {("purchase", "control"): 63, ("purchase", "B"): 84}
    converting |= {("guide", "control"): 190, ("guide", "B"): 150}
    goals = {key: GoalCounts(x, x, 0.0, 0.0, 0.0, 0) for key, x in converting.items()}
    return ResultCounts(visitors, goals, days, [])


def cumulative_input(exp: Experiment, day: str) -> dict[str, Any]:
    """The analysis input of the counts at the end of ``day``, from BY_HAND."""
    figures = BY_HAND[day]
    return {
        "experiment": exp.key,
        "control": "control",
        **exp.analysis.to_dict(),
        "variants": [{"key": v, "visitors": figures[v][0]} for v in ("control", "B")],
        "goals": [
            {
                "key": goal,
                "kind": kind,
                "primary": goal == "purchase",
                "counts": {v: {"conversions": figures[v][column]} for v in ("control", "B")},
            }
            for goal, kind, column in (("purchase", "hard", 1), ("guide", "soft", 2))
        ],
    }


@pytest.mark.parametrize("method", list(Method))
def test_cumulative_figures_and_lifts_by_the_experiment_s_method(method: Method) -> None:
    exp = experiment(GOALS, method=method)
    timeline = results_document(exp, day_counts(), NOW)["timeline"]
    assert timeline["goal"] == "purchase"
    assert [d["day"] for d in timeline["days"]] == list(BY_HAND)
    for day in timeline["days"]:
        for variant, (visitors, purchase, guide) in BY_HAND[day["day"]].items():
            shown = day["variants"][variant]
            assert shown["visitors"] == visitors
            assert shown["goals"]["purchase"]["converting"] == purchase
            assert shown["goals"]["guide"]["converting"] == guide
            rate = None if visitors == 0 else purchase / visitors
            assert shown["goals"]["purchase"]["rate"] == rate
        # The lift on that day is what the analysis reports for that day's counts.
        [reported] = analyze(cumulative_input(exp, day["day"]))["goals"][0]["variants"][1:]
        expected = reported["vs_control"]
        assert day["lift"] == {
            "B": {"rel_lift": expected["rel_lift"], "rel_lift_ci": expected["rel_lift_ci"]}
        }
    first, second, _ = timeline["days"]
    assert first["lift"]["B"] == {"rel_lift": None, "rel_lift_ci": None}  # B had no visitors
    assert second["lift"]["B"]["rel_lift"] == pytest.approx((80 / 2050) / (63 / 2100) - 1)


def test_the_sequence_is_wider_than_the_fixed_n_interval() -> None:
    lifts = {}
    for method in (Method.FREQUENTIST, Method.SEQUENTIAL):
        days = results_document(experiment(GOALS, method=method), day_counts(), NOW)["timeline"]
        lifts[method] = days["days"][-1]["lift"]["B"]["rel_lift_ci"]
    fixed, sequence = lifts[Method.FREQUENTIST], lifts[Method.SEQUENTIAL]
    assert sequence[0] < fixed[0] < fixed[1] < sequence[1]


def test_looks_carry_the_cumulative_days_to_the_analysis() -> None:
    looks = analysis_input(experiment(GOALS), day_counts())["looks"]
    assert looks[1] == {
        "day": "2026-11-02",
        "visitors": {"control": 2100, "B": 2050},
        "conversions": {"purchase": {"control": 63, "B": 80}, "guide": {"control": 90, "B": 150}},
    }
    assert [look["day"] for look in looks] == list(BY_HAND)


def test_no_days_give_an_empty_timeline() -> None:
    document = results_document(experiment(GOALS), ResultCounts({}, {}, [], []), NOW)
    assert document["timeline"] == {"goal": "purchase", "days": []}
    assert document["progress"] == {
        "planned_visitors_per_variant": None,
        "visitors_per_variant": 0,
        "fraction": None,
        "days_running": None,
        "days_left": None,
    }


def test_progress_counts_days_from_the_first_exposure_and_days_left_at_that_pace() -> None:
    document = results_document(experiment(GOALS, method=Method.FREQUENTIST), day_counts(), NOW)
    progress, plan = document["progress"], document["plan"]
    planned = plan["visitors_needed_per_variant"]
    assert planned is not None and planned > 2070
    # Nov 1 to Nov 5, both included; the smallest variant (B, 2,070) sets the pace.
    assert progress["days_running"] == 5
    assert progress["visitors_per_variant"] == 2070
    assert progress["planned_visitors_per_variant"] == planned
    assert progress["fraction"] == plan["progress"] == pytest.approx(2070 / planned)
    assert progress["days_left"] == math.ceil((planned - 2070) / (2070 / 5))


def test_progress_once_the_plan_is_reached_has_no_days_left() -> None:
    days = [DayCounts(D1, {"control": 100_000, "B": 100_000}, {})]
    goals = {("purchase", v): GoalCounts(3000, 3000, 0.0, 0.0, 0.0, 0) for v in ("control", "B")}
    counts = ResultCounts({"control": 100_000, "B": 100_000}, goals, days, [])
    progress = results_document(experiment(GOALS), counts, NOW)["progress"]
    assert progress["fraction"] == 1.0 and progress["days_left"] == 0
