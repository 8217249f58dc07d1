"""The phases of experiments (README, "Phases"): a numbered record each, with
its start and the definition it ran with.

Several servers share one database and may notice an edited file at
different moments, so starting a phase is idempotent: "add phase n + 1 if
the latest phase's definition differs", the key (experiment, number)
refusing a second phase n + 1; a server that loses the race reads the
winner's phase and, when it has the same definition, uses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from abconv.store.connections import Database, utcnow
from abconv.store.tables import PHASE

# Tries at a new phase when other servers keep adding different ones at once.
_ATTEMPTS = 5


@dataclass(frozen=True)
class StoredPhase:
    number: int
    started_at: datetime  # naive UTC
    definition: dict[str, Any] | None  # None: not known yet (made by the migration)

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "started_at": self.started_at.isoformat() + "Z",
            "definition": self.definition,
        }


class Phases:
    """Reads and starts phases of one database."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._insert = database.insert(PHASE).on_conflict_do_nothing(
            index_elements=["experiment", "number"]
        )

    def of(self, experiment: str) -> list[StoredPhase]:
        """The phases of ``experiment``, oldest first."""
        with self.database.reading() as conn:
            return _phases(conn, experiment)

    def current(self, experiment: str, definition: dict[str, Any]) -> StoredPhase:
        """The phase ``experiment`` runs in with ``definition``: the latest one when
        its definition is this one (or unknown: then it is filled in), else a
        new one, started now."""
        text = _text(definition)
        for _ in range(_ATTEMPTS):
            with self.database.writing() as conn:
                latest = _latest(conn, experiment)
                if latest is not None and latest.definition in (None, definition):
                    if latest.definition is None:
                        _fill_in(conn, experiment, latest.number, text)
                    return StoredPhase(latest.number, latest.started_at, definition)
                number = 1 if latest is None else latest.number + 1
                row = {"experiment": experiment, "number": number, "started_at": utcnow()}
                conn.execute(self._insert, {**row, "definition": text})
        raise RuntimeError(f"experiment {experiment!r}: phases keep changing under this server")


def _text(definition: dict[str, Any]) -> str:
    return json.dumps(definition, sort_keys=True)


def _phase(row: Any) -> StoredPhase:
    definition = None if row.definition is None else json.loads(row.definition)
    return StoredPhase(int(row.number), row.started_at, definition)


def _phases(conn: Connection, experiment: str) -> list[StoredPhase]:
    query = sa.select(PHASE).where(PHASE.c.experiment == experiment).order_by(PHASE.c.number)
    return [_phase(row) for row in conn.execute(query)]


def _latest(conn: Connection, experiment: str) -> StoredPhase | None:
    query = (
        sa.select(PHASE)
        .where(PHASE.c.experiment == experiment)
        .order_by(PHASE.c.number.desc())
        .limit(1)
    )
    row = conn.execute(query).first()
    return None if row is None else _phase(row)


def _fill_in(conn: Connection, experiment: str, number: int, text: str) -> None:
    conn.execute(
        PHASE.update()
        .where(PHASE.c.experiment == experiment, PHASE.c.number == number)
        .where(PHASE.c.definition.is_(None))
        .values(definition=text)
    )
