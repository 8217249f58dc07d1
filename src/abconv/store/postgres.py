"""PostgreSQL's hot path: the statements of ``/api/assign``, ``/api/convert`` and
``/api/events`` run on the psycopg connection under SQLAlchemy's pool.

Only :mod:`abconv.store` imports this. SQLAlchemy's execution machinery, and
psycopg's dumping of one array per column, cost several times what these
few statements cost PostgreSQL. Here each statement is prepared on first
use, rows travel as one JSON parameter (``json_populate_recordset`` types
them by the table's own columns), and a transaction's statements are sent
in pipeline mode: one round trip for those that need no earlier answer.
The connection still comes from the pool (its idle ping included), and
psycopg's errors are raised as SQLAlchemy's, which the web layer answers
with 503 like any other database failure.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import pq
from sqlalchemy.engine import Engine

from abconv.store.tables import (
    CONVERSION_KEY,
    ROLLUP_GOAL,
    ROLLUP_GOAL_DAY,
    ROLLUP_PAIR,
    ROLLUP_VISITOR_GOAL,
)

EXPOSURE_COLUMNS = ("experiment", "visitor", "variant", "created_at", "phase")
CONVERSION_COLUMNS = (
    "experiment", "variant", "visitor", "goal", "kind", "value", "event_id", "created_at", "phase",
)  # fmt: skip

SELECT_EXPOSURES = (
    "SELECT experiment, variant, created_at, phase FROM exposure WHERE visitor = %s"
)
# Visitors as a JSON array of strings.
SELECT_EXPOSURES_OF_MANY = (
    "SELECT visitor, experiment, variant, created_at, phase FROM exposure "
    "WHERE visitor IN (SELECT json_array_elements_text(%s::json))"
)

# New exposures (a JSON array of rows in key order) and the rollup of their
# days in one statement, answering with the visitor and experiment of each
# row stored. {seen}: and (flagged false) every row its visitors had before,
# as the statement's snapshot shows them (not one that a concurrent
# transaction commits while this one waits for it).
_INSERT_EXPOSURES = (
    "WITH asked AS ("
    f"SELECT {', '.join(EXPOSURE_COLUMNS)} FROM json_populate_recordset(NULL::exposure, %s::json)), "
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
INSERT_EXPOSURES = _INSERT_EXPOSURES + "SELECT visitor, experiment FROM new"
INSERT_EXPOSURES_SEEN = _INSERT_EXPOSURES + (
    "SELECT true, visitor, experiment, variant, created_at, phase FROM new UNION ALL "
    "SELECT false, visitor, experiment, variant, created_at, phase FROM exposure "
    "WHERE visitor IN (SELECT visitor FROM asked)"
)

# A visitor's conversions with one event id (an earlier use of it).
SELECT_EVENT = (
    f"SELECT {', '.join(CONVERSION_COLUMNS)} FROM conversion WHERE visitor = %s AND event_id = %s"
)
# The same for several (visitor, event_id) pairs, given as a JSON array of pairs.
SELECT_EVENTS = (
    f"SELECT {', '.join('c.' + name for name in CONVERSION_COLUMNS)} FROM conversion c "
    "JOIN (SELECT DISTINCT e ->> 0 AS visitor, e ->> 1 AS event_id "
    "FROM json_array_elements(%s::json) AS e) k "
    "ON c.visitor = k.visitor AND c.event_id = k.event_id"
)
# New conversions (a JSON array of rows); the keys of those stored.
_INSERT_CONVERSIONS = (
    f"INSERT INTO conversion ({', '.join(CONVERSION_COLUMNS)}) "
    f"SELECT {', '.join('r.' + name for name in CONVERSION_COLUMNS)} "
    "FROM json_populate_recordset(NULL::conversion, %s::json) r {where}"
    f"ON CONFLICT ({', '.join(CONVERSION_KEY)}) DO NOTHING RETURNING visitor, event_id, experiment"
)
INSERT_CONVERSIONS = _INSERT_CONVERSIONS.format(where="")
# The same, but none of a (visitor, event_id) that has rows already: an event
# seen before writes nothing.
INSERT_NEW_EVENTS = _INSERT_CONVERSIONS.format(
    where="WHERE r.event_id IS NULL OR NOT EXISTS (SELECT FROM conversion c "
    "WHERE c.visitor = r.visitor AND c.event_id = r.event_id) "
)

# A visitor's rollup state changes under the lock on their exposure row,
# rows locked in key order (see abconv.store.rollups). Pairs: JSON [[e, v], ...].
_PAIRS = (
    "(SELECT e ->> 0 AS experiment, e ->> 1 AS visitor FROM json_array_elements(%s::json) AS e)"
)
LOCK_VISITORS = (
    f"SELECT x.id FROM exposure x JOIN {_PAIRS} p "
    "ON x.experiment = p.experiment AND x.visitor = p.visitor "
    "ORDER BY x.experiment, x.visitor FOR UPDATE OF x"
)
SELECT_STATES = (
    "SELECT s.experiment, s.visitor, s.goal, s.kind, s.first_at, s.last_at, s.total, s.events "
    f"FROM rollup_visitor_goal s JOIN {_PAIRS} p "
    "ON s.experiment = p.experiment AND s.visitor = p.visitor"
)
SELECT_CAPS = (
    "SELECT experiment, goal, cap FROM rollup_cap "
    "WHERE experiment IN (SELECT json_array_elements_text(%s::json))"
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
        f"json_populate_recordset(NULL::{table.name}, %(changes)s::json -> '{table.name}') "
        f"ON CONFLICT ({', '.join(_primary_key(table))}) DO UPDATE SET {updates}"
    )


def _adding(table: sa.Table, *counters: str) -> dict[str, str]:
    return {n: f'{table.name}."{n}" + excluded."{n}"' for n in counters}


_GOAL_SUMS = (
    "converting", "events", "value_sum", "value_sum_squares", "value_sum_cubes", "capped_visitors",
    "events_sum_squares", "value_events_sum",
)  # fmt: skip

# The rollup rows a batch of conversions changes (rollups.conversion_changes),
# all four tables in one statement; a table without rows changes nothing.
UPSERT_ROLLUPS = (
    "WITH "
    + ", ".join(
        f"{table.name} AS ({_upsert(table, set_)})"
        for table, set_ in (
            (ROLLUP_VISITOR_GOAL,
             {c.name: f'excluded."{c.name}"' for c in ROLLUP_VISITOR_GOAL.columns
              if not c.primary_key}),
            (ROLLUP_GOAL, {
                **_adding(ROLLUP_GOAL, *_GOAL_SUMS),
                "kind": "greatest(rollup_goal.kind, excluded.kind)",
            }),
            (ROLLUP_GOAL_DAY, _adding(ROLLUP_GOAL_DAY, "converting", "events")),
            (ROLLUP_PAIR, _adding(ROLLUP_PAIR, "both", "then_after_first")),
        )
    )
    + " SELECT 1"
)  # fmt: skip


def _iso(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


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


class PostgresHotPath:
    """Pooled psycopg connections, for the statements above."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        # Told the text of each statement run here, when set (tests count them).
        self.trace: Callable[[str], None] | None = None

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in autocommit (each statement commits as it
        runs unless the caller sends BEGIN), given back as SQLAlchemy lent it:
        idle, not in autocommit. psycopg's errors come out as SQLAlchemy's;
        a connection found broken is dropped from the pool."""
        try:
            pooled = self.engine.raw_connection()
        except psycopg.Error as error:
            raise self._translated(error, None) from error
        conn: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
        try:
            conn.autocommit = True
            if self.trace is not None:
                conn.cursor_factory = _traced_cursor(self.trace)
            yield conn
        except psycopg.Error as error:
            translated = self._translated(error, conn)
            if translated.connection_invalidated:
                pooled.invalidate(error)
            else:
                self._settle(pooled, conn)
            raise translated from error
        except BaseException:
            self._settle(pooled, conn)
            raise
        else:
            conn.autocommit = False
            conn.cursor_factory = psycopg.Cursor
        pooled.close()

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A pipeline whose first statement is BEGIN, committed on leaving the
        block: the COMMIT goes with the block's last unanswered statements."""
        with self.connection() as conn:
            with conn.pipeline():
                conn.execute(b"BEGIN")
                yield conn
                conn.execute(b"COMMIT")
            if conn.info.transaction_status != pq.TransactionStatus.IDLE:
                raise psycopg.OperationalError("the transaction did not commit")

    @contextmanager
    def autocommit(self) -> Iterator[psycopg.Connection[Any]]:
        """A pipeline of statements that each commit as they run."""
        with self.connection() as conn, conn.pipeline():
            yield conn

    def rows(self, statement: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """The rows of one query, outside any transaction."""
        with self.connection() as conn:
            return conn.execute(statement, parameters, prepare=True).fetchall()

    def _translated(
        self, error: psycopg.Error, conn: psycopg.Connection[Any] | None
    ) -> sa.exc.DBAPIError:
        invalidated = conn is not None and self.dialect.is_disconnect(error, conn, None)
        return sa.exc.DBAPIError.instance(
            None, None, error, psycopg.Error, connection_invalidated=invalidated
        )  # type: ignore[return-value]

    @staticmethod
    def _settle(pooled: Any, conn: psycopg.Connection[Any]) -> None:
        """Give ``conn`` back to the pool idle, or drop it when that fails."""
        try:
            if conn.info.transaction_status != pq.TransactionStatus.IDLE:
                conn.rollback()
            conn.autocommit = False
            conn.cursor_factory = psycopg.Cursor
        except Exception as error:
            pooled.invalidate(error)
            return
        pooled.close()


def _traced_cursor(trace: Callable[[str], None]) -> type[psycopg.Cursor[Any]]:
    class TracedCursor(psycopg.Cursor[Any]):
        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            trace(query.decode() if isinstance(query, bytes) else str(query))
            return super().execute(query, *args, **kwargs)

    return TracedCursor
