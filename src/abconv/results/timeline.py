"""``timeline``: cumulative figures at the end of each UTC day, and the primary goal's lift.

The lift and its interval on a day are what the analysis reported had it
run on that day's cumulative counts, with the experiment's method: the
fixed-n Fieller interval (``frequentist``, and ``bayesian``, whose
``rel_lift_ci`` is the same), or Fieller's set with the confidence
sequence's boundary, tuned by that day's plan (``sequential``). The
functions are the engine's own (:mod:`abconv.stats`); nothing is
re-derived here. O(days × variants × goals).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from abconv.experiments import Experiment
from abconv.stats import sequential
from abconv.stats.frequentist import (
    Interval,
    Proportion,
    fieller_lift_interval,
    rel_lift,
    rel_lift_interval,
)
from abconv.stats.planning import plan
from abconv.vocabulary import Method

if TYPE_CHECKING:
    from abconv.store.counts import ResultCounts

CumulativeDay = tuple[datetime.date, dict[str, int], dict[tuple[str, str], int]]


def cumulative_days(experiment: Experiment, counts: ResultCounts) -> Iterator[CumulativeDay]:
    """``(day, visitors, converting)`` totals at the end of each day with counts, ascending.

    Only the experiment's variants and goals; ``converting`` is keyed by
    ``(goal, variant)``.
    """
    variants = [v.key for v in experiment.variants]
    pairs = [(goal.key, v) for goal in experiment.goals for v in variants]
    visitors = dict.fromkeys(variants, 0)
    converting = dict.fromkeys(pairs, 0)
    for day in sorted(counts.days, key=lambda d: d.day):
        for v in variants:
            visitors[v] += day.visitors.get(v, 0)
        for pair in pairs:
            converting[pair] += day.converting.get(pair, 0)
        yield day.day, dict(visitors), dict(converting)


def timeline(experiment: Experiment, counts: ResultCounts) -> dict[str, Any]:
    """The ``timeline`` of the results document (README, "The results document")."""
    primary = experiment.primary_goal.key
    control = experiment.control
    treatments = [v.key for v in experiment.variants if v.key != control]
    days = []
    for day, visitors, converting in cumulative_days(experiment, counts):
        rates = {
            v.key: {
                "visitors": visitors[v.key],
                "goals": {
                    goal.key: _rate(visitors[v.key], converting[goal.key, v.key])
                    for goal in experiment.goals
                },
            }
            for v in experiment.variants
        }
        arms = {v: Proportion(visitors[v], converting[primary, v]) for v in visitors}
        lift = {t: _lift(experiment, arms, t, control) for t in treatments}
        days.append({"day": day.isoformat(), "variants": rates, "lift": lift})
    return {"goal": primary, "days": days}


def _rate(visitors: int, converting: int) -> dict[str, Any]:
    return {"converting": converting, "rate": converting / visitors if visitors else None}


def _lift(
    experiment: Experiment, arms: dict[str, Proportion], treatment: str, control: str
) -> dict[str, Any]:
    interval = lift_interval(experiment, arms, treatment, control)
    return {
        "rel_lift": rel_lift(arms[treatment], arms[control]),
        "rel_lift_ci": None if interval is None else list(interval),
    }


def lift_interval(
    experiment: Experiment, arms: dict[str, Proportion], treatment: str, control: str
) -> Interval | None:
    """``vs_control.rel_lift_ci`` of ``treatment`` as the analysis computes it for ``arms``.

    ``arms``: every variant's visitors and converting visitors on the
    primary goal (the sequential boundary is tuned by the plan, which reads
    them all).
    """
    settings = experiment.analysis
    t, c = arms[treatment], arms[control]
    if settings.method is not Method.SEQUENTIAL:
        return rel_lift_interval(t, c, settings.alpha)
    visitors = t.n + c.n
    if visitors == 0:
        return None
    needed = plan(
        [arms[v.key].n for v in experiment.variants],
        c.n,
        c.x,
        settings.mde,
        settings.alpha,
        settings.power,
    ).visitors_needed_per_variant
    factor = sequential.boundary_factor(
        visitors, settings.alpha, sequential.tuning_visitors(needed)
    )
    return fieller_lift_interval(t, c, factor)
