"""What the rollups answer for one experiment: plain values, no SQL.

:meth:`abconv.store.Store.result_counts` builds a :class:`ResultCounts`
from the rollup tables alone, so its cost is O(variants x goals x days)
whatever the traffic. Other code may build one by hand (tests, tools).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass


@dataclass(frozen=True)
class GoalCounts:
    """One (goal, variant). Values are per-visitor totals, each capped at the goal's cap."""

    converting: int  # visitors with >= 1 conversion on the goal ("conversions" in analyze input)
    events: int  # conversion events (rows)
    value_sum: float  # sum over converting visitors of their total value, capped
    value_sum_squares: float  # sum of squared (capped) per-visitor totals
    value_sum_cubes: float  # sum of cubed (capped) per-visitor totals
    capped_visitors: int  # visitors whose total the cap cut
    # Per-visitor cross sums for count and ratio metrics; None: not known (counts
    # built by hand without them), and the analysis leaves those metrics out.
    events_sum_squares: float | None = None  # sum of squared per-visitor event counts
    value_events_sum: float | None = None  # sum of (capped) total x event count


ZERO_GOAL = GoalCounts(0, 0, 0.0, 0.0, 0.0, 0)


@dataclass(frozen=True)
class DayCounts:
    """What is NEW on one UTC day (increments, not cumulative)."""

    day: datetime.date
    visitors: dict[str, int]  # variant -> visitors first exposed that day
    # (goal, variant) -> visitors whose FIRST conversion on the goal fell that day
    converting: dict[tuple[str, str], int]


@dataclass(frozen=True)
class PairCounts:
    """One (soft goal, hard goal, variant)."""

    soft: str
    hard: str
    variant: str
    soft_visitors: int  # visitors with >= 1 conversion on the soft goal
    hard_after_soft: int  # of those, visitors with a hard conversion at or after their first soft
    hard_without_soft: int  # visitors with NO soft conversion who have a hard conversion


@dataclass(frozen=True)
class ResultCounts:
    visitors: dict[str, int]  # variant -> exposed visitors
    goals: dict[tuple[str, str], GoalCounts]  # (goal, variant); missing = zeros
    days: list[DayCounts]  # ascending by day, only days with something
    pairs: list[PairCounts]  # every soft x hard goal of the experiment x variant
