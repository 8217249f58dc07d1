"""The counts the results are computed from, as plain values (no SQLAlchemy here).

``Store.result_counts(experiment, caps)`` builds a :class:`ResultCounts`
from the rollups; the results code (:mod:`abconv.results`) reads nothing
else. Days are UTC days of the event's own timestamp.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass


@dataclass(frozen=True)
class GoalCounts:
    """One (goal, variant)."""

    converting: int  # visitors with >= 1 conversion on the goal ("conversions" in analyze input)
    events: int  # conversion events (rows)
    value_sum: float  # sum over converting visitors of their total value, capped at the goal's cap
    value_sum_squares: float  # sum of squared (capped) per-visitor totals
    value_sum_cubes: float  # sum of cubed (capped) per-visitor totals (skew-corrected interval)
    capped_visitors: int  # visitors whose total the cap cut


@dataclass(frozen=True)
class DayCounts:
    """What is NEW on that UTC day (increments, not cumulative)."""

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
    # of those, visitors with a hard conversion at or after their first soft one
    hard_after_soft: int
    hard_without_soft: int  # visitors with NO soft conversion who have a hard conversion


@dataclass(frozen=True)
class ResultCounts:
    visitors: dict[str, int]  # variant -> exposed visitors
    goals: dict[tuple[str, str], GoalCounts]  # (goal, variant); missing = zeros
    days: list[DayCounts]  # ascending by day, only days with something
    # every soft x hard goal of the experiment x variant (missing = zeros ok)
    pairs: list[PairCounts]
