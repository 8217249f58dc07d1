"""Input validation: every malformed input raises ValueError naming the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from abconv.stats import analyze
from abconv.stats.inputs import parse_input
from abconv.vocabulary import GoalKind, Method


def valid() -> dict[str, Any]:
    return {
        "experiment": "x",
        "variants": [{"key": "a", "weight": 1, "visitors": 1000}, {"key": "b", "visitors": 1000}],
        "goals": [
            {
                "key": "purchase",
                "kind": "hard",
                "primary": True,
                "value": True,
                "counts": {
                    "a": {"conversions": 50, "value_sum": 4990.0, "value_sum_squares": 612_000.0},
                    "b": {"conversions": 60, "value_sum": 6000.0, "value_sum_squares": 700_000.0},
                },
            },
            {
                "key": "newsletter",
                "kind": "soft",
                "counts": {"a": {"conversions": 80}, "b": {"conversions": 90}},
            },
        ],
    }


def test_defaults() -> None:
    parsed = parse_input(valid())
    assert parsed.settings.method is Method.BAYESIAN
    assert (parsed.settings.alpha, parsed.settings.chance_to_win) == (0.05, 0.95)
    assert (parsed.settings.max_expected_loss, parsed.settings.min_visitors) == (0.001, 100)
    assert (parsed.settings.mde, parsed.settings.power) == (0.10, 0.8)
    assert parsed.control == 0
    assert parsed.variants[1].weight == 1.0
    assert parsed.goals[1].kind is GoalKind.SOFT and not parsed.goals[1].primary


def test_control_by_name_kind_default_and_single_goal_primary() -> None:
    data = valid()
    data["control"] = "b"
    data["goals"] = [
        {"key": "signup", "counts": {"a": {"conversions": 1}, "b": {"conversions": 2}}}
    ]
    parsed = parse_input(data)
    assert parsed.control == 1
    assert parsed.goals[0].kind is GoalKind.HARD
    assert parsed.goals[0].primary


def test_integral_floats_accepted_as_counts() -> None:
    data = valid()
    data["variants"][0]["visitors"] = 1000.0
    assert parse_input(data).variants[0].visitors == 1000


def mutate(path: str, value: Any) -> dict[str, Any]:
    """``valid()`` with the field at a dotted path (list indexes as numbers) set or deleted."""
    data = copy.deepcopy(valid())
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


DELETE = object()

INVALID = [
    ("experiment", DELETE, "experiment"),
    ("experiment", 3, "experiment"),
    ("method", "Bayesian", "method"),
    ("method", "mcmc", '"bayesian", "frequentist" or "sequential"'),
    ("alpha", 0, "alpha"),
    ("alpha", 0.7, "alpha"),
    ("alpha", "0.05", "alpha: must be a number"),
    ("alpha", True, "alpha: must be a number"),
    ("alpha", float("nan"), "alpha: must be finite"),
    ("chance_to_win", 1.0, "chance_to_win"),
    ("max_expected_loss", -0.1, "max_expected_loss"),
    ("min_visitors", -1, "min_visitors"),
    ("min_visitors", 2.5, "min_visitors"),
    ("mde", 0, "mde"),
    ("power", 1, "power"),
    ("colour", "red", "unknown field 'colour'"),
    ("control", "z", "control"),
    ("variants", [], "variants"),
    ("variants", "a,b", "variants"),
    ("variants.1.key", "a", "variants[1].key: duplicate"),
    ("variants.1.key", "", "variants[1].key"),
    ("variants.0.visitors", -5, "variants[0].visitors"),
    ("variants.0.visitors", DELETE, "variants[0].visitors"),
    ("variants.0.visitors", "1000", "variants[0].visitors"),
    ("variants.0.visitors", 10**400, "variants[0].visitors"),
    ("variants.0.weight", 0, "variants[0].weight"),
    ("variants.0", 7, "variants[0]: must be an object"),
    ("goals", DELETE, "goals"),
    ("goals.0.kind", "medium", "goals[0].kind"),
    ("goals.0.primary", "yes", "goals[0].primary"),
    ("goals.1.primary", True, "exactly one goal must have primary"),
    ("goals.0.primary", False, "exactly one goal must have primary"),
    ("goals.1.key", "purchase", "goals[1].key: duplicate"),
    ("goals.0.counts.b", DELETE, "goals[0].counts.b: missing counts"),
    ("goals.0.counts.c", {"conversions": 1}, "goals[0].counts.c: not a variant"),
    (
        "goals.0.counts.b.conversions",
        1200,
        "goals[0].counts.b.conversions: 1200 exceeds visitors 1000",
    ),
    ("goals.0.counts.b.conversions", -1, "goals[0].counts.b.conversions"),
    ("goals.0.counts.b.conversions", None, "goals[0].counts.b.conversions"),
    ("goals.0.counts.b.value_sum", -1.0, "goals[0].counts.b.value_sum"),
    ("goals.0.counts.b.value_sum", DELETE, "goals[0].counts.b.value_sum"),
    ("goals.0.counts.b.value_sum_squares", 10.0, "goals[0].counts.b.value_sum_squares"),
    ("goals.0.counts.b.value_sum_squares", float("inf"), "goals[0].counts.b.value_sum_squares"),
    ("goals.1.counts.b.value_sum", 3.0, "goals[1].counts.b.value_sum: given but"),
    ("goals.0.counts.b.extra", 3, "goals[0].counts.b: unknown field 'extra'"),
    ("goals.0.guard", "no", "goals[0].guard: must be true or false"),
    ("goals.1.guard", False, "goals[1].guard: only hard goals guard"),
    ("goals.1.count", "yes", "goals[1].count: must be true or false"),
    ("goals.1.count", True, "goals[1].counts.a.events: missing on a goal with count = true"),
    ("goals.1.counts.b.events", 90, "goals[1].counts.b.events_sum_squares: must be a number"),
    (
        "goals.1.counts.b",
        {"conversions": 90, "events": 80, "events_sum_squares": 80.0},
        "goals[1].counts.b.events: 80 is impossible for 90 converting visitors",
    ),
    (
        "goals.1.counts.b",
        {"conversions": 0, "events": 3, "events_sum_squares": 9.0},
        "goals[1].counts.b.events: 3 is impossible for 0 converting visitors",
    ),
    (
        "goals.1.counts.b",
        {"conversions": 90, "events": 100, "events_sum_squares": 100.0},  # at least 100²/90
        "goals[1].counts.b.events_sum_squares: 100 is impossible for 100 events",
    ),
    ("goals.0.counts.b.value_events_sum", 10.0, "value_events_sum: needs events and"),
    (
        "goals.1.counts.b",
        {"conversions": 90, "events": 90, "events_sum_squares": 90.0, "value_events_sum": 1.0},
        "goals[1].counts.b.value_events_sum: given but the goal does not have value = true",
    ),
    (
        "goals.0.counts.b",
        {
            "conversions": 60,
            "value_sum": 6000.0,
            "value_sum_squares": 700_000.0,
            "events": 60,
            "events_sum_squares": 60.0,
            "value_events_sum": 100.0,
        },  # below value_sum
        "goals[0].counts.b.value_events_sum: 100 is impossible",
    ),  # fmt: skip
    ("guardrail_margin", 0, "guardrail_margin: 0 must be in (0, 1)"),
    ("guardrail_margin", 1, "guardrail_margin: 1 must be in (0, 1)"),
]


@pytest.mark.parametrize(("path", "value", "message"), INVALID)
def test_invalid_input_names_the_field(path: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        analyze(mutate(path, value))
    assert message in str(caught.value)


@pytest.mark.parametrize("data", [None, [], "x", 3])
def test_not_an_object(data: Any) -> None:
    with pytest.raises(ValueError, match="input: must be an object"):
        analyze(data)


def test_values_without_conversions_rejected() -> None:
    data = mutate(
        "goals.0.counts.b", {"conversions": 0, "value_sum": 5.0, "value_sum_squares": 25.0}
    )
    with pytest.raises(ValueError, match=r"goals\[0\]\.counts\.b\.value_sum: values without"):
        analyze(data)
