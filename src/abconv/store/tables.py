"""The tables, and the values passed between the store and its callers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class Exposure(SQLModel, table=True):
    """A visitor's first exposure to an experiment, with the variant they saw."""

    __table_args__ = (sa.UniqueConstraint("visitor", "experiment", name="uq_exposure"),)

    id: int | None = Field(default=None, primary_key=True)
    experiment: str = Field(max_length=64)
    visitor: str = Field(max_length=128)
    variant: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=sa.DateTime())  # naive UTC
    # The phase the serving process knew as current (README, "Phases").
    phase: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


# Event ids are the visitor's: another visitor reusing one is a different
# event. Visitor first, so that looking up (visitor, event_id) uses the index.
CONVERSION_KEY = ("visitor", "event_id", "experiment")


class Conversion(SQLModel, table=True):
    """A goal reached by an exposed visitor, credited to their variant."""

    __table_args__ = (sa.UniqueConstraint(*CONVERSION_KEY, name="uq_conversion_visitor_event"),)

    id: int | None = Field(default=None, primary_key=True)
    experiment: str = Field(max_length=64, index=True)
    variant: str = Field(max_length=64)
    visitor: str = Field(max_length=128)
    goal: str = Field(max_length=64)
    kind: str = Field(max_length=8)
    value: float | None = None
    event_id: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(sa_type=sa.DateTime())  # naive UTC
    phase: int = Field(default=1, sa_column_kwargs={"server_default": "1"})  # the exposure's


class Phase(SQLModel, table=True):
    """A stretch of an experiment's life with one definition (README, "Phases")."""

    experiment: str = Field(max_length=64, primary_key=True)
    number: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    started_at: datetime = Field(sa_type=sa.DateTime())  # naive UTC
    # weights, traffic and variants as JSON; NULL: not known yet (a phase 1
    # made by the migration), filled in by the first server that serves it.
    definition: str | None = Field(default=None, sa_type=sa.Text())


EXPOSURE = Exposure.__table__  # type: ignore[attr-defined]
CONVERSION = Conversion.__table__  # type: ignore[attr-defined]
PHASE = Phase.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class StoredExposure:
    experiment: str
    variant: str
    created_at: datetime  # naive UTC
    phase: int = 1


@dataclass(frozen=True)
class NewConversion:
    experiment: str
    variant: str
    visitor: str
    goal: str
    kind: str
    value: float | None
    event_id: str | None
    created_at: datetime  # naive UTC
    phase: int = 1  # the visitor's exposure's


def first_of_each_event(rows: Sequence[NewConversion]) -> list[bool]:
    """Which of ``rows`` is the first with its (visitor, event_id, experiment):
    the one that counts, as when stored row by row. A row without event id
    is always first."""
    seen: set[tuple[str, str | None, str]] = set()
    first = []
    for row in rows:
        key = (row.visitor, row.event_id, row.experiment)
        first.append(row.event_id is None or key not in seen)
        seen.add(key)
    return first


def joined(payloads: list[list[NewConversion]]) -> list[NewConversion]:
    """Several requests' conversions as one batch."""
    return [row for rows in payloads for row in rows]


def split(new: list[bool], payloads: list[list[NewConversion]]) -> list[list[bool]]:
    """``new`` (one flag per row of all ``payloads``) cut back into each payload's flags."""
    answers, start = [], 0
    for rows in payloads:
        answers.append(new[start : start + len(rows)])
        start += len(rows)
    return answers


# -- rollups: counters kept as events arrive (see abconv.store.rollups) ------------
# Days are the UTC date of the event's own timestamp. Every count is a sum of
# per-visitor contributions, so arrival order does not change it.


def _key(*names: str) -> list[sa.Column[str]]:
    return [sa.Column(name, sa.String(64), primary_key=True) for name in names]


def _phase_key() -> sa.Column[int]:
    """The phase the counted visitors were first exposed in (README, "Phases")."""
    return sa.Column("phase", sa.Integer(), primary_key=True, autoincrement=False)


ROLLUP_EXPOSURE = sa.Table(  # visitors first exposed on that day
    "rollup_exposure",
    SQLModel.metadata,
    *_key("experiment", "variant"),
    _phase_key(),
    sa.Column("day", sa.Date(), primary_key=True),
    sa.Column("visitors", sa.Integer(), nullable=False),
)

ROLLUP_GOAL = sa.Table(  # per-visitor totals of a goal, capped at the recorded cap
    "rollup_goal",
    SQLModel.metadata,
    *_key("experiment", "variant", "goal"),
    _phase_key(),
    sa.Column("kind", sa.String(8), nullable=False),  # "soft" when any row says so
    sa.Column("converting", sa.Integer(), nullable=False),
    sa.Column("events", sa.Integer(), nullable=False),
    sa.Column("value_sum", sa.Float(), nullable=False),
    sa.Column("value_sum_squares", sa.Float(), nullable=False),
    sa.Column("value_sum_cubes", sa.Float(), nullable=False),
    sa.Column("capped_visitors", sa.Integer(), nullable=False),
    sa.Column("events_sum_squares", sa.Float(), nullable=False),  # Σ events² per visitor
    sa.Column("value_events_sum", sa.Float(), nullable=False),  # Σ capped total x events
)
# The counters of a goal's rollup row, which a conversion adds to.
GOAL_SUMS = tuple(c.name for c in ROLLUP_GOAL.columns if not c.primary_key and c.name != "kind")

ROLLUP_GOAL_DAY = sa.Table(  # first conversions on the goal, and events, that day
    "rollup_goal_day",
    SQLModel.metadata,
    *_key("experiment", "variant", "goal"),
    _phase_key(),
    sa.Column("day", sa.Date(), primary_key=True),
    sa.Column("converting", sa.Integer(), nullable=False),
    sa.Column("events", sa.Integer(), nullable=False),
)

ROLLUP_PAIR = sa.Table(  # visitors with conversions on both goals, for every ordered pair
    "rollup_pair",
    SQLModel.metadata,
    *_key("experiment", "variant", "first_goal", "then_goal"),
    _phase_key(),
    sa.Column("both", sa.Integer(), nullable=False),
    # of those, visitors whose last then_goal conversion is at or after their first first_goal one
    sa.Column("then_after_first", sa.Integer(), nullable=False),
)

ROLLUP_VISITOR_GOAL = sa.Table(  # a visitor's conversions on a goal, summed
    "rollup_visitor_goal",
    SQLModel.metadata,
    *_key("experiment"),
    sa.Column("visitor", sa.String(128), primary_key=True),
    *_key("goal"),
    sa.Column("variant", sa.String(64), nullable=False),
    sa.Column("phase", sa.Integer(), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("first_at", sa.DateTime(), nullable=False),  # naive UTC
    sa.Column("last_at", sa.DateTime(), nullable=False),
    sa.Column("total", sa.Float(), nullable=False),  # uncapped sum of values (None counts 0)
    sa.Column("events", sa.Integer(), nullable=False),
)

ROLLUP_CAP = sa.Table(  # the cap rollup_goal was built with; no row: no cap
    "rollup_cap",
    SQLModel.metadata,
    *_key("experiment", "goal"),
    sa.Column("cap", sa.Float(), nullable=False),
)

ROLLUP_TABLES = (
    ROLLUP_EXPOSURE,
    ROLLUP_GOAL,
    ROLLUP_GOAL_DAY,
    ROLLUP_PAIR,
    ROLLUP_VISITOR_GOAL,
    ROLLUP_CAP,
)


# -- requests served without being recorded (see abconv.store.excluded) -----------

EXCLUDED_COUNT = sa.Table(  # requests of that day left out for that reason
    "excluded_count",
    SQLModel.metadata,
    *_key("experiment", "reason"),
    sa.Column("day", sa.Date(), primary_key=True),
    sa.Column("requests", sa.Integer(), nullable=False),
)
