"""Event writes and the reads that serve them: exposures and conversions.

Duplicates (a repeated exposure, a visitor's repeated ``event_id``) are
absorbed by unique constraints with ``ON CONFLICT DO NOTHING``, which stays
correct when several workers or hosts receive the same event at once. Each
new row updates the rollups (:mod:`abconv.store.rollups`) in the same
transaction; a duplicate changes nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from abconv.store import postgres_writes, sqlite_writes
from abconv.store.connections import Database, as_database_error, utcnow
from abconv.store.exposure_cache import ExposureCache
from abconv.store.group_commit import GroupCommit
from abconv.store.postgres import SELECT_EVENT as SELECT_EVENT_POSTGRES
from abconv.store.postgres import SELECT_EXPOSURES as SELECT_EXPOSURES_POSTGRES
from abconv.store.postgres import Pipeline
from abconv.store.rollups import Rollups
from abconv.store.sqlite import SELECT_EVENT
from abconv.store.tables import (
    CONVERSION,
    CONVERSION_KEY,
    EXPOSURE,
    NewConversion,
    StoredExposure,
    first_of_each_event,
    joined,
    split,
)

_CONVERSION_COLUMNS = (
    "experiment", "variant", "visitor", "goal", "kind", "value", "event_id", "created_at", "phase",
)  # fmt: skip


_INSERT_CONVERSIONS_POSTGRES = sa.text(
    f"INSERT INTO conversion ({', '.join(_CONVERSION_COLUMNS)}) SELECT * FROM unnest("
    "CAST(:experiment AS varchar[]), CAST(:variant AS varchar[]), CAST(:visitor AS varchar[]), "
    "CAST(:goal AS varchar[]), CAST(:kind AS varchar[]), CAST(:value AS float8[]), "
    "CAST(:event_id AS varchar[]), CAST(:created_at AS timestamp[]), CAST(:phase AS int4[])) "
    f"ON CONFLICT ({', '.join(CONVERSION_KEY)}) DO NOTHING RETURNING visitor, event_id, experiment"
)


class Events:
    """Exposures and conversions of one database, with this process's exposure cache."""

    def __init__(self, database: Database, rollups: Rollups) -> None:
        self.database = database
        self.rollups = rollups
        self.exposure_cache = ExposureCache()
        # Writes share transactions (abconv.store.group_commit): SQLite's hot
        # path, or PostgreSQL's (abconv.store.postgres). An in-memory SQLite
        # database is one per thread, so its writes run on their own thread, alone.
        self._hot_writes: GroupCommit[sqlite3.Connection] | None = None
        self._writes: GroupCommit[Pipeline] | None = None
        if database.hot is not None:
            self._hot_writes = GroupCommit(self._hot_transaction)
        elif database.postgres is not None:
            self._writes = GroupCommit(self._postgres_transaction, self._postgres_autocommit)
        insert = database.insert
        # Built once: constructing statements per request costs more than running them.
        self._select_exposures = sa.select(
            EXPOSURE.c.experiment, EXPOSURE.c.variant, EXPOSURE.c.created_at, EXPOSURE.c.phase
        ).where(EXPOSURE.c.visitor == sa.bindparam("visitor"))
        self._insert_exposure = (
            insert(EXPOSURE)
            .on_conflict_do_nothing(index_elements=["visitor", "experiment"])
            .returning(
                EXPOSURE.c.experiment, EXPOSURE.c.variant, EXPOSURE.c.created_at, EXPOSURE.c.phase
            )
        )
        self._select_event = sa.select(*(CONVERSION.c[n] for n in _CONVERSION_COLUMNS)).where(
            CONVERSION.c.visitor == sa.bindparam("visitor"),
            CONVERSION.c.event_id == sa.bindparam("event_id"),
        )
        self._select_exposures_of_many = sa.select(
            EXPOSURE.c.visitor,
            EXPOSURE.c.experiment,
            EXPOSURE.c.variant,
            EXPOSURE.c.created_at,
            EXPOSURE.c.phase,
        )
        self._select_exposures_of_any = self._select_exposures_of_many.where(
            EXPOSURE.c.visitor
            == sa.any_(sa.bindparam("visitors", type_=postgresql.ARRAY(sa.String)))
        )
        self._insert_conversion = (
            insert(CONVERSION)
            .on_conflict_do_nothing(index_elements=list(CONVERSION_KEY))
            .returning(CONVERSION.c.id)
        )

    @contextmanager
    def _hot_transaction(self) -> Iterator[sqlite3.Connection]:
        assert self.database.hot is not None  # only made with a hot path
        with self.database.using(), as_database_error(), self.database.hot.transaction() as c:
            yield c

    @contextmanager
    def _postgres_transaction(self) -> Iterator[Pipeline]:
        assert self.database.postgres is not None  # only made with it
        with self.database.using(), self.database.postgres.pipeline() as pipeline:
            yield pipeline

    @contextmanager
    def _postgres_autocommit(self) -> Iterator[Pipeline]:
        assert self.database.postgres is not None  # only made with it
        with self.database.using(), self.database.postgres.pipeline(autocommit=True) as pipeline:
            yield pipeline

    # -- exposures ---------------------------------------------------------

    def exposures_of(self, visitor: str, experiments: Sequence[str]) -> dict[str, StoredExposure]:
        """The recorded exposures of a visitor among ``experiments`` (a read, no lock).

        Answered from this process's cache when it knows them all: a recorded
        exposure never changes, so a cached one is always right. Otherwise
        one indexed lookup by visitor, whose answer fills the cache.
        """
        cached = self.exposure_cache.get(visitor, experiments)
        if cached is not None:
            return cached
        hot, postgres = self.database.hot, self.database.postgres
        if hot is not None:
            with self.database.using(), as_database_error():
                rows: Sequence[Any] = hot.exposures_of(visitor)
        elif postgres is not None:
            with self.database.using():
                rows = postgres.rows(SELECT_EXPOSURES_POSTGRES, visitor)
        else:
            with self.database.autocommit() as conn:
                rows = conn.execute(self._select_exposures, {"visitor": visitor}).all()
        stored = {row[0]: StoredExposure(*row) for row in rows}
        self.exposure_cache.put(visitor, stored.values())
        return {key: stored[key] for key in experiments if key in stored}

    def exposures_for(
        self, conn: Connection, visitors: Iterable[str]
    ) -> dict[tuple[str, str], StoredExposure]:
        """Exposures of many visitors, by (visitor, experiment), inside ``conn``."""
        wanted = sorted(set(visitors))
        if self.database.is_sqlite:
            query = self._select_exposures_of_many.where(EXPOSURE.c.visitor.in_(wanted))
            found = conn.execute(query)
        else:  # one statement text for any number of visitors
            found = conn.execute(self._select_exposures_of_any, {"visitors": wanted})
        return {
            (row.visitor, row.experiment): StoredExposure(
                row.experiment, row.variant, row.created_at, row.phase
            )
            for row in found.all()
        }

    def record_exposures(
        self,
        visitor: str,
        variants: dict[str, str],
        at: datetime | None = None,
        phases: Mapping[str, int] | None = None,
    ) -> dict[str, str]:
        """Record first exposures (experiment → variant) in ``phases`` (experiment →
        phase number, 1 when not given); return what is stored.

        An exposure recorded earlier, by this or another worker, wins: the
        returned mapping holds the stored variant for every experiment asked.
        """
        return self.record_exposures_counted(visitor, variants, at, phases)[0]

    def record_exposures_counted(
        self,
        visitor: str,
        variants: dict[str, str],
        at: datetime | None = None,
        phases: Mapping[str, int] | None = None,
    ) -> tuple[dict[str, str], int]:
        """:meth:`record_exposures`, and how many of the rows were new."""
        if not variants:
            return {}, 0
        at = at or utcnow()
        phases = phases or {}
        rows: list[dict[str, Any]] = [
            {
                "experiment": key,
                "visitor": visitor,
                "variant": variant,
                "created_at": at,
                "phase": phases.get(key, 1),
            }
            for key, variant in variants.items()
        ]
        if self._hot_writes is not None:
            inserted = self._hot_writes.run(_exposures_hot, rows)
        elif self._writes is not None:
            return self._recorded_postgres(visitor, variants, rows)
        else:
            with self.database.writing() as conn:
                inserted = self.insert_exposures(conn, rows)
        if inserted == len(rows):
            self.exposure_cache.put(
                visitor,
                [
                    StoredExposure(key, row["variant"], at, row["phase"])
                    for key, row in zip(variants, rows, strict=True)
                ],  # fmt: skip
            )
            return dict(variants), inserted
        stored = self.exposures_of(visitor, list(variants))
        return {key: stored[key].variant for key in variants if key in stored}, inserted

    def _recorded_postgres(
        self, visitor: str, variants: dict[str, str], rows: list[dict[str, Any]]
    ) -> tuple[dict[str, str], int]:
        """:meth:`record_exposures_counted` on PostgreSQL: the insert answers with
        the visitor's earlier exposures too, so that a read is needed only when
        another transaction stored one of the rows meanwhile."""
        assert self._writes is not None  # PostgreSQL's group commit
        inserted, before = self._writes.run(
            postgres_writes.exposures_recorded, rows, one_statement=True
        )
        stored = {exposure.experiment: exposure for exposure in before}
        new = [row for row in rows if row["experiment"] not in stored]
        if len(new) != inserted:  # a concurrent writer's row, not in the snapshot
            self.exposure_cache.put(visitor, before)
            found = self.exposures_of(visitor, list(variants))
            return {key: found[key].variant for key in variants if key in found}, inserted
        for row in new:
            stored[row["experiment"]] = StoredExposure(
                row["experiment"], row["variant"], row["created_at"], row["phase"]
            )
        self.exposure_cache.put(visitor, stored.values())
        return {key: stored[key].variant for key in variants if key in stored}, inserted

    @property
    def inserts_first(self) -> bool:
        """Whether a new visitor's exposures are better inserted at once, their
        stored ones read only when some insert finds a row (PostgreSQL: an insert
        costs no more than a read; on SQLite it takes the writers' lock)."""
        return self._writes is not None

    def known_exposures(
        self, visitor: str, experiments: Sequence[str]
    ) -> dict[str, StoredExposure] | None:
        """:meth:`exposures_of` from this process's cache alone; None unless it knows all."""
        return self.exposure_cache.get(visitor, experiments)

    def insert_exposures(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        """Insert exposure rows inside a write transaction; return how many were new."""
        if not rows:
            return 0
        new = conn.execute(self._insert_exposure, rows).all()
        self.rollups.exposures_added(conn, new)
        return len(new)

    # -- conversions -------------------------------------------------------

    def conversions_with_event(self, visitor: str, event_id: str) -> list[NewConversion]:
        """The conversions ``visitor`` recorded with ``event_id``: never another
        visitor's, whose event ids are theirs."""
        hot, postgres = self.database.hot, self.database.postgres
        if hot is not None:
            with self.database.using(), as_database_error():
                found = hot.read(SELECT_EVENT, (visitor, event_id))
            return [
                NewConversion(
                    e, v, who, goal, kind, value, event, datetime.fromisoformat(at), phase
                )
                for e, v, who, goal, kind, value, event, at, phase in found
            ]
        if postgres is not None:
            with self.database.using():
                return [
                    NewConversion(*row)
                    for row in postgres.rows(SELECT_EVENT_POSTGRES, visitor, event_id)
                ]
        with self.database.autocommit() as conn:
            rows = conn.execute(self._select_event, {"visitor": visitor, "event_id": event_id})
            return [NewConversion(*row) for row in rows.all()]

    def convert(
        self, visitor: str, event_id: str | None, rows: Sequence[NewConversion]
    ) -> tuple[list[NewConversion], list[bool]]:
        """A conversion event of ``visitor``: the rows recorded earlier with its
        ``event_id``, if any (then nothing is written: a repeated event); else
        none, and ``rows`` stored with their rollups, True where a row was new.

        On PostgreSQL the look-up goes in the transaction that stores the rows,
        in the same round trip."""
        if self._writes is None or not rows:
            earlier = [] if event_id is None else self.conversions_with_event(visitor, event_id)
            if earlier or not rows:
                return earlier, [False] * len(rows)
            return [], self.record_conversions(rows)
        return self._writes.run(postgres_writes.converted, (list(rows), event_id is not None))

    def insert_conversions(self, conn: Connection, rows: Iterable[NewConversion]) -> list[bool]:
        """Insert conversions inside a write transaction; True where a row was new.

        A conversion whose (visitor, event_id, experiment) is stored already
        changes nothing.
        """
        rows = list(rows)
        if len(rows) > 1 and not self.database.is_sqlite:
            new = self._insert_many_conversions(conn, rows)
        else:
            new = [
                len(conn.execute(self._insert_conversion, row.__dict__).all()) == 1 for row in rows
            ]
        self.rollups.conversions_added(
            conn, [row for row, is_new in zip(rows, new, strict=True) if is_new]
        )
        return new

    def _insert_many_conversions(self, conn: Connection, rows: list[NewConversion]) -> list[bool]:
        """PostgreSQL: a batch's conversions in one statement (arrays, ``unnest``)
        rather than a round trip each. As row by row, the first of a batch's rows
        with one (visitor, event_id, experiment) is the one that counts."""
        first = first_of_each_event(rows)
        sent = [row for row, is_first in zip(rows, first, strict=True) if is_first]
        columns = {name: [getattr(row, name) for row in sent] for name in _CONVERSION_COLUMNS}
        stored = {tuple(r) for r in conn.execute(_INSERT_CONVERSIONS_POSTGRES, columns)}
        return [
            is_first
            and (row.event_id is None or (row.visitor, row.event_id, row.experiment) in stored)
            for row, is_first in zip(rows, first, strict=True)
        ]

    def ingest(
        self,
        exposures: list[dict[str, Any]],
        visitors: Iterable[str],
        credit: Callable[[dict[tuple[str, str], StoredExposure]], list[NewConversion]],
    ) -> tuple[int, list[NewConversion], list[bool]]:
        """A batch in one committed transaction: insert ``exposures``, read the
        stored exposures of ``visitors``, insert the conversions ``credit``
        makes of them. Return the new exposures, the conversion rows, and
        True where a conversion row was new."""
        batch = (exposures, list(visitors), credit)  # a retry reads them again
        if self._hot_writes is not None:
            return self._hot_writes.run(_ingested_hot, batch)
        if self._writes is not None:
            return self._writes.run(postgres_writes.ingested, batch)
        with self.database.writing() as conn:
            return self._ingested(conn, [batch])[0]

    def _ingested(self, conn: Connection, batches: list[_Batch]) -> list[_Ingested]:
        """:meth:`ingest`'s batches inside a shared transaction, one after the other."""
        done = []
        for exposures, visitors, credit in batches:
            new_exposures = self.insert_exposures(conn, exposures)
            rows = credit(self.exposures_for(conn, visitors))
            done.append((new_exposures, rows, self.insert_conversions(conn, rows)))
        return done

    def record_conversions(self, rows: Sequence[NewConversion]) -> list[bool]:
        """Store conversions and their rollups in one committed transaction;
        True where a row was new."""
        if not rows:
            return []
        if self._hot_writes is not None:
            return self._hot_writes.run(_conversions_hot, list(rows))
        if self._writes is not None:
            return self._writes.run(postgres_writes.conversions_written, list(rows))
        with self.database.writing() as conn:
            return self.insert_conversions(conn, rows)


_Batch = tuple[
    list[dict[str, Any]],
    list[str],
    Callable[[dict[tuple[str, str], StoredExposure]], list[NewConversion]],
]
_Ingested = tuple[int, list[NewConversion], list[bool]]


def _exposures_hot(
    connection: sqlite3.Connection, payloads: list[list[dict[str, Any]]]
) -> list[int]:
    return sqlite_writes.insert_exposures(connection, payloads)


def _conversions_hot(
    connection: sqlite3.Connection, payloads: list[list[NewConversion]]
) -> list[list[bool]]:
    return split(_insert_conversions_hot(connection, joined(payloads)), payloads)


def _ingested_hot(connection: sqlite3.Connection, batches: list[_Batch]) -> list[_Ingested]:
    """:meth:`Events.ingest` on SQLite's hot path."""
    done = []
    for exposures, visitors, credit in batches:
        (new_exposures,) = sqlite_writes.insert_exposures(connection, [exposures])
        rows = credit(_exposures_for_hot(connection, visitors))
        done.append((new_exposures, rows, _insert_conversions_hot(connection, rows)))
    return done


def _insert_conversions_hot(
    connection: sqlite3.Connection, rows: Sequence[NewConversion]
) -> list[bool]:
    """:meth:`Events.insert_conversions` in plain sqlite3, inside the caller's
    transaction: the same rows, rollups computed by the same
    :func:`~abconv.store.rollups.conversion_changes`."""
    return sqlite_writes.insert_conversions(connection, rows)


def _exposures_for_hot(
    connection: sqlite3.Connection, visitors: Iterable[str]
) -> dict[tuple[str, str], StoredExposure]:
    return sqlite_writes.exposures_for(connection, visitors)
