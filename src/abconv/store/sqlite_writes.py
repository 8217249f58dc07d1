"""The event writes of SQLite's hot path, in plain ``sqlite3``, inside the caller's
transaction (:meth:`abconv.store.sqlite.SqliteHotPath.transaction`).

They store what the SQLAlchemy path stores (same rows, same text for times,
rollups from the same :func:`~abconv.store.rollups.conversion_changes`), in
fewer statements: the rows of a group of requests in one multi-row
``INSERT ... RETURNING`` (a statement costs more than the rows it carries),
a conversion's visitor states and caps in one query, and an upsert only for
the rollup tables a change touches. Parameters go by position, built from
column lists fixed once.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from abconv.store.rollups import VisitorGoal, conversion_changes
from abconv.store.sqlite import COUNT_EXPOSURES, stored_time
from abconv.store.tables import (
    CONVERSION_KEY,
    GOAL_SUMS,
    ROLLUP_GOAL,
    ROLLUP_GOAL_DAY,
    ROLLUP_PAIR,
    ROLLUP_VISITOR_GOAL,
    NewConversion,
    StoredExposure,
    first_of_each_event,
)

EXPOSURE_COLUMNS = ("experiment", "visitor", "variant", "created_at", "phase")
CONVERSION_COLUMNS = (
    "experiment", "variant", "visitor", "goal", "kind", "value", "event_id", "created_at", "phase",
)  # fmt: skip

# Rows per multi-row statement: few statement texts in sqlite3's cache, and
# far below SQLite's limit on parameters.
CHUNK = 100


@lru_cache(maxsize=256)
def _insert_rows(head: str, width: int, rows: int, tail: str) -> str:
    """``head VALUES (?, ...), ... tail`` for ``rows`` rows of ``width`` values."""
    row = "(" + ", ".join("?" * width) + ")"
    return f"{head} VALUES {', '.join([row] * rows)} {tail}"


_EXPOSURES_HEAD = f"INSERT INTO exposure ({', '.join(EXPOSURE_COLUMNS)})"
_EXPOSURES_TAIL = "ON CONFLICT (visitor, experiment) DO NOTHING RETURNING experiment, visitor"
_INSERT_EXPOSURE = _insert_rows(_EXPOSURES_HEAD, 5, 1, _EXPOSURES_TAIL)
_CONVERSIONS_HEAD = f"INSERT INTO conversion ({', '.join(CONVERSION_COLUMNS)})"
_CONVERSIONS_TAIL = (
    f"ON CONFLICT ({', '.join(CONVERSION_KEY)}) DO NOTHING RETURNING visitor, event_id, experiment"
)


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Times:
    """``stored_time`` of each distinct time once: a batch's rows share their time."""

    def __init__(self) -> None:
        self._text: dict[datetime, str] = {}

    def __call__(self, at: datetime) -> str:
        text = self._text.get(at)
        if text is None:
            text = self._text[at] = stored_time(at)
        return text


# -- exposures -----------------------------------------------------------------


def insert_exposures(
    connection: sqlite3.Connection, payloads: list[list[dict[str, Any]]]
) -> list[int]:
    """Several requests' exposure rows, and the rollup of the new ones; how many
    of each request's rows were new (a row two requests share counts for the first)."""
    if len(payloads) == 1 and len(payloads[0]) == 1:  # a lone new visitor's request
        return [_insert_exposure(connection, payloads[0][0])]
    first: dict[tuple[str, str], int] = {}  # (experiment, visitor) -> its payload
    sent: list[dict[str, Any]] = []
    for number, rows in enumerate(payloads):
        for row in rows:
            key = (row["experiment"], row["visitor"])
            if key not in first:
                first[key] = number
                sent.append(row)
    times = _Times()
    new: list[Any] = []
    for chunk in _chunks(sent):
        values: list[Any] = []
        for r in chunk:
            values += (r["experiment"], r["visitor"], r["variant"], times(r["created_at"]),
                       r.get("phase", 1))  # fmt: skip
        statement = _insert_rows(_EXPOSURES_HEAD, 5, len(chunk), _EXPOSURES_TAIL)
        new += connection.execute(statement, values).fetchall()
    counts = [0] * len(payloads)
    if not new:
        return counts
    by_key = {(r["experiment"], r["visitor"]): r for r in sent}
    days: Counter[tuple[str, str, int, str]] = Counter()
    for key in new:
        row = by_key[key]
        counts[first[key]] += 1
        days[(row["experiment"], row["variant"], row.get("phase", 1),
              row["created_at"].date().isoformat())] += 1  # fmt: skip
    if len(days) == 1:
        ((day, n),) = days.items()
        connection.execute(COUNT_EXPOSURES, (*day, n))
    else:
        connection.executemany(COUNT_EXPOSURES, [(*day, n) for day, n in sorted(days.items())])
    return counts


def _insert_exposure(connection: sqlite3.Connection, row: dict[str, Any]) -> int:
    """:func:`insert_exposures` of one row: 1 if it was new."""
    at, phase = row["created_at"], row.get("phase", 1)
    values = (row["experiment"], row["visitor"], row["variant"], stored_time(at), phase)
    if not connection.execute(_INSERT_EXPOSURE, values).fetchall():
        return 0
    day = (row["experiment"], row["variant"], phase, at.date().isoformat(), 1)
    connection.execute(COUNT_EXPOSURES, day)
    return 1


SELECT_EXPOSURES_OF_MANY = (
    "SELECT visitor, experiment, variant, created_at, phase FROM exposure WHERE visitor IN"
)


def exposures_for(
    connection: sqlite3.Connection, visitors: Iterable[str]
) -> dict[tuple[str, str], StoredExposure]:
    """The stored exposures of ``visitors``, by (visitor, experiment)."""
    found = {}
    times: dict[str, datetime] = {}
    for chunk in _chunks(sorted(set(visitors)), 500):
        marks = ", ".join("?" * len(chunk))
        for visitor, experiment, variant, text, phase in connection.execute(
            f"{SELECT_EXPOSURES_OF_MANY} ({marks})", chunk
        ):
            at = times.get(text)
            if at is None:
                at = times[text] = datetime.fromisoformat(text)
            found[(visitor, experiment)] = StoredExposure(experiment, variant, at, phase)
    return found


# -- conversions ---------------------------------------------------------------


def insert_conversions(connection: sqlite3.Connection, rows: Sequence[NewConversion]) -> list[bool]:
    """Insert conversions and apply the new ones to the rollups; True where a row
    was new. As row by row, the first of two rows with one (visitor, event_id,
    experiment) is the one stored; a row without event id is always new."""
    first = first_of_each_event(rows)
    sent = [row for row, is_first in zip(rows, first, strict=True) if is_first]
    times = _Times()
    stored: set[tuple[str, str, str]] = set()
    for chunk in _chunks(sent):
        values: list[Any] = []
        for r in chunk:
            values += (r.experiment, r.variant, r.visitor, r.goal, r.kind, r.value, r.event_id,
                       times(r.created_at), r.phase)  # fmt: skip
        statement = _insert_rows(_CONVERSIONS_HEAD, 9, len(chunk), _CONVERSIONS_TAIL)
        stored.update(connection.execute(statement, values).fetchall())
    new = [
        is_first and (row.event_id is None or (row.visitor, row.event_id, row.experiment) in stored)
        for row, is_first in zip(rows, first, strict=True)
    ]
    added = [row for row, is_new in zip(rows, new, strict=True) if is_new]
    if added:
        states, caps = _states_and_caps(connection, added)
        for table, changes in conversion_changes(added, states, caps):
            UPSERTS[table].run(connection, changes, times)
    return new


@lru_cache(maxsize=64)
def _select_states(visitors: int, with_caps: bool) -> str:
    """The stored states of ``visitors`` visitors of an experiment and, ``with_caps``,
    the experiment's caps in the same query: a cap's row has no visitor."""
    states = (
        "SELECT visitor, goal, kind, first_at, last_at, total, events FROM rollup_visitor_goal "
        f"WHERE experiment = ? AND visitor IN ({', '.join('?' * visitors)})"
    )
    if not with_caps:
        return states
    return (
        f"{states} UNION ALL "
        "SELECT NULL, goal, NULL, NULL, NULL, cap, NULL FROM rollup_cap WHERE experiment = ?"
    )


def _states_and_caps(
    connection: sqlite3.Connection, rows: Sequence[NewConversion]
) -> tuple[dict[tuple[str, str, str], VisitorGoal], dict[tuple[str, str], float]]:
    by_experiment: dict[str, set[str]] = {}
    for row in rows:
        by_experiment.setdefault(row.experiment, set()).add(row.visitor)
    states: dict[tuple[str, str, str], VisitorGoal] = {}
    caps: dict[tuple[str, str], float] = {}
    for experiment, visitors in sorted(by_experiment.items()):
        for number, chunk in enumerate(_chunks(sorted(visitors), 500)):
            if number == 0:  # the caps with the first chunk's states
                statement = _select_states(len(chunk), with_caps=True)
                found = connection.execute(statement, (experiment, *chunk, experiment))
            else:
                found = connection.execute(_select_states(len(chunk), False), (experiment, *chunk))
            for visitor, goal, kind, first_at, last_at, total, events in found:
                if visitor is None:
                    caps[(experiment, goal)] = total
                    continue
                states[(experiment, visitor, goal)] = VisitorGoal(
                    goal, kind, datetime.fromisoformat(first_at), datetime.fromisoformat(last_at),
                    total, events,
                )  # fmt: skip
    return states, caps


class _Upsert:
    """The upsert of a rollup table, and its parameters from a change (a dict of
    every column, as :func:`conversion_changes` gives)."""

    def __init__(self, table: sa.Table, set_: dict[str, str]) -> None:
        names = [column.name for column in table.columns]
        key = [column.name for column in table.primary_key.columns]
        updates = ", ".join(f'"{name}" = {value}' for name, value in set_.items())
        self.head = f"INSERT INTO {table.name} ({', '.join(_quoted(n) for n in names)})"
        # "ON CONFLICT" after a VALUES list needs no "WHERE true" (only after a SELECT).
        self.tail = f"ON CONFLICT ({', '.join(_quoted(n) for n in key)}) DO UPDATE SET {updates}"
        self.names = names
        self.times = [i for i, c in enumerate(table.columns) if isinstance(c.type, sa.DateTime)]
        self.dates = [
            i for i, c in enumerate(table.columns)
            if isinstance(c.type, sa.Date) and not isinstance(c.type, sa.DateTime)
        ]  # fmt: skip

    def run(
        self,
        connection: sqlite3.Connection,
        changes: list[dict[str, Any]],
        times: Callable[[datetime], str],
    ) -> None:
        """Upsert ``changes`` (one per key), many rows a statement."""
        width = len(self.names)
        for chunk in _chunks(changes):
            values: list[Any] = []
            for change in chunk:
                values += self.values(change, times)
            connection.execute(_insert_rows(self.head, width, len(chunk), self.tail), values)

    def values(self, change: dict[str, Any], times: Callable[[datetime], str]) -> list[Any]:
        values = [change[name] for name in self.names]
        for i in self.times:
            values[i] = times(values[i])
        for i in self.dates:
            values[i] = values[i].isoformat()
        return values


def _quoted(name: str) -> str:
    return '"' + name + '"'


def _adding(*counters: str) -> dict[str, str]:
    return {n: f"{_quoted(n)} + excluded.{_quoted(n)}" for n in counters}


# The upsert of each rollup table a conversion changes, as rollups.Rollups builds them.
UPSERTS = {
    ROLLUP_VISITOR_GOAL.name: _Upsert(
        ROLLUP_VISITOR_GOAL,
        {c.name: "excluded." + _quoted(c.name) for c in ROLLUP_VISITOR_GOAL.columns
         if not c.primary_key},
    ),
    ROLLUP_GOAL.name: _Upsert(
        ROLLUP_GOAL,
        {
            **_adding(*GOAL_SUMS),
            "kind": "max(kind, excluded.kind)",
        },
    ),
    ROLLUP_GOAL_DAY.name: _Upsert(ROLLUP_GOAL_DAY, _adding("converting", "events")),
    ROLLUP_PAIR.name: _Upsert(ROLLUP_PAIR, _adding("both", "then_after_first")),
}  # fmt: skip
