"""The results document: the analysis of the counts, plus soft→hard, bounce, timeline, progress."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from abconv.errors import AbconvError
from abconv.experiments import Experiment
from abconv.results.bounce import bounce
from abconv.results.excluded import excluded as excluded_section
from abconv.results.progress import progress
from abconv.results.soft_to_hard import soft_to_hard
from abconv.results.timeline import cumulative_days, timeline
from abconv.stats import analyze

if TYPE_CHECKING:
    from abconv.store.counts import GoalCounts, ResultCounts

logger = logging.getLogger(__name__)


def results_document(
    experiment: Experiment,
    counts: ResultCounts,
    now: datetime,
    excluded: Iterable[tuple[date, str, int]] = (),
) -> dict[str, Any]:
    """``abconv.analyze`` of the counts, with ``value.capped_visitors``,
    ``soft_to_hard``, ``bounce``, ``timeline``, ``progress``, and ``excluded`` and
    ``excluded_by_day`` from the store's (day, reason, requests) rows of
    requests not recorded (README, "The results document").

    ``now`` is naive UTC (as stored). Raises ``ValueError`` (or ``TypeError``)
    when the counts are out of the analysis' range: see :func:`stored_data_checked`.
    """
    document = analyze(analysis_input(experiment, counts))
    _add_capped_visitors(document, counts)
    settings = experiment.analysis
    document["soft_to_hard"] = soft_to_hard(experiment, counts, settings.alpha)
    document["bounce"] = bounce(experiment, document)
    document["timeline"] = timeline(experiment, counts)
    document["progress"] = progress(experiment, document["plan"], counts, now)
    document.update(excluded_section(excluded))
    return document


@contextmanager
def stored_data_checked(key: str) -> Iterator[None]:
    """Stored counts the analysis refuses become 409 ``stored_data_out_of_range``.

    Values are bounded at the door, so a ``ValueError`` here (a value written
    around the API, or before the bounds; a sum the database cannot add up)
    is a state of the data of this experiment alone, not a server error.
    """
    try:
        yield
    except (ValueError, TypeError) as error:
        logger.error("results of experiment %r: stored data out of range: %s", key, error)
        raise AbconvError(
            "stored_data_out_of_range",
            f"experiment {key!r}: the stored data are out of the analysis' range ({error}); "
            "find the rows and correct or delete them",
            409,
        ) from error


def caps(experiment: Experiment) -> dict[str, float]:
    """Goal → ``cap``, for the goals that set one."""
    return {goal.key: goal.cap for goal in experiment.goals if goal.cap is not None}


def analysis_input(experiment: Experiment, counts: ResultCounts) -> dict[str, Any]:
    """The ``abconv analyze`` input for an experiment's counts, with its daily ``looks``.

    ``conversions`` are converting visitors. Counts of variants or goals no
    longer in the file are left out.
    """
    return {
        "experiment": experiment.key,
        "control": experiment.control,
        **experiment.analysis.to_dict(),
        "variants": [
            {"key": v.key, "weight": v.weight, "visitors": counts.visitors.get(v.key, 0)}
            for v in experiment.variants
        ],
        "goals": [
            {
                "key": goal.key,
                "kind": str(goal.kind),
                "primary": goal.primary,
                "value": goal.value,
                "count": goal.count,
                **({} if goal.guard else {"guard": False}),
                "counts": {
                    v.key: _counts(counts.goals.get((goal.key, v.key)), goal.value)
                    for v in experiment.variants
                },
            }
            for goal in experiment.goals
        ],
        "looks": looks(experiment, counts),
    }


def looks(experiment: Experiment, counts: ResultCounts) -> list[dict[str, Any]]:
    """Cumulative visitors and converting visitors at the end of each UTC day, ascending."""
    return [
        {
            "day": day.isoformat(),
            "visitors": {v.key: visitors[v.key] for v in experiment.variants},
            "conversions": {
                goal.key: {v.key: converting[goal.key, v.key] for v in experiment.variants}
                for goal in experiment.goals
            },
        }
        for day, visitors, converting in cumulative_days(experiment, counts)
    ]


def _counts(row: GoalCounts | None, with_value: bool) -> dict[str, float]:
    """A variant's counts on a goal (no row: nothing converted, every sum 0), with the
    events' sums whenever the rollups know them (count goals need them; value
    goals' value per order uses them)."""
    known = row is None or row.events_sum_squares is not None
    counts: dict[str, float] = {
        "conversions": row.converting if row else 0,
        **({"events": row.events if row else 0} if known else {}),
        **({"events_sum_squares": _sum(row, "events_sum_squares")} if known else {}),
    }
    if with_value:
        for name in ("value_sum", "value_sum_squares", "value_sum_cubes"):
            counts[name] = _sum(row, name)
        if known and (row is None or row.value_events_sum is not None):
            counts["value_events_sum"] = _sum(row, "value_events_sum")
    return counts


def _sum(row: GoalCounts | None, name: str) -> float:
    return 0.0 if row is None else float(getattr(row, name))


def _add_capped_visitors(document: dict[str, Any], counts: ResultCounts) -> None:
    """``value.capped_visitors``: visitors whose total the goal's ``cap`` cut."""
    for goal in document["goals"]:
        for variant in goal["variants"]:
            if variant["value"] is not None:
                row = counts.goals.get((goal["key"], variant["key"]))
                variant["value"]["capped_visitors"] = row.capped_visitors if row else 0
