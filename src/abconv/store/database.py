"""The Store: a database's engine, schema and every query.

SQLite (WAL) by default, PostgreSQL when the URL says so; the same
statements serve both. A write returns only after its transaction commits,
so a 2xx reply means the event is stored. Duplicates (a repeated exposure,
a visitor's repeated ``event_id``) are absorbed by unique constraints with
``ON CONFLICT DO NOTHING``, which stays correct when several workers or
hosts receive the same event at once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from abconv.store import schema
from abconv.store.exposure_cache import ExposureCache
from abconv.store.outage import DatabaseHanging, HangGuard
from abconv.store.sqlite import (
    SqliteHotPath,
    SqliteWriterLock,
    create_sqlite_engine,
    database_path,
    is_writable,
)
from abconv.store.tables import (
    CONVERSION,
    CONVERSION_KEY,
    EXPOSURE,
    NewConversion,
    StoredExposure,
)

# The PostgreSQL advisory lock key that serialises migrations.
MIGRATION_LOCK = 7411


def utcnow() -> datetime:
    """Naive UTC, the form every timestamp is stored in."""
    return datetime.now(UTC).replace(tzinfo=None)


class Store:
    """One database: its engine, its schema and its queries."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = _create_engine(self.url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._insert = sqlite.insert if self.is_sqlite else postgresql.insert
        self._writer_lock: SqliteWriterLock | None = None
        self._hot: SqliteHotPath | None = None
        if self.is_sqlite:
            database = database_path(self.url)
            self._writer_lock = SqliteWriterLock(database)
            if database is not None:  # in-memory databases cannot be shared
                self._hot = SqliteHotPath(database, self._writer_lock)
        self.schema_ready = False
        self.hang_guard = HangGuard(self._probe)
        self._exposure_cache = ExposureCache()
        # Built once: constructing statements per request costs more than running them.
        self._select_exposures = sa.select(
            EXPOSURE.c.experiment, EXPOSURE.c.variant, EXPOSURE.c.created_at
        ).where(EXPOSURE.c.visitor == sa.bindparam("visitor"))
        self._insert_exposure = (
            self._insert(EXPOSURE)
            .on_conflict_do_nothing(index_elements=["visitor", "experiment"])
            .returning(EXPOSURE.c.id)
        )
        self._select_event = sa.select(*_conversion_columns()).where(
            CONVERSION.c.visitor == sa.bindparam("visitor"),
            CONVERSION.c.event_id == sa.bindparam("event_id"),
        )
        self._insert_conversion = (
            self._insert(CONVERSION)
            .on_conflict_do_nothing(index_elements=list(CONVERSION_KEY))
            .returning(CONVERSION.c.id)
        )

    def upgrade_schema(self) -> schema.Upgrade:
        """Migrate the schema to the newest revision (see :mod:`abconv.store.schema`).

        Safe when several workers or hosts start at once: one migrates while
        the others wait on the lock, then find nothing left to do.
        """
        with self._migrating() as conn:
            done = schema.upgrade(conn)
        self.schema_ready = True
        return done

    def ensure_schema(self) -> None:
        """Migrate unless done: a server that started while the database was
        down gets its tables on the first use after it is back."""
        if not self.schema_ready:
            self.upgrade_schema()

    @contextmanager
    def _migrating(self) -> Iterator[Connection]:
        """One transaction holding the migration lock: a PostgreSQL advisory
        lock, or the writers' file lock on SQLite."""
        if not self.is_sqlite:
            with self.engine.begin() as conn:
                # A migration may wait for, and take, longer than requests may.
                conn.execute(sa.text("SET LOCAL lock_timeout = 0"))
                conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                yield conn
            return
        assert self._writer_lock is not None  # every SQLite store has one
        with self._writer_lock, self.engine.connect() as conn:
            # pysqlite would commit before each DDL statement on its own; an
            # explicit BEGIN keeps the whole migration one transaction.
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with suppress(sa.exc.DBAPIError):  # SQLite may have rolled back already
                    conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")

    def dispose(self) -> None:
        """Close connections and the lock file (tests; a worker just exits)."""
        self.hang_guard.close()
        self.engine.dispose()
        if self._hot is not None:
            self._hot.close()
        if self._writer_lock is not None:
            self._writer_lock.close()

    def ping(self) -> None:
        """Raise one of :data:`UNAVAILABLE` when the database does not answer
        (at once while it is known to hang)."""
        if self.hang_guard.hanging:
            raise DatabaseHanging()
        self._probe()

    def _probe(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def writable(self) -> bool:
        """False when a SQLite file cannot be written (PostgreSQL: always True;
        a read-only server there fails its writes like any outage)."""
        return self._hot is None or is_writable(self._hot.database)

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction, committed on leaving the block.

        On SQLite the writers of all processes queue on a file lock first:
        a waiter wakes the moment the holder is done, instead of sleeping
        in SQLite's busy handler, and lock contention never fails a request.
        """
        with self._using():
            if self._writer_lock is None:
                with self.engine.begin() as conn:
                    yield conn
                return
            with self._writer_lock, self.engine.begin() as conn:
                yield conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._using(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _using(self) -> Iterator[None]:
        """Around every use of the database but the health check: fail at once
        while it hangs, and create or migrate the tables if not done yet."""
        with self.hang_guard.watch():
            self.ensure_schema()
            yield

    # -- exposures ---------------------------------------------------------

    def exposures_of(self, visitor: str, experiments: Sequence[str]) -> dict[str, StoredExposure]:
        """The recorded exposures of a visitor among ``experiments`` (a read, no lock).

        Answered from this process's cache when it knows them all: a recorded
        exposure never changes, so a cached one is always right. Otherwise
        one indexed lookup by visitor, whose answer fills the cache.
        """
        cached = self._exposure_cache.get(visitor, experiments)
        if cached is not None:
            return cached
        if self._hot is not None:
            with self._using(), _as_database_error():
                rows: Sequence[Any] = self._hot.exposures_of(visitor)
        else:
            with self._reading() as conn:
                rows = conn.execute(self._select_exposures, {"visitor": visitor}).all()
        stored = {row[0]: StoredExposure(*row) for row in rows}
        self._exposure_cache.put(visitor, stored.values())
        return {key: stored[key] for key in experiments if key in stored}

    def exposures_for(
        self, conn: Connection, visitors: Iterable[str]
    ) -> dict[tuple[str, str], StoredExposure]:
        """Exposures of many visitors, by (visitor, experiment), inside ``conn``."""
        query = sa.select(
            EXPOSURE.c.visitor, EXPOSURE.c.experiment, EXPOSURE.c.variant, EXPOSURE.c.created_at
        ).where(EXPOSURE.c.visitor.in_(sorted(set(visitors))))
        return {
            (row.visitor, row.experiment): StoredExposure(
                row.experiment, row.variant, row.created_at
            )
            for row in conn.execute(query).all()
        }

    def record_exposures(
        self, visitor: str, variants: dict[str, str], at: datetime | None = None
    ) -> dict[str, str]:
        """Record first exposures (experiment → variant); return what is stored.

        An exposure recorded earlier, by this or another worker, wins: the
        returned mapping holds the stored variant for every experiment asked.
        """
        if not variants:
            return {}
        at = at or utcnow()
        rows = [
            {"experiment": key, "visitor": visitor, "variant": variant, "created_at": at}
            for key, variant in variants.items()
        ]
        if self._hot is not None:
            with self._using(), _as_database_error():
                inserted = self._hot.insert_exposures(rows)
        else:
            with self.writing() as conn:
                inserted = self.insert_exposures(conn, rows)
        if inserted == len(rows):
            self._exposure_cache.put(
                visitor, [StoredExposure(key, variant, at) for key, variant in variants.items()]
            )
            return dict(variants)
        stored = self.exposures_of(visitor, list(variants))
        return {key: stored[key].variant for key in variants if key in stored}

    def insert_exposures(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        """Insert exposure rows inside a write transaction; return how many were new."""
        if not rows:
            return 0
        return len(conn.execute(self._insert_exposure, rows).all())

    # -- conversions -------------------------------------------------------

    def conversions_with_event(self, visitor: str, event_id: str) -> list[NewConversion]:
        """The conversions ``visitor`` recorded with ``event_id``: never another
        visitor's, whose event ids are theirs."""
        with self._reading() as conn:
            rows = conn.execute(self._select_event, {"visitor": visitor, "event_id": event_id})
            return [NewConversion(*row) for row in rows.all()]

    def insert_conversions(self, conn: Connection, rows: Iterable[NewConversion]) -> list[bool]:
        """Insert conversions inside a write transaction; True where a row was new.

        A conversion whose (visitor, event_id, experiment) is stored already
        changes nothing.
        """
        return [_count(conn.execute(self._insert_conversion, row.__dict__)) == 1 for row in rows]

    def record_conversions(self, rows: Sequence[NewConversion]) -> list[bool]:
        if not rows:
            return []
        with self.writing() as conn:
            return self.insert_conversions(conn, rows)

    # -- reading for reports -----------------------------------------------

    def count_rows(self, table: str, experiment: str | None = None) -> int:
        """Rows in ``exposure`` or ``conversion``, optionally of one experiment."""
        target = {"exposure": EXPOSURE, "conversion": CONVERSION}[table]
        query = sa.select(sa.func.count()).select_from(target)
        if experiment is not None:
            query = query.where(target.c.experiment == experiment)
        with self._reading() as conn:
            return int(conn.execute(query).scalar_one())

    def visitors_by_variant(self, experiment: str) -> dict[str, int]:
        query = (
            sa.select(EXPOSURE.c.variant, sa.func.count())
            .where(EXPOSURE.c.experiment == experiment)
            .group_by(EXPOSURE.c.variant)
        )
        with self._reading() as conn:
            return {variant: int(n) for variant, n in conn.execute(query).all()}

    def conversions_by_variant(
        self, experiment: str, caps: Mapping[str, float] | None = None
    ) -> list[dict[str, Any]]:
        """Per (goal, variant): converting visitors, value sum and sums of squared
        and cubed per-visitor values, the sufficient statistics of the analysis.

        ``caps`` (goal → cap) winsorises each visitor's total value on a goal
        at its cap before the sums; ``capped_visitors`` counts the totals
        cut. Raises ``ValueError`` when the stored values overflow the
        database's arithmetic (PostgreSQL refuses a square above 1e308).
        """
        per_visitor = (
            sa.select(
                CONVERSION.c.goal,
                CONVERSION.c.variant,
                CONVERSION.c.visitor,
                sa.func.coalesce(sa.func.sum(CONVERSION.c.value), 0.0).label("total"),
            )
            .where(CONVERSION.c.experiment == experiment)
            .group_by(CONVERSION.c.goal, CONVERSION.c.variant, CONVERSION.c.visitor)
            .subquery()
        )
        total = per_visitor.c.total
        over_cap = [
            (sa.and_(per_visitor.c.goal == goal, total > cap), sa.literal(cap, sa.Float))
            for goal, cap in (caps or {}).items()
        ]
        capped = sa.select(
            per_visitor.c.goal,
            per_visitor.c.variant,
            (sa.case(*over_cap, else_=total) if over_cap else total).label("total"),
            (
                sa.case(*((over, 1) for over, _ in over_cap), else_=0)
                if over_cap
                else sa.literal(0)
            ).label("capped"),
        ).subquery()
        query = sa.select(
            capped.c.goal,
            capped.c.variant,
            sa.func.count().label("conversions"),
            sa.func.sum(capped.c.total).label("value_sum"),
            sa.func.sum(capped.c.total * capped.c.total).label("value_sum_squares"),
            sa.func.sum(capped.c.total * capped.c.total * capped.c.total).label("value_sum_cubes"),
            sa.func.sum(capped.c.capped).label("capped_visitors"),
        ).group_by(capped.c.goal, capped.c.variant)
        try:
            with self._reading() as conn:
                return [dict(row._mapping) for row in conn.execute(query).all()]
        except sa.exc.DataError as error:
            raise ValueError(
                f"value_sum, value_sum_squares or value_sum_cubes of experiment {experiment!r} "
                f"overflows the database's arithmetic: {error.orig}"
            ) from error


@contextmanager
def _as_database_error() -> Iterator[None]:
    """Raise the hot path's ``sqlite3`` errors as SQLAlchemy's, which the web
    layer answers with 503 like any other database failure."""
    try:
        yield
    except sqlite3.Error as error:
        raise sa.exc.OperationalError(None, None, error) from error


def _conversion_columns() -> list[sa.Column[Any]]:
    names = ("experiment", "variant", "visitor", "goal", "kind", "value", "event_id", "created_at")
    return [CONVERSION.c[name] for name in names]


def _count(result: sa.CursorResult[Any]) -> int:
    return len(result.all())


def normalise_url(url: str) -> str:
    """Send ``postgresql://`` and ``postgres://`` URLs to the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return create_sqlite_engine(url)
    return sa.create_engine(
        _with_server_timeouts(url),
        pool_pre_ping=True,  # a connection dropped by a database restart is replaced
        pool_size=4,
        max_overflow=4,
        pool_timeout=2,  # every connection busy: a 503 rather than a long wait
        connect_args={
            # An outage answers 503 within 3 s: a refused connection fails at
            # once, one that hangs after 2 s (libpq's minimum). Keepalives and
            # the user timeout find a silently lost peer (a network partition).
            "connect_timeout": 2,
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 1,
            "keepalives_count": 2,
            "tcp_user_timeout": 2500,
        },
    )


# Requests never wait long for a lock (another transaction's, a migration's),
# and a runaway query stops before gunicorn's 30 s worker timeout.
POSTGRES_TIMEOUTS = "-c lock_timeout=2000 -c statement_timeout=25000"


def _with_server_timeouts(url: str) -> sa.engine.URL:
    """``url`` with :data:`POSTGRES_TIMEOUTS` added to the ``options`` it may carry."""
    parsed = sa.engine.make_url(url)
    given = parsed.query.get("options", "")
    options = " ".join(
        filter(None, [*([given] if isinstance(given, str) else given), POSTGRES_TIMEOUTS])
    )
    return parsed.update_query_dict({"options": options})
