"""Reads for results: an experiment's rollups as :class:`ResultCounts`.

Rollup rows only, never a scan of events: the cost is O(variants x goals x
days) whatever the traffic.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from abconv.store.counts import DayCounts, GoalCounts, PairCounts, ResultCounts
from abconv.store.tables import (
    ROLLUP_CAP,
    ROLLUP_EXPOSURE,
    ROLLUP_GOAL,
    ROLLUP_GOAL_DAY,
    ROLLUP_PAIR,
)


def recorded_caps(conn: Connection, experiment: str) -> dict[str, float]:
    """The caps the experiment's rollups were built with (goal → cap)."""
    query = sa.select(ROLLUP_CAP.c.goal, ROLLUP_CAP.c.cap).where(
        ROLLUP_CAP.c.experiment == experiment
    )
    return {goal: float(cap) for goal, cap in conn.execute(query).all()}


def result_counts(conn: Connection, experiment: str, phase: int) -> ResultCounts:
    """The counts of the visitors first exposed in ``phase``."""
    visitors: dict[str, int] = defaultdict(int)
    new_visitors: dict[datetime.date, dict[str, int]] = defaultdict(dict)
    rows = _rows(conn, ROLLUP_EXPOSURE, experiment, phase, "variant", "day", "visitors")
    for variant, day, n in rows:
        visitors[variant] += n
        new_visitors[day][variant] = n
    goals, kinds = {}, defaultdict(set)
    in_phase = (ROLLUP_GOAL.c.experiment == experiment) & (ROLLUP_GOAL.c.phase == phase)
    for row in conn.execute(sa.select(ROLLUP_GOAL).where(in_phase)):
        goals[(row.goal, row.variant)] = GoalCounts(
            int(row.converting), int(row.events), float(row.value_sum),
            float(row.value_sum_squares), float(row.value_sum_cubes), int(row.capped_visitors),
            float(row.events_sum_squares), float(row.value_events_sum),
        )  # fmt: skip
        kinds[row.goal].add(row.kind)
    converting: dict[datetime.date, dict[tuple[str, str], int]] = defaultdict(dict)
    for goal, variant, day, n in _rows(
        conn, ROLLUP_GOAL_DAY, experiment, phase, "goal", "variant", "day", "converting"
    ):
        if n:
            converting[day][(goal, variant)] = n
    days = [
        DayCounts(day, new_visitors.get(day, {}), converting.get(day, {}))
        for day in sorted(new_visitors.keys() | converting.keys())
    ]
    soft = sorted(goal for goal, kind in kinds.items() if "soft" in kind)
    hard = sorted(goal for goal in kinds if goal not in soft)
    both = {
        (first, then, variant): (n, after)
        for variant, first, then, n, after in _rows(
            conn,
            ROLLUP_PAIR,
            experiment,
            phase,
            "variant",
            "first_goal",
            "then_goal",
            "both",
            "then_after_first",
        )  # fmt: skip
    }
    variants = sorted(visitors.keys() | {variant for _, variant in goals})
    pairs = [
        _pair(s, h, v, goals, both.get((s, h, v), (0, 0)))
        for s in soft
        for h in hard
        for v in variants
    ]
    return ResultCounts(dict(visitors), goals, days, pairs)


def _pair(
    soft: str,
    hard: str,
    variant: str,
    goals: Mapping[tuple[str, str], GoalCounts],
    both: tuple[int, int],
) -> PairCounts:
    soft_visitors = goals[(soft, variant)].converting if (soft, variant) in goals else 0
    hard_visitors = goals[(hard, variant)].converting if (hard, variant) in goals else 0
    with_both, hard_after_soft = both
    return PairCounts(
        soft, hard, variant, soft_visitors, int(hard_after_soft), hard_visitors - int(with_both)
    )


def _rows(
    conn: Connection, table: sa.Table, experiment: str, phase: int, *names: str
) -> list[tuple[Any, ...]]:
    query = sa.select(*(table.c[name] for name in names)).where(
        table.c.experiment == experiment, table.c.phase == phase
    )
    return [tuple(row) for row in conn.execute(query).all()]
