"""Results of a live experiment: stored counts → the analysis → JSON or CSV.

The counts are aggregated by the database per request (a scan of the
experiment's rows); rollup tables will replace that when results become a
hot page.
"""

from __future__ import annotations

import csv
import io
import logging
from typing import Any

from abconv.errors import AbconvError
from abconv.experiments import Experiment
from abconv.service import Services
from abconv.stats import analyze

logger = logging.getLogger(__name__)


def results_document(services: Services, key: str) -> dict[str, Any]:
    """The analysis of an experiment's stored counts, with the goals' caps applied.

    Values are bounded at the door, so stored counts the analysis refuses
    (``ValueError``: a value written around the API, or before the bounds)
    are a state of the data, answered 409 ``stored_data_out_of_range`` for
    this experiment alone, not a server error.
    """
    experiment = services.experiment(key)
    store = services.store
    caps = {goal.key: goal.cap for goal in experiment.goals if goal.cap is not None}
    visitors = store.visitors_by_variant(key)
    try:
        conversions = store.conversions_by_variant(key, caps)
        document = analyze(analysis_input(experiment, visitors, conversions))
    except (ValueError, TypeError) as error:
        logger.error("results of experiment %r: stored data out of range: %s", key, error)
        raise AbconvError(
            "stored_data_out_of_range",
            f"experiment {key!r}: the stored data are out of the analysis' range ({error}); "
            "find the rows and correct or delete them",
            409,
        ) from error
    _add_capped_visitors(document, conversions)
    return document


def analysis_input(
    experiment: Experiment, visitors: dict[str, int], conversions: list[dict[str, Any]]
) -> dict[str, Any]:
    """The ``abconv analyze`` input for an experiment's stored counts.

    Rows of variants no longer in the file are left out.
    """
    by_goal_variant = {(row["goal"], row["variant"]): row for row in conversions}
    return {
        "experiment": experiment.key,
        "control": experiment.control,
        **experiment.analysis.to_dict(),
        "variants": [
            {"key": v.key, "weight": v.weight, "visitors": visitors.get(v.key, 0)}
            for v in experiment.variants
        ],
        "goals": [
            {
                "key": goal.key,
                "kind": str(goal.kind),
                "primary": goal.primary,
                "value": goal.value,
                **({} if goal.guard else {"guard": False}),
                "counts": {
                    v.key: _counts(by_goal_variant.get((goal.key, v.key)), goal.value)
                    for v in experiment.variants
                },
            }
            for goal in experiment.goals
        ],
    }


def _add_capped_visitors(document: dict[str, Any], conversions: list[dict[str, Any]]) -> None:
    """``value.capped_visitors``: visitors whose total the goal's ``cap`` cut."""
    capped = {(row["goal"], row["variant"]): int(row["capped_visitors"]) for row in conversions}
    for goal in document["goals"]:
        for variant in goal["variants"]:
            if variant["value"] is not None:
                variant["value"]["capped_visitors"] = capped.get((goal["key"], variant["key"]), 0)


def _counts(row: dict[str, Any] | None, with_value: bool) -> dict[str, float]:
    counts: dict[str, float] = {"conversions": int(row["conversions"]) if row else 0}
    if with_value:
        counts["value_sum"] = float(row["value_sum"] or 0.0) if row else 0.0
        counts["value_sum_squares"] = float(row["value_sum_squares"] or 0.0) if row else 0.0
        counts["value_sum_cubes"] = float(row["value_sum_cubes"] or 0.0) if row else 0.0
    return counts


CSV_COLUMNS = [
    "goal", "kind", "primary", "variant", "control", "visitors", "conversions", "rate",
    "rate_ci_low", "rate_ci_high", "prob_best", "expected_loss", "abs_diff", "abs_diff_ci_low",
    "abs_diff_ci_high", "rel_lift", "p_value", "p_value_adjusted", "chance_to_beat_control",
    "value_sum", "value_per_visitor", "aov", "capped_visitors",
]  # fmt: skip


def results_csv(document: dict[str, Any]) -> str:
    """One row per goal × variant; empty cells where a figure is undefined.

    Text cells that a spreadsheet would take for a formula start with ``'``
    (:func:`spreadsheet_safe`).
    """
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for goal in document["goals"]:
        for variant in goal["variants"]:
            versus = variant["vs_control"] or {}
            value = variant["value"] or {}
            row = {
                "goal": goal["key"], "kind": goal["kind"], "primary": goal["primary"],
                "variant": variant["key"], "control": variant["control"],
                "visitors": variant["visitors"], "conversions": variant["conversions"],
                "rate": variant["rate"],
                "rate_ci_low": _at(variant["rate_ci"], 0),
                "rate_ci_high": _at(variant["rate_ci"], 1),
                "prob_best": variant["prob_best"], "expected_loss": variant["expected_loss"],
                "abs_diff": versus.get("abs_diff"),
                "abs_diff_ci_low": _at(versus.get("abs_diff_ci"), 0),
                "abs_diff_ci_high": _at(versus.get("abs_diff_ci"), 1),
                "rel_lift": versus.get("rel_lift"), "p_value": versus.get("p_value"),
                "p_value_adjusted": versus.get("p_value_adjusted"),
                "chance_to_beat_control": versus.get("chance_to_beat_control"),
                "value_sum": value.get("sum"), "value_per_visitor": value.get("per_visitor"),
                "aov": value.get("aov"), "capped_visitors": value.get("capped_visitors"),
            }  # fmt: skip
            writer.writerow({column: spreadsheet_safe(cell) for column, cell in row.items()})
    return out.getvalue()


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
