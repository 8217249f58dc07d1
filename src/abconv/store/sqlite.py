"""SQLite specifics of the store: pragmas, the writers' file lock, the hot path.

Only :mod:`abconv.store` imports this. The hot path runs the statements
of ``/api/assign`` on plain ``sqlite3`` connections (one per thread), since
SQLAlchemy's execution machinery costs ten times what SQLite itself does for
them. Both paths read and write the same rows in the same formats.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from contextlib import AbstractContextManager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from abconv.store.tables import CONVERSION

SELECT_EXPOSURES = "SELECT experiment, variant, created_at, phase FROM exposure WHERE visitor = ?"
# The rollup of a new exposure (see abconv.store.rollups), in the same transaction.
COUNT_EXPOSURES = (
    "INSERT INTO rollup_exposure (experiment, variant, phase, day, visitors) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (experiment, variant, phase, day) "
    "DO UPDATE SET visitors = visitors + excluded.visitors"
)

# The earlier rows of a conversion's event id (the writes: abconv.store.sqlite_writes).
CONVERSION_COLUMNS = (
    "experiment", "variant", "visitor", "goal", "kind", "value", "event_id", "created_at", "phase",
)  # fmt: skip
SELECT_EVENT = (
    f"SELECT {', '.join(CONVERSION_COLUMNS)} FROM conversion WHERE visitor = ? AND event_id = ?"
)
assert set(CONVERSION_COLUMNS) < {c.name for c in CONVERSION.columns}

# Seconds a statement waits for a lock held outside abconv (a backup, an
# `sqlite3` shell in a transaction) before failing with 503: abconv's own
# writers queue on the file lock and never wait here.
BUSY_TIMEOUT = 2.0

# Prepared statements kept by each hot-path connection (sqlite3's default: 128):
# room for the multi-row statements of every group size (abconv.store.sqlite_writes)
# beside the rest, since preparing a statement anew costs more than running it.
STATEMENT_CACHE = 512


def stored_time(at: datetime) -> str:
    """``at`` as SQLAlchemy stores a DateTime in SQLite, so that either path reads
    the other's rows: "YYYY-MM-DD HH:MM:SS.ffffff", the year on four digits
    (``strftime("%Y")`` would write year 1 as "1")."""
    return at.isoformat(sep=" ", timespec="microseconds")


def apply_pragmas(dbapi_connection: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a commit survives a killed process; only an OS crash or
    # power loss can drop the last transactions.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
    cursor.close()


def database_path(url: str) -> str | None:
    """The file of a SQLite URL, or None for an in-memory database."""
    database = sa.engine.make_url(url).database
    return None if database in (None, "", ":memory:") else database


def create_sqlite_engine(url: str) -> Engine:
    path = database_path(url)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT})
    sa.event.listen(engine, "connect", lambda connection, _record: apply_pragmas(connection))
    sa.event.listen(engine, "handle_error", _reopen_if_read_only)
    return engine


def is_read_only(error: BaseException) -> bool:
    """Whether SQLite refused a write because its file cannot be written."""
    return isinstance(error, sqlite3.Error) and "READONLY" in str(
        getattr(error, "sqlite_errorname", "")
    )


def _reopen_if_read_only(context: sa.engine.ExceptionContext) -> None:
    """A connection opened while the file could not be written stays read-only
    after the file can be written again: drop it, so the next one can write."""
    if is_read_only(context.original_exception):
        context.is_disconnect = True


def is_writable(database: str) -> bool:
    """Whether this process may write the database file (and its WAL, if any)."""
    wal = f"{database}-wal"
    paths = [database, wal] if os.path.exists(wal) else [database]
    return all(os.access(path, os.W_OK) for path in paths)


class SqliteWriterLock:
    """An exclusive ``flock`` on ``<database>.lock``, shared by all processes,
    plus a thread lock because ``flock`` does not exclude threads of one process.

    Writers queue here rather than in SQLite's busy handler, which sleeps a
    millisecond or more per collision: a waiter wakes the moment the holder
    is done, and lock contention never fails a request.
    """

    def __init__(self, database: str | None) -> None:
        self.path = None if database is None else Path(f"{database}.lock")
        self._threads = threading.Lock()
        self._file: Any = None
        self._pid = 0

    def __enter__(self) -> None:
        self._threads.acquire()
        if self.path is None:
            return
        try:
            if self._pid != os.getpid():
                # A forked child must not share its parent's open file: flock
                # locks belong to the open file, so both would hold the lock.
                self._file = open(self.path, "a+b")  # noqa: SIM115 - held for the process's life
                self._pid = os.getpid()
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            if self._file is not None:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def close(self) -> None:
        with self._threads:
            if self._file is not None and self._pid == os.getpid():
                self._file.close()
            self._file, self._pid = None, 0


class SqliteHotPath:
    """The statements of ``/api/assign``, ``/api/convert`` and ``/api/events`` on
    plain ``sqlite3`` connections."""

    def __init__(self, database: str, writer_lock: SqliteWriterLock) -> None:
        self.database = database
        self.writer_lock = writer_lock
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []

    def exposures_of(self, visitor: str) -> list[tuple[str, str, datetime, int]]:
        try:
            rows = self._connection().execute(SELECT_EXPOSURES, (visitor,)).fetchall()
        except sqlite3.Error as error:
            self._forget_if_read_only(error)
            raise
        return [
            (experiment, variant, datetime.fromisoformat(at), phase)
            for experiment, variant, at, phase in rows
        ]

    def read(self, statement: str, parameters: tuple[Any, ...]) -> list[Any]:
        """The rows of one query, outside any transaction."""
        try:
            return self._connection().execute(statement, parameters).fetchall()
        except sqlite3.Error as error:
            self._forget_if_read_only(error)
            raise

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction on this thread's connection, committed on leaving
        the block, writers of every process queued on the file lock."""
        return _Transaction(self)

    def close(self) -> None:
        for connection in self._opened:
            connection.close()
        self._opened.clear()
        self._local = threading.local()

    def _forget_if_read_only(self, error: BaseException) -> None:
        """See :func:`_reopen_if_read_only`: this thread's next call opens anew."""
        if is_read_only(error) and getattr(self._local, "pid", None) == os.getpid():
            connection = self._local.connection
            self._opened.remove(connection)
            connection.close()
            self._local.pid = None

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():  # new thread, or a forked child
            connection = sqlite3.connect(
                self.database,
                timeout=BUSY_TIMEOUT,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=STATEMENT_CACHE,
            )
            try:
                apply_pragmas(connection)
            except BaseException:
                connection.close()
                raise
            local.connection, local.pid = connection, os.getpid()
            self._opened.append(connection)
        return local.connection  # type: ignore[no-any-return]


class _Transaction:
    """:meth:`SqliteHotPath.transaction`, a class rather than a generator: it runs
    for every write, and the writers' lock is held from enter to exit."""

    __slots__ = ("hot", "connection")

    def __init__(self, hot: SqliteHotPath) -> None:
        self.hot = hot

    def __enter__(self) -> sqlite3.Connection:
        hot = self.hot
        hot.writer_lock.__enter__()
        try:
            connection = self.connection = hot._connection()
            connection.execute("BEGIN IMMEDIATE")
        except BaseException as error:
            hot.writer_lock.__exit__()
            hot._forget_if_read_only(error)
            raise
        return connection

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        hot, connection = self.hot, self.connection
        try:
            if kind is None:
                try:
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:  # a failed COMMIT leaves it open
                        with suppress(sqlite3.Error):
                            connection.execute("ROLLBACK")
                    raise
            elif connection.in_transaction:  # SQLite may have rolled back already
                connection.execute("ROLLBACK")
        except sqlite3.Error as failed:
            hot._forget_if_read_only(failed)
            raise
        finally:
            hot.writer_lock.__exit__()
        if error is not None:
            hot._forget_if_read_only(error)
