"""A database's engine and the life of its connections and transactions.

SQLite (WAL) by default, PostgreSQL when the URL says so. A write returns
only after its transaction commits, so a 2xx reply means the event is
stored. The schema is migrated on first use (:mod:`abconv.store.schema`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from abconv.store import schema
from abconv.store.outage import DatabaseHanging, HangGuard
from abconv.store.postgres import PostgresHotPath
from abconv.store.sqlite import (
    SqliteHotPath,
    SqliteWriterLock,
    create_sqlite_engine,
    database_path,
    is_writable,
)

# The PostgreSQL advisory lock key that serialises migrations.
MIGRATION_LOCK = 7411


def utcnow() -> datetime:
    """Naive UTC, the form every timestamp is stored in."""
    return datetime.now(UTC).replace(tzinfo=None)


class Database:
    """One database: its engine, its locks, its transactions."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = _create_engine(self.url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        # The dialect's INSERT, which has ON CONFLICT (both dialects spell it alike).
        self.insert: Callable[[sa.Table], Any] = (
            sqlite.insert if self.is_sqlite else postgresql.insert
        )
        self.writer_lock: SqliteWriterLock | None = None
        self.hot: SqliteHotPath | None = None
        # PostgreSQL's hot path: the statements of the public write routes on
        # the pool's psycopg connections (see abconv.store.postgres).
        self.postgres = None if self.is_sqlite else PostgresHotPath(self.engine)
        if self.is_sqlite:
            database = database_path(self.url)
            self.writer_lock = SqliteWriterLock(database)
            if database is not None:  # in-memory databases cannot be shared
                self.hot = SqliteHotPath(database, self.writer_lock)
        # One statement that needs no transaction of its own (a read of one
        # visitor's rows; PostgreSQL's exposure insert with its rollup): no
        # BEGIN, no COMMIT or ROLLBACK round trip.
        self.autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.schema_ready = False
        self.hang_guard = HangGuard(self._probe)

    def upgrade_schema(self) -> schema.Upgrade:
        """Migrate the schema to the newest revision (see :mod:`abconv.store.schema`).

        Safe when several workers or hosts start at once: one migrates while
        the others wait on the lock, then find nothing left to do.
        """
        with self.migrating() as conn:
            done = schema.upgrade(conn)
        self.schema_ready = True
        return done

    def ensure_schema(self) -> None:
        """Migrate unless done: a server that started while the database was
        down gets its tables on the first use after it is back."""
        if not self.schema_ready:
            self.upgrade_schema()

    @contextmanager
    def migrating(self) -> Iterator[Connection]:
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
        assert self.writer_lock is not None  # every SQLite store has one
        with self.writer_lock, self.engine.connect() as conn:
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
        if self.hot is not None:
            self.hot.close()
        if self.writer_lock is not None:
            self.writer_lock.close()

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
        return self.hot is None or is_writable(self.hot.database)

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction, committed on leaving the block.

        On SQLite the writers of all processes queue on a file lock first:
        a waiter wakes the moment the holder is done, instead of sleeping
        in SQLite's busy handler, and lock contention never fails a request.
        """
        with self.using():
            if self.writer_lock is None:
                with self.engine.begin() as conn:
                    yield conn
                return
            with self.writer_lock, self.engine.begin() as conn:
                yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self.using(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection for one statement, committed as it runs (see
        :attr:`autocommit_engine`): never for several statements that must
        see one snapshot or commit together."""
        with self.using(), self.autocommit_engine.connect() as conn:
            yield conn

    @contextmanager
    def using(self) -> Iterator[None]:
        """Around every use of the database but the health check: fail at once
        while it hangs, and create or migrate the tables if not done yet."""
        with self.hang_guard.watch():
            self.ensure_schema()
            try:
                yield
            except sa.exc.DBAPIError as error:
                if error.connection_invalidated and not self.is_sqlite:
                    # A pooled connection died in use, as a pre-ping at checkout
                    # would have found: try a new one before answering, so that
                    # a database that hangs is known to (the probe waits for
                    # the connect timeout, and the guard trips) and one that
                    # restarted serves the next request.
                    with suppress(Exception):
                        self._probe()
                raise


@contextmanager
def as_database_error() -> Iterator[None]:
    """Raise the hot path's ``sqlite3`` errors as SQLAlchemy's, which the web
    layer answers with 503 like any other database failure."""
    try:
        yield
    except sqlite3.Error as error:
        raise sa.exc.OperationalError(None, None, error) from error


def normalise_url(url: str) -> str:
    """Send ``postgresql://`` and ``postgres://`` URLs to the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return create_sqlite_engine(url)
    engine = sa.create_engine(
        _with_server_timeouts(url),
        # Kept open once opened (opened only when needed): at least a worker's
        # threads (`abconv serve --threads`, 8), else under load the overflow is
        # closed and reopened per request, a new PostgreSQL backend each time
        # (681 -> 996 new visitors/s measured when 4 became 8).
        pool_size=16,
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
            # psycopg never prepares statements itself: it deallocates all of a
            # session's prepared statements (the hot path's too) after a
            # ROLLBACK or a DROP on a connection where it prepared some.
            "prepare_threshold": None,
        },
    )
    sa.event.listen(engine, "checkin", _idle_from)
    sa.event.listen(
        engine, "checkout", lambda dbapi, record, _: _ping_if_idle(engine.dialect, dbapi, record)
    )
    return engine


# A pooled connection idle this long is checked with a round trip before use.
IDLE_PING_SECONDS = 1.0


def _idle_from(dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dialect: sa.Dialect, dbapi_connection: Any, record: Any) -> None:
    """SQLAlchemy's ``pool_pre_ping``, for connections idle over
    :data:`IDLE_PING_SECONDS` only: one dropped by a database restart while
    the server was quiet is replaced before a request uses it, while under
    load (connections back in the pool within milliseconds) no request pays
    the ``SELECT 1`` round trip. A connection that dies in use fails its
    request (503) and SQLAlchemy drops the pool's older connections."""
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
        return
    try:
        dialect.do_ping(dbapi_connection)
    except Exception as error:
        raise sa.exc.DisconnectionError(str(error)) from error


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
