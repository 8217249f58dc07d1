"""Rollups kept as events arrive, in the transaction that stores the event.

Every rollup is a sum over visitors of what each visitor contributes, and a
visitor's contribution depends only on the set of their events, never on
the order those arrived in. So each new event applies, for the visitor it
belongs to, *contribution after minus contribution before*: a late or
backfilled event (a past timestamp) lands where a rebuild from the raw rows
(:mod:`abconv.store.rollup_rebuild`) would put it. Counters are changed by
``INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n``, which stays
right when several writers add to one row at once; a visitor's own state is
changed under a lock on their exposure row (PostgreSQL) or the writers'
file lock (SQLite), so two events of one visitor are applied one after the
other.

A day is the UTC date of the event's own timestamp. A goal's ``cap`` cuts
each visitor's total before it is summed; the caps used are those recorded
in ``rollup_cap`` by the last rebuild.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from abconv.store import rollup_rebuild
from abconv.store.connections import Database
from abconv.store.postgres import UPSERT_SETS
from abconv.store.tables import (
    EXPOSURE,
    GOAL_SUMS,
    ROLLUP_CAP,
    ROLLUP_EXPOSURE,
    ROLLUP_GOAL,
    ROLLUP_GOAL_DAY,
    ROLLUP_PAIR,
    ROLLUP_VISITOR_GOAL,
    NewConversion,
)


@dataclass(frozen=True)
class VisitorGoal:
    """A visitor's conversions on one goal, summed (a row of ``rollup_visitor_goal``)."""

    goal: str
    kind: str
    first_at: datetime
    last_at: datetime
    total: float  # uncapped; a conversion without value adds 0
    events: int

    def adding(self, row: NewConversion) -> VisitorGoal:
        return VisitorGoal(
            self.goal,
            max(self.kind, row.kind),  # "soft" > "hard": soft when any row says so
            min(self.first_at, row.created_at),
            max(self.last_at, row.created_at),
            self.total + (row.value or 0.0),
            self.events + 1,
        )


def first_state(row: NewConversion) -> VisitorGoal:
    at = row.created_at
    return VisitorGoal(row.goal, row.kind, at, at, row.value or 0.0, 1)


def capped_powers(total: float, cap: float | None) -> tuple[float, float, float, int]:
    """A visitor's contribution to (value_sum, squares, cubes, capped_visitors)."""
    if cap is not None and total > cap:
        return cap, cap * cap, cap * cap * cap, 1
    return total, total * total, total * total * total, 0


def then_after_first(first: VisitorGoal, then: VisitorGoal) -> int:
    """1 when ``then``'s last conversion is at or after ``first``'s first one."""
    return int(then.last_at >= first.first_at)


class Rollups:
    """The incremental updates, run inside the caller's write transaction."""

    def __init__(self, database: Database) -> None:
        self.database = database
        insert = database.insert
        self._add_exposures = _adding(insert(ROLLUP_EXPOSURE), ROLLUP_EXPOSURE, ["visitors"])
        self._add_goal = _adding(
            insert(ROLLUP_GOAL),
            ROLLUP_GOAL,
            list(GOAL_SUMS),
            kind=sa.func.max if database.is_sqlite else sa.func.greatest,
        )  # fmt: skip
        self._add_goal_day = _adding(
            insert(ROLLUP_GOAL_DAY), ROLLUP_GOAL_DAY, ["converting", "events"]
        )
        self._add_pair = _adding(insert(ROLLUP_PAIR), ROLLUP_PAIR, ["both", "then_after_first"])
        state = insert(ROLLUP_VISITOR_GOAL)
        self._put_state = state.on_conflict_do_update(
            index_elements=_primary_key(ROLLUP_VISITOR_GOAL),
            set_={name: state.excluded[name] for name in _values(ROLLUP_VISITOR_GOAL)},
        )
        # Every row of a batch's visitors and experiments, read (and locked) at once.
        # PostgreSQL takes them as two arrays: one statement text whatever their
        # number (a list of placeholders is parsed anew for each length).
        pairs: Any = sa.bindparam("pairs", expanding=True)
        if not database.is_sqlite:
            names = (
                sa.func.unnest(
                    sa.bindparam("pair_experiments", type_=postgresql.ARRAY(sa.String)),
                    sa.bindparam("pair_visitors", type_=postgresql.ARRAY(sa.String)),
                )
                .table_valued("experiment", "visitor")
                .render_derived()
            )
            pairs = sa.select(names.c.experiment, names.c.visitor)
        keys: sa.BindParameter[Any] = sa.bindparam("experiments", expanding=True)
        exposure, state = EXPOSURE.c, ROLLUP_VISITOR_GOAL.c
        # Serialises one visitor's events on PostgreSQL, in one order for all writers
        # (SQLite renders no FOR UPDATE: its writers already queue on the file lock).
        self._lock_visitors = (
            sa.select(exposure.id)
            .where(sa.tuple_(exposure.experiment, exposure.visitor).in_(pairs))
            .order_by(exposure.experiment, exposure.visitor)
            .with_for_update()
        )
        self._states = sa.select(
            state.experiment, state.visitor, *(state[n] for n in _STATE_FIELDS)
        ).where(sa.tuple_(state.experiment, state.visitor).in_(pairs))
        self._caps = sa.select(ROLLUP_CAP).where(ROLLUP_CAP.c.experiment.in_(keys))

    def rebuild(
        self,
        experiment: str | None = None,
        caps: Mapping[str, Mapping[str, float]] | None = None,
    ) -> list[str]:
        """:func:`abconv.store.rollup_rebuild.rebuild` in one transaction, writers
        held out: the writers' file lock on SQLite, a SHARE lock on the event
        tables on PostgreSQL (taken when the writers in flight are done)."""
        with self.database.writing() as conn:
            if not self.database.is_sqlite:
                conn.execute(sa.text("SET LOCAL lock_timeout = 0"))
                conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
                conn.execute(sa.text("LOCK TABLE exposure, conversion IN SHARE MODE"))
            return rollup_rebuild.rebuild(conn, experiment, caps)

    def recap(self, experiment: str, caps: Mapping[str, float]) -> None:
        """:func:`abconv.store.rollup_rebuild.recap` in one transaction.

        On PostgreSQL, writers of conversions read the caps before they change
        a visitor's total: those in flight finish first, later ones wait for
        this transaction and read the new caps.
        """
        with self.database.writing() as conn:
            if not self.database.is_sqlite:
                conn.execute(sa.text("LOCK TABLE rollup_cap IN ACCESS EXCLUSIVE MODE"))
            rollup_rebuild.recap(conn, experiment, caps)

    def exposures_added(self, conn: Connection, rows: Iterable[Sequence[Any]]) -> None:
        """Count new exposures, given as (experiment, variant, created_at, phase)."""
        days = Counter(
            (experiment, variant, phase, at.date()) for experiment, variant, at, phase in rows
        )
        if days:
            conn.execute(
                self._add_exposures,
                [{"experiment": e, "variant": v, "phase": p, "day": d, "visitors": n}
                 for (e, v, p, d), n in sorted(days.items())],
            )  # fmt: skip

    def conversions_added(self, conn: Connection, rows: Sequence[NewConversion]) -> None:
        """Apply new conversion rows (never duplicates: the caller stored them just now),
        in order, merged into one upsert per rollup table, rows in key order."""
        if not rows:
            return
        pairs = sorted({(row.experiment, row.visitor) for row in rows})
        named: dict[str, Any] = {"pairs": pairs}
        if not self.database.is_sqlite:
            named = {
                "pair_experiments": [e for e, _ in pairs],
                "pair_visitors": [v for _, v in pairs],
            }
            conn.execute(self._lock_visitors, named)
        experiments = {"experiments": sorted({e for e, _ in pairs})}
        states = {
            (r.experiment, r.visitor, r.goal): VisitorGoal(*r[2:])
            for r in conn.execute(self._states, named)
        }
        caps = {(r.experiment, r.goal): r.cap for r in conn.execute(self._caps, experiments)}
        statements = {
            ROLLUP_VISITOR_GOAL.name: self._put_state,
            ROLLUP_GOAL.name: self._add_goal,
            ROLLUP_GOAL_DAY.name: self._add_goal_day,
            ROLLUP_PAIR.name: self._add_pair,
        }
        changed = conversion_changes(rows, states, caps)
        if not self.database.is_sqlite:  # one statement, one round trip
            conn.execute(_POSTGRES_UPSERTS, _as_arrays(changed))
            return
        for table, changes in changed:
            conn.execute(statements[table], changes)


def conversion_changes(
    rows: Sequence[NewConversion],
    states: dict[tuple[str, str, str], VisitorGoal],
    caps: dict[tuple[str, str], float],
) -> list[tuple[str, list[dict[str, Any]]]]:
    """The rollup rows that new conversion ``rows`` change, by table name, each
    table's rows in key order; ``states`` are the stored states of the rows'
    visitors (and goals), ``caps`` the recorded caps by (experiment, goal).
    Pure: both the SQLAlchemy path and SQLite's hot path write what it says."""
    batch = _Batch(states, caps)
    for row in rows:
        batch.add(row)
    return [
        (table.name, [changes[key] for key in sorted(changes)])
        for table, changes in (
            (ROLLUP_VISITOR_GOAL, batch.states),
            (ROLLUP_GOAL, batch.goals),
            (ROLLUP_GOAL_DAY, batch.days),
            (ROLLUP_PAIR, batch.pairs),
        )
        if changes
    ]


_STATE_FIELDS = tuple(VisitorGoal.__dataclass_fields__)


class _Batch:
    """The changes of a batch of conversions, merged by the key of the row they change."""

    def __init__(
        self,
        states: dict[tuple[str, str, str], VisitorGoal],
        caps: dict[tuple[str, str], float],
    ) -> None:
        # By (experiment, visitor), then goal: a visitor's other goals at once.
        self.known: dict[tuple[str, str], dict[str, VisitorGoal]] = {}
        for (experiment, visitor, goal), state in states.items():
            self.known.setdefault((experiment, visitor), {})[goal] = state
        self.caps = caps
        self.states: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.goals: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.days: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.pairs: dict[tuple[Any, ...], dict[str, Any]] = {}

    def add(self, row: NewConversion) -> None:
        key = (row.experiment, row.visitor, row.goal)
        visitor_goals = self.known.setdefault((row.experiment, row.visitor), {})
        before = visitor_goals.get(row.goal)
        after = first_state(row) if before is None else before.adding(row)
        visitor_goals[row.goal] = after
        self.states[key] = {
            "experiment": row.experiment, "visitor": row.visitor, "variant": row.variant,
            "phase": row.phase, **{n: getattr(after, n) for n in _STATE_FIELDS},
        }  # fmt: skip
        scope: dict[str, Any] = {
            "experiment": row.experiment, "variant": row.variant, "phase": row.phase,
        }  # fmt: skip
        cap = self.caps.get((row.experiment, row.goal))
        goal = _goal_delta(before, after, cap)
        self._merge(
            self.goals, (row.experiment, row.variant, row.goal, row.phase), scope, goal, GOAL_SUMS
        )
        for day, (converting, events) in _day_deltas(before, after, row.created_at.date()).items():
            self._merge(
                self.days, (row.experiment, row.variant, row.goal, row.phase, day), scope,
                {"goal": row.goal, "day": day, "converting": converting, "events": events},
                ("converting", "events"),
            )  # fmt: skip
        others = (state for goal, state in visitor_goals.items() if goal != row.goal)
        for pair in _pair_deltas(before, after, others):
            self._merge(
                self.pairs,
                (row.experiment, row.variant, pair["first_goal"], pair["then_goal"], row.phase),
                scope, pair, ("both", "then_after_first"),
            )  # fmt: skip

    @staticmethod
    def _merge(
        into: dict[tuple[Any, ...], dict[str, Any]],
        key: tuple[Any, ...],
        scope: dict[str, Any],
        delta: dict[str, Any],
        counters: tuple[str, ...],
    ) -> None:
        stored = into.get(key)
        if stored is None:
            into[key] = {**scope, **delta}
            return
        for name in counters:
            stored[name] += delta[name]
        if "kind" in delta:
            stored["kind"] = max(stored["kind"], delta["kind"])


def _goal_delta(
    before: VisitorGoal | None, after: VisitorGoal, cap: float | None
) -> dict[str, Any]:
    old = (0.0, 0.0, 0.0, 0) if before is None else capped_powers(before.total, cap)
    new = capped_powers(after.total, cap)
    old_events = 0 if before is None else before.events
    return {
        "goal": after.goal,
        "kind": after.kind,
        "converting": int(before is None),
        "events": 1,
        "value_sum": new[0] - old[0],
        "value_sum_squares": new[1] - old[1],
        "value_sum_cubes": new[2] - old[2],
        "capped_visitors": new[3] - old[3],
        "events_sum_squares": after.events**2 - old_events**2,
        "value_events_sum": new[0] * after.events - old[0] * old_events,
    }


def _day_deltas(
    before: VisitorGoal | None, after: VisitorGoal, event_day: date
) -> dict[date, tuple[int, int]]:
    """Day → (converting, events): the event on its day; the visitor's first
    conversion moved to an earlier day when this event predates it."""
    deltas = {event_day: [0, 1]}  # day -> [converting, events]
    if before is None or before.first_at.date() != after.first_at.date():
        deltas.setdefault(after.first_at.date(), [0, 0])[0] += 1
        if before is not None:
            deltas.setdefault(before.first_at.date(), [0, 0])[0] -= 1
    return {day: (converting, events) for day, (converting, events) in sorted(deltas.items())}


def _pair_deltas(
    before: VisitorGoal | None, after: VisitorGoal, others: Iterable[VisitorGoal]
) -> list[dict[str, Any]]:
    """Changes to the ordered pairs of this goal with the visitor's other goals."""
    changes = []
    for other in others:
        for first, then, old in (
            (after, other, None if before is None else then_after_first(before, other)),
            (other, after, None if before is None else then_after_first(other, before)),
        ):
            new = then_after_first(first, then)
            both = int(old is None)
            if both or new != old:
                changes.append(
                    {"first_goal": first.goal, "then_goal": then.goal, "both": both,
                     "then_after_first": new - (old or 0)}
                )  # fmt: skip
    return changes


def _primary_key(table: sa.Table) -> list[str]:
    return [column.name for column in table.primary_key.columns]


def _values(table: sa.Table) -> list[str]:
    keys = set(_primary_key(table))
    return [column.name for column in table.columns if column.name not in keys]


def _adding(statement: Any, table: sa.Table, counters: list[str], **merged: Any) -> Any:
    """``statement`` (an INSERT of ``table``) made to add ``counters`` to a stored row,
    and to merge the other ``merged`` columns with the given SQL function."""
    excluded = statement.excluded
    set_ = {name: table.c[name] + excluded[name] for name in counters}
    set_.update({name: merge(table.c[name], excluded[name]) for name, merge in merged.items()})
    return statement.on_conflict_do_update(index_elements=_primary_key(table), set_=set_)


_CHANGED_TABLES = (ROLLUP_VISITOR_GOAL, ROLLUP_GOAL, ROLLUP_GOAL_DAY, ROLLUP_PAIR)
_ARRAY_TYPES = {sa.String: "varchar[]", sa.Date: "date[]", sa.DateTime: "timestamp[]",
                sa.Float: "float8[]", sa.Integer: "int4[]"}  # fmt: skip


def _array_type(column: sa.Column[Any]) -> str:
    return next(name for kind, name in _ARRAY_TYPES.items() if isinstance(column.type, kind))


def _postgres_upsert(table: sa.Table, set_: dict[str, str]) -> str:
    """``table``'s rows from one array parameter per column, upserted."""
    names = [column.name for column in table.columns]
    arrays = ", ".join(f"CAST(:{table.name}__{c.name} AS {_array_type(c)})" for c in table.columns)
    updates = ", ".join(f'"{name}" = {value}' for name, value in set_.items())
    return (
        f"INSERT INTO {table.name} ({', '.join(f'{chr(34)}{n}{chr(34)}' for n in names)}) "
        f"SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({', '.join(_primary_key(table))}) DO UPDATE SET {updates}"
    )


# PostgreSQL: the upserts of the four tables a conversion changes in one
# statement (each table's rows as arrays; an empty array changes nothing),
# doing what Rollups' per-table statements do.
_POSTGRES_UPSERTS = sa.text(
    "WITH "
    + ", ".join(f"{table.name} AS ({_postgres_upsert(table, set_)})" for table, set_ in UPSERT_SETS)
    + " SELECT 1"
)


def _as_arrays(changed: list[tuple[str, list[dict[str, Any]]]]) -> dict[str, list[Any]]:
    """The parameters of :data:`_POSTGRES_UPSERTS`: a list per table and column."""
    rows = dict(changed)
    return {
        f"{table.name}__{column.name}": [row[column.name] for row in rows.get(table.name, [])]
        for table in _CHANGED_TABLES
        for column in table.columns
    }
