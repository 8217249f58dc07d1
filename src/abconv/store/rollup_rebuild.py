"""Rollups recomputed from the raw ``exposure`` and ``conversion`` rows.

The same rules as the incremental updates of :mod:`abconv.store.rollups`,
written as aggregate queries: a day is the UTC date of the event's own
timestamp, a visitor's total on a goal is cut at the goal's cap, and a goal
is soft when any of its rows says so. The property test
(``tests/test_rollups.py``) holds the two to the same figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from abconv.store.tables import (
    CONVERSION,
    EXPOSURE,
    ROLLUP_CAP,
    ROLLUP_EXPOSURE,
    ROLLUP_GOAL,
    ROLLUP_GOAL_DAY,
    ROLLUP_PAIR,
    ROLLUP_TABLES,
    ROLLUP_VISITOR_GOAL,
)


def rebuild(
    conn: Connection,
    experiment: str | None = None,
    caps: Mapping[str, Mapping[str, float]] | None = None,
) -> list[str]:
    """Recompute the rollups of ``experiment`` (None: of every experiment) in ``conn``'s
    transaction; return the experiments rebuilt.

    ``caps`` maps an experiment to its goals' caps (goal → cap), recorded in
    ``rollup_cap`` and used from then on; an experiment not in ``caps`` keeps
    the caps it has. The caller holds the writers out (see
    :meth:`abconv.store.Store.rebuild_rollups`).
    """
    experiments = _experiments(conn) if experiment is None else [experiment]
    for key in experiments:
        for table in ROLLUP_TABLES:
            if table is not ROLLUP_CAP or (caps is not None and key in caps):
                conn.execute(table.delete().where(table.c.experiment == key))
        if caps is not None and key in caps and caps[key]:
            conn.execute(
                ROLLUP_CAP.insert(),
                [{"experiment": key, "goal": g, "cap": float(c)} for g, c in caps[key].items()],
            )
        _rebuild_one(conn, key)
    return experiments


def recap(conn: Connection, experiment: str, caps: Mapping[str, float]) -> None:
    """Record ``caps`` (goal → cap) for ``experiment`` and recompute ``rollup_goal``,
    the one rollup they change, from the visitors' totals: no scan of events.
    The caller holds the writers of conversions out (see
    :meth:`abconv.store.Store.result_counts`)."""
    for table in (ROLLUP_GOAL, ROLLUP_CAP):
        conn.execute(table.delete().where(table.c.experiment == experiment))
    if caps:
        conn.execute(
            ROLLUP_CAP.insert(),
            [{"experiment": experiment, "goal": g, "cap": float(c)} for g, c in caps.items()],
        )
    _goals(conn, experiment)


def _experiments(conn: Connection) -> list[str]:
    keys = sa.union(
        *(sa.select(table.c.experiment) for table in (EXPOSURE, CONVERSION, *ROLLUP_TABLES))
    )
    return sorted(conn.execute(sa.select(keys.subquery().c.experiment)).scalars())


def _rebuild_one(conn: Connection, key: str) -> None:
    day = _day_function(conn)
    _exposures(conn, key, day)
    _visitor_goals(conn, key)
    _goals(conn, key)
    _goal_days(conn, key, day)
    _pairs(conn, key)


def _day_function(conn: Connection) -> Any:
    """The UTC date of a stored timestamp, in the form the ``day`` columns hold."""
    if conn.dialect.name == "sqlite":
        return sa.func.date  # 'YYYY-MM-DD', as SQLAlchemy stores a Date in SQLite
    return lambda column: sa.cast(column, sa.Date)


def _into(conn: Connection, table: sa.Table, select: sa.Select[Any]) -> None:
    names = [column.name for column in select.selected_columns]
    conn.execute(table.insert().from_select(names, select))


def _exposures(conn: Connection, key: str, day: Any) -> None:
    e = EXPOSURE.c
    on_day = day(e.created_at)
    _into(
        conn,
        ROLLUP_EXPOSURE,
        sa.select(
            e.experiment, e.variant, e.phase, on_day.label("day"), sa.func.count().label("visitors")
        )
        .where(e.experiment == key)
        .group_by(e.experiment, e.variant, e.phase, on_day),
    )


def _visitor_goals(conn: Connection, key: str) -> None:
    c = CONVERSION.c
    _into(
        conn,
        ROLLUP_VISITOR_GOAL,
        sa.select(
            c.experiment,
            c.visitor,
            c.goal,
            sa.func.max(c.variant).label("variant"),  # one per visitor: their exposure's
            sa.func.max(c.phase).label("phase"),  # likewise
            sa.func.max(c.kind).label("kind"),
            sa.func.min(c.created_at).label("first_at"),
            sa.func.max(c.created_at).label("last_at"),
            sa.func.coalesce(sa.func.sum(c.value), 0.0).label("total"),
            sa.func.count().label("events"),
        )
        .where(c.experiment == key)
        .group_by(c.experiment, c.visitor, c.goal),
    )


def _goals(conn: Connection, key: str) -> None:
    s, cap = ROLLUP_VISITOR_GOAL.c, ROLLUP_CAP.c.cap
    over = sa.and_(cap.is_not(None), s.total > cap)
    value = sa.case((over, cap), else_=s.total)
    _into(
        conn,
        ROLLUP_GOAL,
        sa.select(
            s.experiment,
            s.variant,
            s.phase,
            s.goal,
            sa.func.max(s.kind).label("kind"),
            sa.func.count().label("converting"),
            sa.func.sum(s.events).label("events"),
            sa.func.sum(value).label("value_sum"),
            sa.func.sum(value * value).label("value_sum_squares"),
            sa.func.sum(value * value * value).label("value_sum_cubes"),
            sa.func.sum(sa.case((over, 1), else_=0)).label("capped_visitors"),
            sa.func.sum(s.events * s.events).label("events_sum_squares"),
            sa.func.sum(value * s.events).label("value_events_sum"),
        )
        .select_from(
            ROLLUP_VISITOR_GOAL.outerjoin(
                ROLLUP_CAP,
                sa.and_(ROLLUP_CAP.c.experiment == s.experiment, ROLLUP_CAP.c.goal == s.goal),
            )
        )
        .where(s.experiment == key)
        .group_by(s.experiment, s.variant, s.phase, s.goal),
    )


def _goal_days(conn: Connection, key: str, day: Any) -> None:
    s, c = ROLLUP_VISITOR_GOAL.c, CONVERSION.c
    firsts = sa.select(
        s.experiment, s.variant, s.phase, s.goal, day(s.first_at).label("day"),
        sa.literal(1).label("converting"), sa.literal(0).label("events"),
    ).where(s.experiment == key)  # fmt: skip
    events = sa.select(
        c.experiment, c.variant, c.phase, c.goal, day(c.created_at).label("day"),
        sa.literal(0).label("converting"), sa.literal(1).label("events"),
    ).where(c.experiment == key)  # fmt: skip
    both = sa.union_all(firsts, events).subquery()
    _into(
        conn,
        ROLLUP_GOAL_DAY,
        sa.select(
            both.c.experiment,
            both.c.variant,
            both.c.phase,
            both.c.goal,
            both.c.day,
            sa.func.sum(both.c.converting).label("converting"),
            sa.func.sum(both.c.events).label("events"),
        ).group_by(both.c.experiment, both.c.variant, both.c.phase, both.c.goal, both.c.day),
    )


def _pairs(conn: Connection, key: str) -> None:
    first, then = ROLLUP_VISITOR_GOAL.alias("first"), ROLLUP_VISITOR_GOAL.alias("then")
    _into(
        conn,
        ROLLUP_PAIR,
        sa.select(
            first.c.experiment,
            first.c.variant,
            first.c.phase,
            first.c.goal.label("first_goal"),
            then.c.goal.label("then_goal"),
            sa.func.count().label("both"),
            sa.func.sum(sa.case((then.c.last_at >= first.c.first_at, 1), else_=0)).label(
                "then_after_first"
            ),
        )
        .select_from(
            first.join(
                then,
                sa.and_(
                    then.c.experiment == first.c.experiment,
                    then.c.visitor == first.c.visitor,
                    then.c.goal != first.c.goal,
                ),
            )
        )
        .where(first.c.experiment == key)
        .group_by(first.c.experiment, first.c.variant, first.c.phase, first.c.goal, then.c.goal),
    )
