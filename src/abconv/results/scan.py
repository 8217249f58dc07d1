"""TEMPORARY: counts from today's per-request scan, until ``Store.result_counts`` reads rollups.

At the merge with the rollups, the results route calls
``store.result_counts(key, caps)`` instead and this module goes.
"""

from __future__ import annotations

from collections.abc import Mapping

from abconv.store import Store
from abconv.store.counts import GoalCounts, ResultCounts


def counts_from_scan(store: Store, key: str, caps: Mapping[str, float]) -> ResultCounts:
    """Totals from ``visitors_by_variant`` and ``conversions_by_variant``; no days, no pairs,
    no event counts and no cubes (zeros)."""
    goals = {
        (row["goal"], row["variant"]): GoalCounts(
            converting=int(row["conversions"]),
            events=0,
            value_sum=float(row["value_sum"] or 0.0),
            value_sum_squares=float(row["value_sum_squares"] or 0.0),
            value_sum_cubes=0.0,
            capped_visitors=int(row["capped_visitors"] or 0),
        )
        for row in store.conversions_by_variant(key, caps)
    }
    return ResultCounts(visitors=store.visitors_by_variant(key), goals=goals, days=[], pairs=[])
