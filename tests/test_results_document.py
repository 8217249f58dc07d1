"""The results document from ResultCounts: the analysis of counts computed from raw events."""

from __future__ import annotations

import datetime
import random
import subprocess
import sys
from collections import defaultdict
from typing import Any

import pytest

from abconv import analyze
from abconv.experiments import Experiment, Goal
from abconv.results import results_document
from abconv.vocabulary import GoalKind, Method
from tests.results_counts import DAY, Conversion, Exposure, counts_from_events, experiment

NOW = datetime.datetime(2026, 11, 20)
GOALS = (
    Goal("purchase", GoalKind.HARD, value=True, primary=True, cap=60.0),
    Goal("refund", GoalKind.HARD, value=True, primary=False),
    Goal("guide", GoalKind.SOFT, value=False, primary=False),
)


def random_events(seed: int) -> tuple[list[Exposure], list[Conversion]]:
    """Three variants over ten days; repeat conversions, values, some totals above the cap."""
    rng = random.Random(seed)
    exposures, conversions = [], []
    for i in range(900):
        at = datetime.datetime.combine(DAY, datetime.time()) + datetime.timedelta(
            days=rng.randrange(10), seconds=rng.randrange(86_400)
        )
        visitor = f"v{i}"
        exposures.append(Exposure(visitor, rng.choice(["control", "B", "C"]), at))
        for goal, chance in (("purchase", 0.12), ("refund", 0.03), ("guide", 0.2)):
            while rng.random() < chance:  # 0, 1 or more conversions
                later = at + datetime.timedelta(hours=rng.randrange(72))
                value = None if goal == "guide" else round(rng.uniform(1, 50), 2)
                conversions.append(Conversion(visitor, goal, later, value))
    return exposures, conversions


def by_hand(exp: Experiment, exposures: list[Exposure], conversions: list[Conversion]) -> Any:
    """The ``abconv analyze`` input, counted from the events with plain loops."""
    variant_of = {e.visitor: e.variant for e in exposures}
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    events: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c in conversions:
        totals[c.goal][c.visitor] += c.value or 0.0
        events[c.goal][c.visitor] += 1
    goals = []
    for goal in exp.goals:
        counts = {}
        for v in ("control", "B", "C"):
            mine = [visitor for visitor in totals[goal.key] if variant_of[visitor] == v]
            values = [totals[goal.key][visitor] for visitor in mine]
            n = [events[goal.key][visitor] for visitor in mine]
            entry: dict[str, float] = {"conversions": len(values)}
            entry |= {"events": sum(n), "events_sum_squares": sum(k * k for k in n)}
            if goal.value:
                capped = [t if goal.cap is None else min(t, goal.cap) for t in values]
                entry["value_sum"] = sum(capped)
                entry["value_sum_squares"] = sum(t * t for t in capped)
                entry["value_sum_cubes"] = sum(t**3 for t in capped)
                entry["value_events_sum"] = sum(t * k for t, k in zip(capped, n, strict=True))
            counts[v] = entry
        goals.append(
            {
                "key": goal.key,
                "kind": str(goal.kind),
                "primary": goal.primary,
                "value": goal.value,
                "counts": counts,
            }
        )
    return {
        "experiment": "shop",
        "control": "control",
        **exp.analysis.to_dict(),
        "variants": [
            {"key": v, "visitors": sum(1 for e in exposures if e.variant == v)}
            for v in ("control", "B", "C")
        ],
        "goals": goals,
        "looks": looks_by_hand(exp, exposures, conversions),
    }


def looks_by_hand(
    exp: Experiment, exposures: list[Exposure], conversions: list[Conversion]
) -> list[dict[str, Any]]:
    """Cumulative counts at the end of every UTC day on which something happened."""
    variant_of = {e.visitor: e.variant for e in exposures}
    first: dict[tuple[str, str], datetime.date] = {}
    for c in conversions:
        key = (c.goal, c.visitor)
        first[key] = min(first.get(key, c.at.date()), c.at.date())
    days = sorted({e.at.date() for e in exposures} | set(first.values()))
    variants = ("control", "B", "C")
    return [
        {
            "day": day.isoformat(),
            "visitors": {
                v: sum(1 for e in exposures if e.variant == v and e.at.date() <= day)
                for v in variants
            },
            "conversions": {
                goal.key: {
                    v: sum(
                        1
                        for (g, visitor), at in first.items()
                        if g == goal.key and variant_of[visitor] == v and at <= day
                    )
                    for v in variants
                }
                for goal in exp.goals
            },
        }
        for day in days
    ]


@pytest.mark.parametrize("method", list(Method))
@pytest.mark.parametrize("seed", [1, 2])
def test_results_from_counts_equal_the_analysis_of_hand_counted_events(
    method: Method, seed: int
) -> None:
    exp = experiment(GOALS, ("control", "B", "C"), method=method, min_visitors=10)
    exposures, conversions = random_events(seed)
    document = results_document(exp, counts_from_events(exp, exposures, conversions), NOW)
    expected = analyze(by_hand(exp, exposures, conversions))
    added = {"soft_to_hard", "bounce", "timeline", "progress", "excluded", "excluded_by_day"}
    assert set(document) == set(expected) | added
    for field in expected:
        if field != "goals":
            assert document[field] == expected[field], field
    cut = 0
    for shown, reference in zip(document["goals"], expected["goals"], strict=True):
        for variant, ref in zip(shown["variants"], reference["variants"], strict=True):
            value = variant["value"]
            capped = None if value is None else value.pop("capped_visitors")
            assert variant == ref
            if shown["key"] == "purchase":  # capped at 60 by hand
                visitors = {e.visitor for e in exposures if e.variant == variant["key"]}
                totals: dict[str, float] = defaultdict(float)
                for c in conversions:
                    if c.goal == "purchase" and c.visitor in visitors:
                        totals[c.visitor] += c.value or 0.0
                assert capped == sum(1 for t in totals.values() if t > 60.0)
                cut += capped or 0
    assert cut > 0  # the cap was exercised
    # The last day of the timeline holds the totals.
    last = document["timeline"]["days"][-1]["variants"]
    for variant in expected["goals"][0]["variants"]:
        assert last[variant["key"]]["visitors"] == variant["visitors"]
        assert last[variant["key"]]["goals"]["purchase"]["converting"] == variant["conversions"]


def test_the_results_package_imports_no_framework() -> None:
    script = (
        "import sys, abconv.results\n"
        "banned = ('flask', 'sqlmodel', 'sqlalchemy', 'werkzeug')\n"
        "print(','.join(sorted(m for m in banned if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
