"""Excluded requests: counters of the requests served without being recorded.

One row per (experiment, reason, UTC day), ``requests`` added to by
``INSERT ... ON CONFLICT DO UPDATE SET requests = requests + 1`` (both
dialects), so concurrent writers never lose a count and no visitor id is
stored. A request that leaves out several experiments adds to each in one
statement. Counts are of requests, not visitors: a bot that comes back
counts again. Reasons are plain names chosen by the caller
(:data:`abconv.results.excluded.REASONS`); the store does not judge them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import sqlalchemy as sa

from abconv.store.connections import Database
from abconv.store.tables import EXCLUDED_COUNT

TABLE = EXCLUDED_COUNT


class ExcludedCounts:
    def __init__(self, database: Database) -> None:
        self.database = database

    def add(self, reasons: Mapping[str, str], day: date) -> None:
        """Count one request for each experiment → reason of ``reasons`` on ``day``.

        Raises what the database raises (the caller logs and goes on)."""
        if not reasons:
            return
        rows = [
            {"experiment": experiment, "reason": reason, "day": day, "requests": 1}
            for experiment, reason in sorted(reasons.items())  # one lock order for all
        ]
        insert = self.database.insert(TABLE).values(rows)
        statement = insert.on_conflict_do_update(
            index_elements=[TABLE.c.experiment, TABLE.c.reason, TABLE.c.day],
            set_={"requests": TABLE.c.requests + insert.excluded.requests},
        )
        with self.database.writing() as conn:
            conn.execute(statement)

    def of(self, experiment: str) -> list[tuple[date, str, int]]:
        """(day, reason, requests) of ``experiment``, by day then reason."""
        query = (
            sa.select(TABLE.c.day, TABLE.c.reason, TABLE.c.requests)
            .where(TABLE.c.experiment == experiment)
            .order_by(TABLE.c.day, TABLE.c.reason)
        )
        with self.database.reading() as conn:
            return [(day, reason, int(requests)) for day, reason, requests in conn.execute(query)]
