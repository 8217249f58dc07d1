"""``progress``: how far the experiment is toward its planned sample, in visitors and days."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from abconv.experiments import Experiment

if TYPE_CHECKING:
    from abconv.store.counts import ResultCounts


def progress(
    experiment: Experiment, plan: dict[str, Any], counts: ResultCounts, now: datetime
) -> dict[str, Any]:
    """Planned and reached visitors per variant, days running and days left.

    ``visitors_per_variant`` is the smallest variant's (the one the plan
    waits for); ``days_running`` counts UTC days from the first exposure's
    day to ``now``'s, both included (``None`` before any exposure);
    ``days_left`` is the days the smallest variant needs at its average daily
    traffic so far (0 once reached; ``None`` when the plan or the traffic is
    unknown).
    """
    planned: int | None = plan["visitors_needed_per_variant"]
    reached = min(counts.visitors.get(v.key, 0) for v in experiment.variants)
    first = next(
        (
            day.day
            for day in sorted(counts.days, key=lambda d: d.day)
            if any(day.visitors.get(v.key, 0) for v in experiment.variants)
        ),
        None,
    )
    running = None if first is None else max(1, (now.date() - first).days + 1)
    return {
        "planned_visitors_per_variant": planned,
        "visitors_per_variant": reached,
        "fraction": plan["progress"],
        "days_running": running,
        "days_left": _days_left(planned, reached, running),
    }


def _days_left(planned: int | None, reached: int, running: int | None) -> int | None:
    if planned is None:
        return None
    if reached >= planned:
        return 0
    if running is None or reached == 0:
        return None
    return math.ceil((planned - reached) / (reached / running))
