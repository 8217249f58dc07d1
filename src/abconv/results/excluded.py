"""``excluded``: requests served without being recorded, counted per reason.

So a person can see why the visitors here are fewer than in their analytics
tool. The store keeps a counter per experiment, reason and UTC day
(:mod:`abconv.store.excluded`); the document carries the totals
(``excluded``) and the days (``excluded_by_day``). Counts are requests, not
visitors: one who comes back counts again. A visitor who has not given
consent (``data-consent="wait"``) sends nothing, so cannot be counted here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from abconv.assignment import Reason

# Each reason, in the order shown, with what it means for the person reading.
REASONS: dict[str, str] = {
    "bot": "Crawlers, monitors and link checkers (a bot User-Agent, or a HEAD request "
    "to a landing page): served a variant, never counted.",
    "forced": "Requests with force=VARIANT (previews and QA): shown the variant asked for, "
    "not counted.",
    "not_running": "While the experiment was a draft or paused: everyone saw the control, "
    "nobody was counted.",
    "outside_traffic": "Visitors outside the experiment's traffic share: shown the control, "
    "not counted.",
    "layer": "Visitors the experiment's layer gave to another experiment, or to none: "
    "shown the control, not counted.",
    "concluded": "After the experiment concluded: everyone is shown the winner, nobody is counted.",
}

# The name each unrecorded assignment is counted under; ASSIGNED is recorded.
REASON_NAMES: dict[Reason, str] = {
    Reason.BOT: "bot",
    Reason.FORCED: "forced",
    Reason.NOT_RUNNING: "not_running",
    Reason.EXCLUDED: "outside_traffic",
    Reason.LAYER: "layer",
    Reason.CONCLUDED: "concluded",
}


def excluded(rows: Iterable[tuple[date, str, int]]) -> dict[str, Any]:
    """``excluded`` (totals per reason) and ``excluded_by_day`` (ascending) from
    the store's (day, reason, requests) rows. Every reason is present, 0 when
    none was counted; a reason this version does not know is left out."""
    totals = dict.fromkeys(REASONS, 0)
    days: dict[date, dict[str, int]] = {}
    for day, reason, requests in rows:
        if reason not in totals:
            continue
        totals[reason] += requests
        days.setdefault(day, dict.fromkeys(REASONS, 0))[reason] += requests
    return {
        "excluded": totals,
        "excluded_by_day": [
            {"day": day.isoformat(), **counts} for day, counts in sorted(days.items())
        ],
    }
