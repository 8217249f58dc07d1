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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from abconv.store.connections import Database
from abconv.store.tables import (
    EXPOSURE,
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
        return replace(
            self,
            kind=max(self.kind, row.kind),  # "soft" > "hard": soft when any row says so
            first_at=min(self.first_at, row.created_at),
            last_at=max(self.last_at, row.created_at),
            total=self.total + (row.value or 0.0),
            events=self.events + 1,
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
            ["converting", "events", "value_sum", "value_sum_squares", "value_sum_cubes",
             "capped_visitors"],
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
        visitor: sa.BindParameter[str] = sa.bindparam("visitor")
        experiment: sa.BindParameter[str] = sa.bindparam("experiment")
        # Serialises one visitor's events on PostgreSQL (SQLite renders no FOR UPDATE:
        # its writers already queue on the file lock).
        self._lock_visitor = (
            sa.select(EXPOSURE.c.id)
            .where(EXPOSURE.c.visitor == visitor, EXPOSURE.c.experiment == experiment)
            .with_for_update()
        )
        self._states = sa.select(
            *(ROLLUP_VISITOR_GOAL.c[n] for n in VisitorGoal.__dataclass_fields__)
        ).where(
            ROLLUP_VISITOR_GOAL.c.experiment == experiment, ROLLUP_VISITOR_GOAL.c.visitor == visitor
        )
        self._cap = sa.select(ROLLUP_CAP.c.cap).where(
            ROLLUP_CAP.c.experiment == experiment, ROLLUP_CAP.c.goal == sa.bindparam("goal")
        )

    def exposures_added(self, conn: Connection, rows: Iterable[Sequence[Any]]) -> None:
        """Count new exposures, given as (experiment, variant, created_at)."""
        days = Counter((experiment, variant, at.date()) for experiment, variant, at in rows)
        if days:
            conn.execute(
                self._add_exposures,
                [{"experiment": e, "variant": v, "day": d, "visitors": n}
                 for (e, v, d), n in days.items()],
            )  # fmt: skip

    def conversion_added(self, conn: Connection, row: NewConversion) -> None:
        """Apply a new conversion row (never a duplicate: the caller stored it just now)."""
        key = {"experiment": row.experiment, "visitor": row.visitor}
        if not self.database.is_sqlite:
            conn.execute(self._lock_visitor, key)
        states = {r.goal: VisitorGoal(*r) for r in conn.execute(self._states, key).all()}
        cap = conn.execute(self._cap, {**key, "goal": row.goal}).scalar()
        before = states.pop(row.goal, None)
        after = first_state(row) if before is None else before.adding(row)
        scope = {"experiment": row.experiment, "variant": row.variant}
        conn.execute(
            self._put_state,
            {**key, "variant": row.variant, **{n: getattr(after, n) for n in _STATE_FIELDS}},
        )
        conn.execute(self._add_goal, {**scope, **_goal_delta(before, after, cap)})
        conn.execute(
            self._add_goal_day,
            [{**scope, "goal": row.goal, "day": d, "converting": c, "events": n}
             for d, (c, n) in _day_deltas(before, after, row.created_at.date()).items()],
        )  # fmt: skip
        pairs = _pair_deltas(before, after, states.values())
        if pairs:
            conn.execute(self._add_pair, [{**scope, **pair} for pair in pairs])


_STATE_FIELDS = tuple(VisitorGoal.__dataclass_fields__)


def _goal_delta(
    before: VisitorGoal | None, after: VisitorGoal, cap: float | None
) -> dict[str, Any]:
    old = (0.0, 0.0, 0.0, 0) if before is None else capped_powers(before.total, cap)
    new = capped_powers(after.total, cap)
    return {
        "goal": after.goal,
        "kind": after.kind,
        "converting": int(before is None),
        "events": 1,
        "value_sum": new[0] - old[0],
        "value_sum_squares": new[1] - old[1],
        "value_sum_cubes": new[2] - old[2],
        "capped_visitors": new[3] - old[3],
    }


def _day_deltas(
    before: VisitorGoal | None, after: VisitorGoal, event_day: date
) -> dict[date, tuple[int, int]]:
    """Day → (converting, events): the event on its day; the visitor's first
    conversion moved to an earlier day when this event predates it."""
    deltas: Counter[tuple[date, str]] = Counter({(event_day, "events"): 1})
    if before is None or before.first_at.date() != after.first_at.date():
        deltas[(after.first_at.date(), "converting")] += 1
        if before is not None:
            deltas[(before.first_at.date(), "converting")] -= 1
    days = sorted({day for day, _ in deltas})
    return {day: (deltas[(day, "converting")], deltas[(day, "events")]) for day in days}


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
