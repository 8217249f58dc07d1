"""The results document as CSV: the same figures, one row per goal × variant.

Rows whose ``row`` column is ``goal`` carry a goal × variant of
``goals[]``; rows whose ``row`` is ``soft_to_hard`` carry a soft goal ×
hard goal × variant of ``soft_to_hard[]`` (``goal`` is the hard goal,
``soft_goal`` the soft one); rows whose ``row`` is ``bounce`` carry a
variant of ``bounce`` (``goal`` is ``engaged``), for ``engagement = true``;
rows whose ``row`` is ``excluded`` carry a reason of ``excluded`` that
counted any request (``excluded_reason``, ``excluded_requests``: totals; the
days stay in the JSON).
The experiment's figures (decision, SRM, progress) repeat on every row so
that a filtered sheet keeps them.
Booleans are ``true``/``false``, undefined figures empty cells, numbers
unformatted (Python's shortest round-trip form), text through
:func:`spreadsheet_safe`. The daily ``timeline`` stays in the JSON.
"""

from __future__ import annotations

import csv
import io
from typing import Any

EXPERIMENT_COLUMNS = [
    "phase", "decision_status", "decision_winner", "decision_reason", "srm_flag", "srm_p_value",
    "planned_visitors_per_variant", "visitors_per_variant", "progress_fraction",
    "days_running", "days_left",
]  # fmt: skip
GOAL_COLUMNS = [
    "visitors", "conversions", "rate", "rate_ci_low", "rate_ci_high", "prob_best",
    "expected_loss", "abs_diff", "abs_diff_ci_low", "abs_diff_ci_high", "rel_lift",
    "rel_lift_ci_low", "rel_lift_ci_high", "p_value", "p_value_adjusted",
    "chance_to_beat_control", "value_sum", "value_per_visitor", "value_per_visitor_ci_low",
    "value_per_visitor_ci_high", "aov", "capped_visitors", "value_diff", "value_diff_ci_low",
    "value_diff_ci_high", "value_p_value", "value_chance_to_beat_control",
]  # fmt: skip
RATIOS = ("per_converting_visitor", "per_order")  # value goals' ratio metrics
RATIO_COLUMNS = [
    f"{ratio}{suffix}"
    for ratio in RATIOS
    for suffix in ("", "_ci_low", "_ci_high", "_diff", "_diff_ci_low", "_diff_ci_high",
                   "_rel_lift", "_rel_lift_ci_low", "_rel_lift_ci_high", "_p_value")
]  # fmt: skip
COUNT_COLUMNS = [
    "count_events", "count_per_visitor", "count_per_visitor_ci_low", "count_per_visitor_ci_high",
    "count_diff", "count_diff_ci_low", "count_diff_ci_high", "count_p_value",
    "count_chance_to_beat_control",
]  # fmt: skip
SOFT_TO_HARD_COLUMNS = [
    "soft_goal", "soft_visitors", "hard_after_soft", "rate_after_soft",
    "rate_after_soft_ci_low", "rate_after_soft_ci_high", "visitors_without_soft",
    "hard_without_soft", "rate_without_soft", "rate_without_soft_ci_low",
    "rate_without_soft_ci_high", "after_soft_abs_diff", "after_soft_p_value",
    "soft_to_hard_summary",
]  # fmt: skip
BOUNCE_COLUMNS = [
    "bounces", "bounce_rate", "bounce_rate_ci_low", "bounce_rate_ci_high", "bounce_abs_diff",
    "bounce_abs_diff_ci_low", "bounce_abs_diff_ci_high", "bounce_rel_diff", "bounce_p_value",
    "bounce_chance_lower",
]  # fmt: skip
EXCLUDED_COLUMNS = ["excluded_reason", "excluded_requests"]
CSV_COLUMNS = [
    "row", "goal", "kind", "primary", "variant", "control",
    *GOAL_COLUMNS, *RATIO_COLUMNS, *COUNT_COLUMNS, *SOFT_TO_HARD_COLUMNS, *BOUNCE_COLUMNS,
    *EXCLUDED_COLUMNS,
    *EXPERIMENT_COLUMNS,
]  # fmt: skip


def results_csv(document: dict[str, Any]) -> str:
    """The CSV of a results document (see the module docstring for its rows)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    shared = _experiment_cells(document)
    for goal in document["goals"]:
        for variant in goal["variants"]:
            row = {
                "row": "goal", **_goal_cells(goal, variant), **_ratio_cells(variant),
                **_count_cells(variant), **shared,
            }  # fmt: skip
            writer.writerow({column: cell(value) for column, value in row.items()})
    for pair in document.get("soft_to_hard", []):
        for variant in pair["variants"]:
            row = {"row": "soft_to_hard", **_soft_to_hard_cells(pair, variant), **shared}
            writer.writerow({column: cell(value) for column, value in row.items()})
    bounce = document.get("bounce") or {"goal": "", "variants": []}
    for variant in bounce["variants"]:
        row = {"row": "bounce", **_bounce_cells(bounce["goal"], variant), **shared}
        writer.writerow({column: cell(value) for column, value in row.items()})
    for reason, requests in (document.get("excluded") or {}).items():
        if not requests:
            continue
        row = {"row": "excluded", "excluded_reason": reason, "excluded_requests": requests}
        row = {**row, **shared, "phase": None}  # counted for the whole experiment
        writer.writerow({column: cell(value) for column, value in row.items()})
    return out.getvalue()


def cell(value: object) -> object:
    """A CSV cell: ``true``/``false``, empty for ``None``, text made spreadsheet-safe."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return spreadsheet_safe(value)


def _experiment_cells(document: dict[str, Any]) -> dict[str, Any]:
    decision, srm = document["decision"], document["srm"]
    progress = document.get("progress") or {}
    return {
        "phase": document.get("phase"),  # live results only
        "decision_status": decision["status"],
        "decision_winner": decision["winner"],
        "decision_reason": decision["reason"],
        "srm_flag": srm["flag"],
        "srm_p_value": srm["p_value"],
        "planned_visitors_per_variant": progress.get("planned_visitors_per_variant"),
        "visitors_per_variant": progress.get("visitors_per_variant"),
        "progress_fraction": progress.get("fraction"),
        "days_running": progress.get("days_running"),
        "days_left": progress.get("days_left"),
    }


def _goal_cells(goal: dict[str, Any], variant: dict[str, Any]) -> dict[str, Any]:
    versus = variant["vs_control"] or {}
    value = variant["value"] or {}
    value_versus = versus.get("value") or {}
    return {
        "goal": goal["key"], "kind": goal["kind"], "primary": goal["primary"],
        "variant": variant["key"], "control": variant["control"],
        "visitors": variant["visitors"], "conversions": variant["conversions"],
        "rate": variant["rate"],
        "rate_ci_low": _at(variant["rate_ci"], 0), "rate_ci_high": _at(variant["rate_ci"], 1),
        "prob_best": variant["prob_best"], "expected_loss": variant["expected_loss"],
        "abs_diff": versus.get("abs_diff"),
        "abs_diff_ci_low": _at(versus.get("abs_diff_ci"), 0),
        "abs_diff_ci_high": _at(versus.get("abs_diff_ci"), 1),
        "rel_lift": versus.get("rel_lift"),
        "rel_lift_ci_low": _at(versus.get("rel_lift_ci"), 0),
        "rel_lift_ci_high": _at(versus.get("rel_lift_ci"), 1),
        "p_value": versus.get("p_value"), "p_value_adjusted": versus.get("p_value_adjusted"),
        "chance_to_beat_control": versus.get("chance_to_beat_control"),
        "value_sum": value.get("sum"), "value_per_visitor": value.get("per_visitor"),
        "value_per_visitor_ci_low": _at(value.get("per_visitor_ci"), 0),
        "value_per_visitor_ci_high": _at(value.get("per_visitor_ci"), 1),
        "aov": value.get("aov"), "capped_visitors": value.get("capped_visitors"),
        "value_diff": value_versus.get("diff"),
        "value_diff_ci_low": _at(value_versus.get("diff_ci"), 0),
        "value_diff_ci_high": _at(value_versus.get("diff_ci"), 1),
        "value_p_value": value_versus.get("p_value"),
        "value_chance_to_beat_control": value_versus.get("chance_to_beat_control"),
    }  # fmt: skip


def _ratio_cells(variant: dict[str, Any]) -> dict[str, Any]:
    """``value.per_converting_visitor`` and ``value.per_order`` with their comparisons."""
    value = variant["value"] or {}
    versus = (variant["vs_control"] or {}).get("value") or {}
    cells: dict[str, Any] = {}
    for ratio in RATIOS:
        mine, other = value.get(ratio) or {}, versus.get(ratio) or {}
        cells |= {
            ratio: mine.get("ratio"),
            f"{ratio}_ci_low": _at(mine.get("ci"), 0), f"{ratio}_ci_high": _at(mine.get("ci"), 1),
            f"{ratio}_diff": other.get("diff"),
            f"{ratio}_diff_ci_low": _at(other.get("diff_ci"), 0),
            f"{ratio}_diff_ci_high": _at(other.get("diff_ci"), 1),
            f"{ratio}_rel_lift": other.get("rel_lift"),
            f"{ratio}_rel_lift_ci_low": _at(other.get("rel_lift_ci"), 0),
            f"{ratio}_rel_lift_ci_high": _at(other.get("rel_lift_ci"), 1),
            f"{ratio}_p_value": other.get("p_value"),
        }  # fmt: skip
    return cells


def _count_cells(variant: dict[str, Any]) -> dict[str, Any]:
    """``count`` and ``vs_control.count`` (count goals)."""
    count = variant.get("count") or {}
    versus = (variant["vs_control"] or {}).get("count") or {}
    return {
        "count_events": count.get("events"), "count_per_visitor": count.get("per_visitor"),
        "count_per_visitor_ci_low": _at(count.get("per_visitor_ci"), 0),
        "count_per_visitor_ci_high": _at(count.get("per_visitor_ci"), 1),
        "count_diff": versus.get("diff"),
        "count_diff_ci_low": _at(versus.get("diff_ci"), 0),
        "count_diff_ci_high": _at(versus.get("diff_ci"), 1),
        "count_p_value": versus.get("p_value"),
        "count_chance_to_beat_control": versus.get("chance_to_beat_control"),
    }  # fmt: skip


def _soft_to_hard_cells(pair: dict[str, Any], variant: dict[str, Any]) -> dict[str, Any]:
    versus = variant["vs_control"] or {}
    return {
        "goal": pair["hard"], "soft_goal": pair["soft"],
        "variant": variant["key"], "control": variant["control"],
        "soft_visitors": variant["soft_visitors"], "hard_after_soft": variant["hard_after_soft"],
        "rate_after_soft": variant["rate_after_soft"],
        "rate_after_soft_ci_low": _at(variant["rate_after_soft_ci"], 0),
        "rate_after_soft_ci_high": _at(variant["rate_after_soft_ci"], 1),
        "visitors_without_soft": variant["visitors_without_soft"],
        "hard_without_soft": variant["hard_without_soft"],
        "rate_without_soft": variant["rate_without_soft"],
        "rate_without_soft_ci_low": _at(variant["rate_without_soft_ci"], 0),
        "rate_without_soft_ci_high": _at(variant["rate_without_soft_ci"], 1),
        "after_soft_abs_diff": versus.get("abs_diff"),
        "after_soft_p_value": versus.get("p_value"),
        "soft_to_hard_summary": pair["summary"],
    }  # fmt: skip


def _bounce_cells(goal: str, variant: dict[str, Any]) -> dict[str, Any]:
    versus = variant["vs_control"] or {}
    return {
        "goal": goal, "variant": variant["key"], "control": variant["control"],
        "visitors": variant["visitors"], "bounces": variant["bounces"],
        "bounce_rate": variant["rate"],
        "bounce_rate_ci_low": _at(variant["rate_ci"], 0),
        "bounce_rate_ci_high": _at(variant["rate_ci"], 1),
        "bounce_abs_diff": versus.get("abs_diff"),
        "bounce_abs_diff_ci_low": _at(versus.get("abs_diff_ci"), 0),
        "bounce_abs_diff_ci_high": _at(versus.get("abs_diff_ci"), 1),
        "bounce_rel_diff": versus.get("rel_diff"),
        "bounce_p_value": versus.get("p_value"),
        "bounce_chance_lower": versus.get("chance_lower"),
    }  # fmt: skip


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: object) -> object:
    """A text cell that a spreadsheet would run as a formula, made plain text.

    A leading ``'`` makes Excel, LibreOffice and Google Sheets show the text
    as typed instead of evaluating ``=HYPERLINK(...)`` or ``-2+3+cmd|...``.
    Only text is touched: numbers come from the analysis, never from a
    visitor or a file, and ``-0.01`` is a value to a spreadsheet, which
    quoting would turn into text that no longer sums.
    """
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def _at(pair: list[float | None] | None, index: int) -> float | None:
    return None if pair is None else pair[index]
