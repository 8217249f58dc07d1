"""The tables, and the values passed between the store and its callers."""

from __future__ import annotations

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


EXPOSURE = Exposure.__table__  # type: ignore[attr-defined]
CONVERSION = Conversion.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class StoredExposure:
    experiment: str
    variant: str
    created_at: datetime  # naive UTC


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
