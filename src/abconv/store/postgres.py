"""PostgreSQL's hot path: the statements of ``/api/assign``, ``/api/convert`` and
``/api/events``, on the libpq connection under a pooled psycopg connection.

Only :mod:`abconv.store` imports this. SQLAlchemy's execution machinery and
psycopg's cursors and array dumping cost several times what these few
statements cost PostgreSQL. Here each statement is prepared once per
connection; rows travel as one JSON parameter (``json_populate_recordset``
types them by the table's own columns; ``ensure_ascii`` makes it the same
bytes in any client encoding); a transaction's statements go in libpq's
pipeline mode, one round trip for all that need no earlier answer, and
PostgreSQL commits them at the pipeline's Sync. The connection still comes
from SQLAlchemy's pool (its idle ping included), and psycopg's errors are
raised as SQLAlchemy's, which the web layer answers with 503 like any other
database failure.
"""

from __future__ import annotations

import hashlib
import json
import math
import select
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import pq
from psycopg.adapt import Transformer
from sqlalchemy.engine import Engine

from abconv.store.tables import (
    CONVERSION_KEY,
    GOAL_SUMS,
    ROLLUP_GOAL,
    ROLLUP_GOAL_DAY,
    ROLLUP_PAIR,
    ROLLUP_VISITOR_GOAL,
)


class Statement:
    """A statement of the hot path (``$n`` parameters), prepared on each
    connection the first time it runs there."""

    __slots__ = ("name", "text")

    def __init__(self, text: str) -> None:
        self.text = text.encode()
        self.name = b"abconv_" + hashlib.blake2b(self.text, digest_size=8).hexdigest().encode()


EXPOSURE_COLUMNS = ("experiment", "visitor", "variant", "created_at", "phase")
CONVERSION_COLUMNS = (
    "experiment", "variant", "visitor", "goal", "kind", "value", "event_id", "created_at", "phase",
)  # fmt: skip


def _elements(parameter: str) -> str:
    """An array of the distinct texts of the JSON array ``parameter``'s elements."""
    return f"ARRAY(SELECT DISTINCT e FROM json_array_elements_text({parameter}::json) AS e)"


def _each(keys: str, table: str, columns: str, match: str, locking: str = "OFFSET 0") -> str:
    """``columns`` of the rows of ``table`` that ``match`` each of ``keys`` (a
    subquery of distinct keys, named k), found by an index whatever the
    planner knows of the tables: a LATERAL subquery it may not flatten (OFFSET
    0, or a locking clause) is searched once per key. A join could be planned
    as a scan of the whole table, and ``= ANY`` over a scan compares every
    row with every key."""
    return f"{keys} k, LATERAL (SELECT {columns} FROM {table} WHERE {match} {locking}) x"


SELECT_EXPOSURES = Statement(
    "SELECT experiment, variant, created_at, phase FROM exposure WHERE visitor = $1"
)
# Visitors as a JSON array of strings (a batch's: many, so a join).
SELECT_EXPOSURES_OF_MANY = Statement(
    "SELECT x.* FROM "
    + _each(
        "(SELECT DISTINCT visitor FROM json_array_elements_text($1::json) AS visitor)",
        "exposure",
        "visitor, experiment, variant, created_at, phase",
        "exposure.visitor = k.visitor",
    )
)

# New exposures (a JSON array of rows in key order) and the rollup of their
# days in one statement, answering with the visitor and experiment of each
# row stored. {seen}: and (flagged false) every row its visitors had before,
# as the statement's snapshot shows them (not one that a concurrent
# transaction commits while this one waits for it).
_INSERT_EXPOSURES = (
    "WITH asked AS ("
    f"SELECT {', '.join(EXPOSURE_COLUMNS)} "
    "FROM json_populate_recordset(NULL::exposure, $1::json)), "
    "new AS ("
    f"INSERT INTO exposure ({', '.join(EXPOSURE_COLUMNS)}) SELECT * FROM asked "
    "ON CONFLICT (visitor, experiment) DO NOTHING "
    "RETURNING experiment, visitor, variant, created_at, phase), "
    "counted AS ("
    "INSERT INTO rollup_exposure (experiment, variant, phase, day, visitors) "
    "SELECT experiment, variant, phase, CAST(created_at AS date), count(*) FROM new "
    "GROUP BY experiment, variant, phase, CAST(created_at AS date) "
    "ORDER BY experiment, variant, phase, CAST(created_at AS date) "
    "ON CONFLICT (experiment, variant, phase, day) "
    "DO UPDATE SET visitors = rollup_exposure.visitors + excluded.visitors) "
)
INSERT_EXPOSURES = Statement(_INSERT_EXPOSURES + "SELECT visitor, experiment FROM new")
INSERT_EXPOSURES_SEEN = Statement(
    _INSERT_EXPOSURES
    + "SELECT true, visitor, experiment, variant, created_at, phase FROM new UNION ALL "
    "SELECT false, x.* FROM "
    + _each(
        "(SELECT DISTINCT visitor FROM asked)",
        "exposure",
        "visitor, experiment, variant, created_at, phase",
        "exposure.visitor = k.visitor",
    )
)

# A visitor's conversions with one event id (an earlier use of it).
SELECT_EVENT = Statement(
    f"SELECT {', '.join(CONVERSION_COLUMNS)} FROM conversion WHERE visitor = $1 AND event_id = $2"
)
# New conversions and what their rollups need first, in one statement:
# - 0: the rows already stored of the (visitor, event_id) pairs in $1
#   (a JSON array of pairs), whose new rows are not written (an event seen
#   before writes nothing);
# - 1: the (visitor, event_id, experiment) of each row of $2 (a JSON
#   array of rows) stored now;
# - 2: the recorded caps of the experiments in $3 (a JSON array).
INSERT_CONVERSIONS = Statement(
    "WITH earlier AS (SELECT x.* FROM "
    + _each(
        "(SELECT DISTINCT e ->> 0 AS visitor, e ->> 1 AS event_id "
        "FROM json_array_elements($1::json) AS e)",
        "conversion",
        ", ".join(CONVERSION_COLUMNS),
        "conversion.visitor = k.visitor AND conversion.event_id = k.event_id",
    )
    + "), "
    "new AS ("
    f"INSERT INTO conversion ({', '.join(CONVERSION_COLUMNS)}) "
    f"SELECT {', '.join('r.' + name for name in CONVERSION_COLUMNS)} "
    "FROM json_populate_recordset(NULL::conversion, $2::json) r "
    "WHERE NOT EXISTS (SELECT FROM earlier e "
    "WHERE e.visitor = r.visitor AND e.event_id = r.event_id) "
    f"ON CONFLICT ({', '.join(CONVERSION_KEY)}) DO NOTHING "
    "RETURNING visitor, event_id, experiment) "
    f"SELECT 0, {', '.join(CONVERSION_COLUMNS)} FROM earlier UNION ALL "
    "SELECT 1, experiment, NULL, visitor, NULL, NULL, NULL, event_id, NULL, NULL FROM new "
    "UNION ALL SELECT 2, experiment, NULL, NULL, goal, NULL, cap, NULL, NULL, NULL "
    f"FROM rollup_cap WHERE experiment = ANY ({_elements('$3')})"
)

# A visitor's rollup state changes under the lock on their exposure row,
# rows locked in key order (see abconv.store.rollups). Pairs: JSON [[e, v], ...].
# Pairs: JSON [[experiment, visitor], ...], in key order.
_PAIRS = (
    "(SELECT DISTINCT e ->> 0 AS experiment, e ->> 1 AS visitor "
    "FROM json_array_elements($1::json) AS e ORDER BY experiment, visitor)"
)
_MATCH = "{table}.experiment = k.experiment AND {table}.visitor = k.visitor"
# Locked one pair after the other, in key order (the order of the pairs).
LOCK_VISITORS = Statement(
    "SELECT x.id FROM "
    + _each(_PAIRS, "exposure", "id", _MATCH.format(table="exposure"), "FOR UPDATE")
)
SELECT_STATES = Statement(
    "SELECT x.* FROM "
    + _each(
        _PAIRS,
        "rollup_visitor_goal",
        "experiment, visitor, goal, kind, first_at, last_at, total, events",
        _MATCH.format(table="rollup_visitor_goal"),
    )
)


def _primary_key(table: sa.Table) -> list[str]:
    return [column.name for column in table.primary_key.columns]


def _upsert(table: sa.Table, set_: dict[str, str]) -> str:
    """``table``'s rows from a JSON array (the parameter's member named for the
    table), upserted in the order given."""
    names = ", ".join(f'"{column.name}"' for column in table.columns)
    updates = ", ".join(f'"{name}" = {value}' for name, value in set_.items())
    return (
        f"INSERT INTO {table.name} ({names}) SELECT {names} FROM "
        f"json_populate_recordset(NULL::{table.name}, $1::json -> '{table.name}') "
        f"ON CONFLICT ({', '.join(_primary_key(table))}) DO UPDATE SET {updates}"
    )


def _adding(table: sa.Table, *counters: str) -> dict[str, str]:
    return {n: f'{table.name}."{n}" + excluded."{n}"' for n in counters}


# What the upsert of each rollup table a conversion changes sets on a conflict
# (here and in abconv.store.rollups' SQLAlchemy statement): a visitor's state
# is replaced, counters are added to.
UPSERT_SETS: tuple[tuple[sa.Table, dict[str, str]], ...] = (
    (ROLLUP_VISITOR_GOAL,
     {c.name: f'excluded."{c.name}"' for c in ROLLUP_VISITOR_GOAL.columns if not c.primary_key}),
    (ROLLUP_GOAL, {
        **_adding(ROLLUP_GOAL, *GOAL_SUMS),
        "kind": "greatest(rollup_goal.kind, excluded.kind)",
    }),
    (ROLLUP_GOAL_DAY, _adding(ROLLUP_GOAL_DAY, "converting", "events")),
    (ROLLUP_PAIR, _adding(ROLLUP_PAIR, "both", "then_after_first")),
)  # fmt: skip

# The rollup rows a batch of conversions changes (rollups.conversion_changes),
# all four tables in one statement; a table without rows changes nothing.
UPSERT_ROLLUPS = Statement(
    "WITH "
    + ", ".join(f"{table.name} AS ({_upsert(table, set_)})" for table, set_ in UPSERT_SETS)
    + " SELECT 1"
)


def _iso(value: date | datetime) -> str:
    """Dates and times, the only values besides JSON's own that rows hold."""
    return value.isoformat()


_encode = json.JSONEncoder(default=_iso, allow_nan=False, separators=(",", ":")).encode


def as_json(value: Any) -> str:
    """``value`` as the JSON PostgreSQL reads back exactly: floats in Python's
    shortest round-trip form, times in ISO format; an infinite float (a sum
    only values stored around the API can overflow) as the string PostgreSQL's
    ``float8`` input reads as one."""
    try:
        return _encode(value)
    except ValueError:  # a non-finite float: rare, so checked only when met
        return _encode(_finite(value))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


Rows = list[tuple[Any, ...]]


class Pipeline:
    """Statements sent on a connection's libpq handle in pipeline mode, without
    psycopg's cursors (whose Python layers cost several times more than these
    statements do): each is sent at once, and :meth:`rows` reads the answers
    of all those sent so far in one round trip.

    PostgreSQL runs the statements between two Syncs as one transaction, and
    commits it at the Sync. Here the Sync is sent by :meth:`commit` (and, in
    ``autocommit``, by :meth:`rows` too); reading answers sends a flush request,
    which keeps the transaction open."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        prepared: set[bytes],
        autocommit: bool,
        trace: Callable[[str], None] | None,
    ) -> None:
        self.conn = conn
        self.pgconn = conn.pgconn
        self.prepared = prepared
        self.autocommit = autocommit
        self.trace = trace
        self.transformer = Transformer(conn)
        self.encoding = conn.info.encoding
        self._unread: list[int | None] = []  # per command sent: its handle, None for a Parse
        self._answers: dict[int, Rows] = {}
        self._sent = 0
        self._unsynced = False
        self.pgconn.enter_pipeline_mode()

    def send(self, statement: Statement, *parameters: str | None) -> int:
        """Send ``statement``; the handle to ask :meth:`rows` for its answer."""
        pgconn = self.pgconn
        if self.trace is not None:
            self.trace(statement.text.decode())
        if statement.name not in self.prepared:
            pgconn.send_prepare(statement.name, statement.text)
            self.prepared.add(statement.name)  # a failure closes the connection
            self._unread.append(None)
        pgconn.send_query_prepared(
            statement.name, [None if p is None else p.encode(self.encoding) for p in parameters]
        )
        self._sent += 1
        self._unread.append(self._sent)
        self._unsynced = True
        return self._sent

    def rows(self, handle: int) -> Rows:
        """The rows that the statement ``handle`` answered (none for a write
        without RETURNING)."""
        if handle not in self._answers:
            if self.autocommit:
                self._sync()
            else:
                self.pgconn.send_flush_request()
                self._flush()
                self._read()
        return self._answers.pop(handle)

    def commit(self) -> None:
        """Sync: commit what was sent since the last Sync, and read the answers."""
        if self._unsynced:
            self._sync()
        self.pgconn.exit_pipeline_mode()

    def _sync(self) -> None:
        self.pgconn.pipeline_sync()
        self._flush()
        self._read()
        result = self._next()
        if result.status != pq.ExecStatus.PIPELINE_SYNC:
            raise psycopg.OperationalError(f"expected the end of a pipeline, got {result.status}")
        self._unsynced = False

    def _flush(self) -> None:
        pgconn = self.pgconn
        while pgconn.flush():  # the server may be waiting for us to read
            _wait(pgconn.socket, select.POLLIN | select.POLLOUT)
            pgconn.consume_input()

    def _read(self) -> None:
        """The answers of every command sent: each its results, then None."""
        for handle in self._unread:
            answer: Rows = []
            while (result := self._next()) is not None:
                status = result.status
                if status == pq.ExecStatus.TUPLES_OK and handle is not None:
                    self.transformer.set_pgresult(result)
                    answer = self.transformer.load_rows(0, result.ntuples, tuple)
                elif status == pq.ExecStatus.FATAL_ERROR:
                    raise psycopg.errors.error_from_result(result, self.encoding)
                elif status == pq.ExecStatus.PIPELINE_ABORTED:
                    raise psycopg.errors.PipelineAborted("pipeline aborted")
            if handle is not None:
                self._answers[handle] = answer
        self._unread = []

    def _next(self) -> Any:
        pgconn = self.pgconn
        while pgconn.is_busy():
            _wait(pgconn.socket, select.POLLIN)
            pgconn.consume_input()
        return pgconn.get_result()


def _wait(socket: int, events: int) -> None:
    poller = select.poll()
    poller.register(socket, events)
    poller.poll()


class PostgresHotPath:
    """Pooled psycopg connections, for the statements above."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Told the text of each statement run here, when set (tests count them).
        self.trace: Callable[[str], None] | None = None

    @contextmanager
    def pipeline(self, autocommit: bool = False) -> Iterator[Pipeline]:
        """A :class:`Pipeline` on a pooled connection, committed on leaving the
        block. An exception in the block closes the connection instead of
        sending the Sync that would commit what ran: the server rolls it back.
        psycopg's errors come out as SQLAlchemy's, which the web layer answers
        with 503 like any other database failure."""
        try:
            pooled = self.engine.raw_connection()
        except psycopg.Error as error:
            raise _translated(error, False) from error
        conn: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
        try:
            known = pooled.info.get(_PREPARED)
            if known is None or known[0] is not conn:  # the pool reconnected
                known = pooled.info[_PREPARED] = (conn, set())
            pipeline = Pipeline(conn, known[1], autocommit, self.trace)
            yield pipeline
            pipeline.commit()
        except BaseException as error:
            lost = conn.closed or conn.broken  # before the close that follows
            conn.close()
            pooled.invalidate(error if isinstance(error, Exception) else None)
            if isinstance(error, psycopg.Error):
                raise _translated(error, lost) from error
            raise
        pooled.close()

    def rows(self, statement: Statement, *parameters: str | None) -> Rows:
        """The rows of one query, outside any transaction."""
        with self.pipeline(autocommit=True) as pipeline:
            return pipeline.rows(pipeline.send(statement, *parameters))


def _translated(error: psycopg.Error, lost: bool) -> sa.exc.DBAPIError:
    """``error`` as the SQLAlchemy exception its class maps to (OperationalError,
    IntegrityError, ...), as SQLAlchemy would raise it; ``lost``: the
    connection was found closed or broken."""
    return sa.exc.DBAPIError.instance(  # type: ignore[return-value]
        None, None, error, psycopg.Error, connection_invalidated=lost
    )


# In the pool's record of a connection: (the connection, names it has prepared).
_PREPARED = "abconv_prepared"
