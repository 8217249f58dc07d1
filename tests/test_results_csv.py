"""The CSV carries the JSON's figures: read back, compared field by field; formulas neutralised."""

from __future__ import annotations

import csv
import datetime
import io
from typing import Any

import pytest

from abconv.experiments import Goal
from abconv.results import CSV_COLUMNS, results_csv, results_document
from abconv.store.counts import DayCounts, GoalCounts, PairCounts, ResultCounts
from abconv.vocabulary import GoalKind, Method
from tests.results_counts import experiment

NOW = datetime.datetime(2026, 11, 9, 18)
GOALS = (
    Goal("guide", GoalKind.SOFT, value=False, primary=True, count=True),
    Goal("purchase", GoalKind.HARD, value=True, primary=False, cap=500.0),
)

# JSON paths from (document, goal, variant) for the goal rows; "@" reads the variant.
EXPERIMENT_PATHS = {
    "phase": ("phase",),
    "decision_status": ("decision", "status"),
    "decision_winner": ("decision", "winner"),
    "decision_reason": ("decision", "reason"),
    "srm_flag": ("srm", "flag"),
    "srm_p_value": ("srm", "p_value"),
    "planned_visitors_per_variant": ("progress", "planned_visitors_per_variant"),
    "visitors_per_variant": ("progress", "visitors_per_variant"),
    "progress_fraction": ("progress", "fraction"),
    "days_running": ("progress", "days_running"),
    "days_left": ("progress", "days_left"),
}
GOAL_PATHS = {
    "visitors": ("visitors",),
    "conversions": ("conversions",),
    "rate": ("rate",),
    "rate_ci_low": ("rate_ci", 0),
    "rate_ci_high": ("rate_ci", 1),
    "prob_best": ("prob_best",),
    "expected_loss": ("expected_loss",),
    "abs_diff": ("vs_control", "abs_diff"),
    "abs_diff_ci_low": ("vs_control", "abs_diff_ci", 0),
    "abs_diff_ci_high": ("vs_control", "abs_diff_ci", 1),
    "rel_lift": ("vs_control", "rel_lift"),
    "rel_lift_ci_low": ("vs_control", "rel_lift_ci", 0),
    "rel_lift_ci_high": ("vs_control", "rel_lift_ci", 1),
    "p_value": ("vs_control", "p_value"),
    "p_value_adjusted": ("vs_control", "p_value_adjusted"),
    "chance_to_beat_control": ("vs_control", "chance_to_beat_control"),
    "value_sum": ("value", "sum"),
    "value_per_visitor": ("value", "per_visitor"),
    "value_per_visitor_ci_low": ("value", "per_visitor_ci", 0),
    "value_per_visitor_ci_high": ("value", "per_visitor_ci", 1),
    "aov": ("value", "aov"),
    "capped_visitors": ("value", "capped_visitors"),
    "value_diff": ("vs_control", "value", "diff"),
    "value_diff_ci_low": ("vs_control", "value", "diff_ci", 0),
    "value_diff_ci_high": ("vs_control", "value", "diff_ci", 1),
    "value_p_value": ("vs_control", "value", "p_value"),
    "value_chance_to_beat_control": ("vs_control", "value", "chance_to_beat_control"),
    "count_events": ("count", "events"),
    "count_per_visitor": ("count", "per_visitor"),
    "count_per_visitor_ci_low": ("count", "per_visitor_ci", 0),
    "count_per_visitor_ci_high": ("count", "per_visitor_ci", 1),
    "count_diff": ("vs_control", "count", "diff"),
    "count_diff_ci_low": ("vs_control", "count", "diff_ci", 0),
    "count_diff_ci_high": ("vs_control", "count", "diff_ci", 1),
    "count_p_value": ("vs_control", "count", "p_value"),
    "count_chance_to_beat_control": ("vs_control", "count", "chance_to_beat_control"),
}
for _ratio in ("per_converting_visitor", "per_order"):
    GOAL_PATHS |= {
        _ratio: ("value", _ratio, "ratio"),
        f"{_ratio}_ci_low": ("value", _ratio, "ci", 0),
        f"{_ratio}_ci_high": ("value", _ratio, "ci", 1),
        f"{_ratio}_diff": ("vs_control", "value", _ratio, "diff"),
        f"{_ratio}_diff_ci_low": ("vs_control", "value", _ratio, "diff_ci", 0),
        f"{_ratio}_diff_ci_high": ("vs_control", "value", _ratio, "diff_ci", 1),
        f"{_ratio}_rel_lift": ("vs_control", "value", _ratio, "rel_lift"),
        f"{_ratio}_rel_lift_ci_low": ("vs_control", "value", _ratio, "rel_lift_ci", 0),
        f"{_ratio}_rel_lift_ci_high": ("vs_control", "value", _ratio, "rel_lift_ci", 1),
        f"{_ratio}_p_value": ("vs_control", "value", _ratio, "p_value"),
    }
SOFT_TO_HARD_PATHS = {
    "soft_visitors": ("soft_visitors",),
    "hard_after_soft": ("hard_after_soft",),
    "rate_after_soft": ("rate_after_soft",),
    "rate_after_soft_ci_low": ("rate_after_soft_ci", 0),
    "rate_after_soft_ci_high": ("rate_after_soft_ci", 1),
    "visitors_without_soft": ("visitors_without_soft",),
    "hard_without_soft": ("hard_without_soft",),
    "rate_without_soft": ("rate_without_soft",),
    "rate_without_soft_ci_low": ("rate_without_soft_ci", 0),
    "rate_without_soft_ci_high": ("rate_without_soft_ci", 1),
    "after_soft_abs_diff": ("vs_control", "abs_diff"),
    "after_soft_p_value": ("vs_control", "p_value"),
}


def counts() -> ResultCounts:
    n = {"control": 20_000, "B": 20_100}
    goals = {
        ("guide", "control"): GoalCounts(2000, 2300, 0.0, 0.0, 0.0, 0, 3000.0, 0.0),
        ("guide", "B"): GoalCounts(2600, 2900, 0.0, 0.0, 0.0, 0, 3600.0, 0.0),
        ("purchase", "control"): GoalCounts(
            600, 640, 30_000.0, 2_000_000.0, 1.5e8, 3, 720.0, 32_000.0
        ),
        ("purchase", "B"): GoalCounts(450, 470, 21_000.0, 1_300_000.0, 1e8, 1, 520.0, 22_500.0),
    }
    days = [DayCounts(datetime.date(2026, 11, 2), n, {k: g.converting for k, g in goals.items()})]
    pairs = [
        PairCounts("guide", "purchase", "control", 2000, 240, 360),
        PairCounts("guide", "purchase", "B", 2600, 150, 300),
    ]
    return ResultCounts(n, goals, days, pairs)


def read(path: tuple[Any, ...], start: Any) -> Any:
    """The JSON value at ``path`` (``None`` when a step is ``None``)."""
    value = start
    for step in path:
        if value is None:
            return None
        value = value[step]
    return value


def parsed(cell: str) -> Any:
    """A CSV cell as the JSON value it stands for."""
    if cell == "":
        return None
    if cell in ("true", "false"):
        return cell == "true"
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        return float(cell)
    except ValueError:
        return cell


@pytest.mark.parametrize("method", list(Method))
def test_the_csv_carries_the_json_field_by_field(method: Method) -> None:
    document = results_document(experiment(GOALS, method=method), counts(), NOW)
    document = {**document, "phase": 2}  # as the server's results say
    rows = list(csv.DictReader(io.StringIO(results_csv(document))))
    assert list(rows[0]) == CSV_COLUMNS
    goal_rows = [r for r in rows if r["row"] == "goal"]
    pair_rows = [r for r in rows if r["row"] == "soft_to_hard"]
    assert len(goal_rows) == 4 and len(pair_rows) == 2 and len(rows) == 6
    checked = 0
    for row in rows:
        for column, path in EXPERIMENT_PATHS.items():
            assert parsed(row[column]) == read(path, document), column
            checked += 1
    expected_goal_rows = [(g, v) for g in document["goals"] for v in g["variants"]]
    for row, (goal, variant) in zip(goal_rows, expected_goal_rows, strict=True):
        assert (row["goal"], row["kind"], row["variant"]) == (
            goal["key"],
            goal["kind"],
            variant["key"],
        )
        assert parsed(row["primary"]) is goal["primary"]
        assert parsed(row["control"]) is variant["control"]
        for column, path in GOAL_PATHS.items():
            assert parsed(row[column]) == read(path, variant), column
            checked += 1
        assert all(row[column] == "" for column in SOFT_TO_HARD_PATHS)
    [pair] = document["soft_to_hard"]
    for row, variant in zip(pair_rows, pair["variants"], strict=True):
        assert (row["soft_goal"], row["goal"], row["variant"]) == (
            "guide",
            "purchase",
            variant["key"],
        )
        assert parsed(row["control"]) is variant["control"]
        assert row["soft_to_hard_summary"] == pair["summary"]
        for column, path in SOFT_TO_HARD_PATHS.items():
            assert parsed(row[column]) == read(path, variant), column
            checked += 1
    # The figures are there, not empty on both sides.
    assert sum(1 for row in goal_rows for c in GOAL_PATHS if row[c] != "") > 100
    # Each new metric is in the sheet: count on guide, ratios on purchase, for B.
    assert goal_rows[1]["count_p_value"] != "" and goal_rows[3]["per_order_p_value"] != ""
    assert checked == 6 * len(EXPERIMENT_PATHS) + 4 * len(GOAL_PATHS) + 2 * len(SOFT_TO_HARD_PATHS)
    assert goal_rows[0]["decision_status"] == document["decision"]["status"] != ""
    assert goal_rows[0]["srm_flag"] in ("true", "false")


HOSTILE = [
    '=HYPERLINK("http://x")',
    "+1",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(A1)",
    "<script>x</script>",
]


def test_formula_and_script_payloads_in_keys_are_neutralised() -> None:
    goals = (
        Goal(HOSTILE[0], GoalKind.SOFT, value=False, primary=True),
        Goal(HOSTILE[3], GoalKind.HARD, value=True, primary=False),
    )
    exp = experiment(goals, variants=(HOSTILE[1], HOSTILE[2], HOSTILE[4]))
    n = dict.fromkeys((HOSTILE[1], HOSTILE[2], HOSTILE[4]), 300)
    pairs = [PairCounts(HOSTILE[0], HOSTILE[3], v, 30, 3, 5) for v in n]
    document = results_document(exp, ResultCounts(n, {}, [], pairs), NOW)
    text = results_csv(document)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 6 + 3
    for row in rows:
        for cell in row.values():
            if cell[:1] in ("=", "+", "-", "@"):
                float(cell)  # only numbers may start so: a negative figure stays a number
    variants = {row["variant"] for row in rows}
    assert variants == {"'+1", "'-2+3+cmd|' /C calc'!A0", "<script>x</script>"}
    assert {row["goal"] for row in rows} == {'\'=HYPERLINK("http://x")', "'@SUM(A1)"}
    assert {row["soft_goal"] for row in rows if row["row"] == "soft_to_hard"} == {
        '\'=HYPERLINK("http://x")'
    }
    # Text that names the keys (the reason, the summary) is neutralised where it starts so.
    summary = rows[-1]["soft_to_hard_summary"]
    assert summary.startswith("'=HYPERLINK")
