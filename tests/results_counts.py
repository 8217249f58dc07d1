"""Experiments and counts for the results tests, built by hand (no database).

``counts_from_events`` is the rollups' rule written out plainly: what
``Store.result_counts`` must return for raw events (shared interface,
section A), so tests of :mod:`abconv.results` can start from events.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from abconv.analysis_settings import AnalysisSettings
from abconv.experiments import Experiment, Goal, Variant
from abconv.store.counts import DayCounts, GoalCounts, PairCounts, ResultCounts
from abconv.vocabulary import ExperimentKind, GoalKind, Method, Status

DAY = datetime.date(2026, 11, 1)


def experiment(
    goals: Sequence[Goal] = (),
    variants: Sequence[str] = ("control", "B"),
    method: Method = Method.BAYESIAN,
    **analysis: float,
) -> Experiment:
    """A running CTA experiment; the first variant is the control."""
    goals = tuple(goals) or (
        Goal("purchase", GoalKind.HARD, value=True, primary=True),
        Goal("guide", GoalKind.SOFT, value=False, primary=False),
    )
    return Experiment(
        key="shop",
        name="Shop",
        hypothesis="",
        status=Status.RUNNING,
        kind=ExperimentKind.CTA,
        traffic=1.0,
        control=variants[0],
        winner=None,
        variants=tuple(Variant(v, 1.0, {"text": v}, None, None) for v in variants),
        goals=goals,
        analysis=AnalysisSettings(method=method, **analysis),  # type: ignore[arg-type]
        path="shop.toml",
    )


@dataclass(frozen=True)
class Exposure:
    visitor: str
    variant: str
    at: datetime.datetime


@dataclass(frozen=True)
class Conversion:
    visitor: str
    goal: str
    at: datetime.datetime
    value: float | None = None


def counts_from_events(
    exp: Experiment, exposures: Sequence[Exposure], conversions: Sequence[Conversion]
) -> ResultCounts:
    """The counts of section A, by plain loops over the events."""
    variant_of = {e.visitor: e.variant for e in exposures}
    visitors: dict[str, int] = defaultdict(int)
    new_visitors: dict[datetime.date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in exposures:
        visitors[e.variant] += 1
        new_visitors[e.at.date()][e.variant] += 1
    totals: dict[tuple[str, str], float] = defaultdict(float)
    per_visitor: dict[tuple[str, str], int] = defaultdict(int)  # (goal, visitor) -> events
    first: dict[tuple[str, str], datetime.datetime] = {}
    for c in conversions:
        key = (c.goal, c.visitor)
        totals[key] += c.value or 0.0
        per_visitor[key] += 1
        first[key] = min(first.get(key, c.at), c.at)
    caps = {g.key: g.cap for g in exp.goals}
    goals: dict[tuple[str, str], GoalCounts] = {}
    for goal in exp.goals:
        for variant in visitors:
            keys = [key for key in totals if key[0] == goal.key and variant_of[key[1]] == variant]
            mine = [totals[key] for key in keys]
            n = [per_visitor[key] for key in keys]
            cap = caps[goal.key]
            capped = [min(t, cap) if cap is not None else t for t in mine]
            goals[goal.key, variant] = GoalCounts(
                converting=len(mine),
                events=sum(n),
                value_sum=sum(capped),
                value_sum_squares=sum(t * t for t in capped),
                value_sum_cubes=sum(t**3 for t in capped),
                capped_visitors=sum(1 for t in mine if cap is not None and t > cap),
                events_sum_squares=float(sum(k * k for k in n)),
                value_events_sum=sum(t * k for t, k in zip(capped, n, strict=True)),
            )
    converting_days: dict[datetime.date, dict[tuple[str, str], int]] = defaultdict(
        lambda: defaultdict(int)
    )
    for (goal_key, visitor), at in first.items():
        converting_days[at.date()][goal_key, variant_of[visitor]] += 1
    days = [
        DayCounts(d, dict(new_visitors.get(d, {})), dict(converting_days.get(d, {})))
        for d in sorted(set(new_visitors) | set(converting_days))
    ]
    return ResultCounts(dict(visitors), goals, days, _pairs(exp, variant_of, first, conversions))


def _pairs(
    exp: Experiment,
    variant_of: dict[str, str],
    first: dict[tuple[str, str], datetime.datetime],
    conversions: Sequence[Conversion],
) -> list[PairCounts]:
    """Soft → hard per variant: of the visitors with the soft goal, those with a hard
    conversion at or after their first soft one; and visitors with a hard conversion
    but no soft one."""
    pairs = []
    for soft in (g.key for g in exp.goals if g.kind is GoalKind.SOFT):
        for hard in (g.key for g in exp.goals if g.kind is GoalKind.HARD):
            for variant in (v.key for v in exp.variants):
                mine = [v for v, var in variant_of.items() if var == variant]
                soft_seen = [v for v in mine if (soft, v) in first]
                after = [
                    v
                    for v in soft_seen
                    if any(
                        c.visitor == v and c.goal == hard and c.at >= first[soft, v]
                        for c in conversions
                    )
                ]
                without = [v for v in mine if (soft, v) not in first and (hard, v) in first]
                pairs.append(
                    PairCounts(soft, hard, variant, len(soft_seen), len(after), len(without))
                )
    return pairs
