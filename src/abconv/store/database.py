"""The Store: the one face of storage that the rest of abconv talks to.

It puts together the package's parts, each in a module named for what it
owns: :mod:`~abconv.store.connections` (engine, transactions, locks),
:mod:`~abconv.store.schema` (Alembic migrations), :mod:`~abconv.store.events`
(exposure and conversion writes), :mod:`~abconv.store.rollups` and
:mod:`~abconv.store.rollup_rebuild` (counters kept as events arrive, and
recomputed), :mod:`~abconv.store.results` (reads for results).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from abconv.store import results, schema
from abconv.store.connections import Database, normalise_url, utcnow
from abconv.store.counts import ResultCounts
from abconv.store.events import Events
from abconv.store.excluded import ExcludedCounts
from abconv.store.phases import Phases, StoredPhase
from abconv.store.rollups import Rollups
from abconv.store.tables import CONVERSION, EXPOSURE, NewConversion, StoredExposure

__all__ = ["Store", "normalise_url", "utcnow"]


class Store:
    """One database: its schema, its events, its rollups and the reads for results."""

    def __init__(self, url: str) -> None:
        self.database = Database(url)
        self.url, self.engine = self.database.url, self.database.engine
        self.is_sqlite = self.database.is_sqlite
        self.hang_guard = self.database.hang_guard
        self._hot = self.database.hot
        self.events = Events(self.database, Rollups(self.database))
        self.excluded = ExcludedCounts(self.database)
        self.phases = Phases(self.database)

    # -- the database --------------------------------------------------------

    @property
    def schema_ready(self) -> bool:
        return self.database.schema_ready

    def upgrade_schema(self) -> schema.Upgrade:
        return self.database.upgrade_schema()

    def ensure_schema(self) -> None:
        self.database.ensure_schema()

    def _migrating(self) -> AbstractContextManager[Connection]:
        return self.database.migrating()

    def dispose(self) -> None:
        self.database.dispose()

    def ping(self) -> None:
        self.database.ping()

    def writable(self) -> bool:
        return self.database.writable()

    def writing(self) -> AbstractContextManager[Connection]:
        return self.database.writing()

    def _reading(self) -> AbstractContextManager[Connection]:
        return self.database.reading()

    # -- events --------------------------------------------------------------

    def exposures_of(self, visitor: str, experiments: Sequence[str]) -> dict[str, StoredExposure]:
        return self.events.exposures_of(visitor, experiments)

    def exposures_for(
        self, conn: Connection, visitors: Iterable[str]
    ) -> dict[tuple[str, str], StoredExposure]:
        return self.events.exposures_for(conn, visitors)

    def record_exposures(
        self,
        visitor: str,
        variants: dict[str, str],
        at: datetime | None = None,
        phases: Mapping[str, int] | None = None,
    ) -> dict[str, str]:
        return self.events.record_exposures(visitor, variants, at, phases)

    def record_exposures_counted(
        self,
        visitor: str,
        variants: dict[str, str],
        phases: Mapping[str, int] | None = None,
    ) -> tuple[dict[str, str], int]:
        """:meth:`record_exposures`, and how many rows were new."""
        return self.events.record_exposures_counted(visitor, variants, None, phases)

    @property
    def inserts_first(self) -> bool:
        """See :attr:`abconv.store.events.Events.inserts_first`."""
        return self.events.inserts_first

    def known_exposures(
        self, visitor: str, experiments: Sequence[str]
    ) -> dict[str, StoredExposure] | None:
        return self.events.known_exposures(visitor, experiments)

    def insert_exposures(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        return self.events.insert_exposures(conn, rows)

    def conversions_with_event(self, visitor: str, event_id: str) -> list[NewConversion]:
        return self.events.conversions_with_event(visitor, event_id)

    def convert(
        self, visitor: str, event_id: str | None, rows: Sequence[NewConversion]
    ) -> tuple[list[NewConversion], list[bool]]:
        return self.events.convert(visitor, event_id, rows)

    def insert_conversions(self, conn: Connection, rows: Iterable[NewConversion]) -> list[bool]:
        return self.events.insert_conversions(conn, rows)

    def record_conversions(self, rows: Sequence[NewConversion]) -> list[bool]:
        return self.events.record_conversions(rows)

    def ingest(
        self,
        exposures: list[dict[str, Any]],
        visitors: Iterable[str],
        credit: Callable[[dict[tuple[str, str], StoredExposure]], list[NewConversion]],
    ) -> tuple[int, list[NewConversion], list[bool]]:
        return self.events.ingest(exposures, visitors, credit)

    # -- excluded requests (abconv.store.excluded) ----------------------------

    def count_excluded(self, reasons: Mapping[str, str], day: date) -> None:
        """One request more for each experiment → reason of ``reasons``, on ``day``."""
        self.excluded.add(reasons, day)

    def excluded_counts(self, experiment: str) -> list[tuple[date, str, int]]:
        """(day, reason, requests) of ``experiment``, by day then reason."""
        return self.excluded.of(experiment)

    # -- phases (abconv.store.phases) ------------------------------------------

    def phases_of(self, experiment: str) -> list[StoredPhase]:
        """The phases of ``experiment``, oldest first."""
        return self.phases.of(experiment)

    def current_phase(self, experiment: str, definition: dict[str, Any]) -> StoredPhase:
        """The phase ``experiment`` runs in with ``definition``, started now if new."""
        return self.phases.current(experiment, definition)

    # -- rollups and results -------------------------------------------------

    def result_counts(
        self, experiment: str, caps: Mapping[str, float], phase: int = 1
    ) -> ResultCounts:
        """The experiment's counts of ``phase`` for its results, from the rollups alone.

        ``caps`` (goal → cap) are the experiment file's; when they differ from
        the caps the rollups were built with, the per-goal totals are first
        recomputed with them from the visitors' totals (once: the new caps are
        recorded), not from the events.
        """
        wanted = {goal: float(cap) for goal, cap in caps.items()}
        with self.database.reading() as conn:
            built_with = results.recorded_caps(conn, experiment)
        if built_with != wanted:
            with _overflow_as_value_error(experiment):
                self.events.rollups.recap(experiment, wanted)
        with self.database.reading() as conn:
            return results.result_counts(conn, experiment, phase)

    def rebuild_rollups(
        self,
        experiment: str | None = None,
        caps: Mapping[str, Mapping[str, float]] | None = None,
    ) -> list[str]:
        """Recompute rollups from the raw events in one transaction; return the
        experiments done (see :meth:`abconv.store.rollups.Rollups.rebuild`).

        Raises ``ValueError`` when stored values overflow the database's
        arithmetic (only values written around the API can), changing nothing.
        """
        with _overflow_as_value_error(experiment or "any"):
            return self.events.rollups.rebuild(experiment, caps)

    # -- scans of the raw events: a reference for tests and tools; results read rollups --

    def count_rows(self, table: str, experiment: str | None = None) -> int:
        """Rows in ``exposure`` or ``conversion``, optionally of one experiment."""
        target = {"exposure": EXPOSURE, "conversion": CONVERSION}[table]
        query = sa.select(sa.func.count()).select_from(target)
        if experiment is not None:
            query = query.where(target.c.experiment == experiment)
        with self._reading() as conn:
            return int(conn.execute(query).scalar_one())

    def visitors_by_variant(self, experiment: str) -> dict[str, int]:
        query = (
            sa.select(EXPOSURE.c.variant, sa.func.count())
            .where(EXPOSURE.c.experiment == experiment)
            .group_by(EXPOSURE.c.variant)
        )
        with self._reading() as conn:
            return {variant: int(n) for variant, n in conn.execute(query).all()}

    def conversions_by_variant(
        self, experiment: str, caps: Mapping[str, float] | None = None
    ) -> list[dict[str, Any]]:
        """Per (goal, variant): converting visitors, value sum and sums of squared
        and cubed per-visitor values, the sufficient statistics of the analysis.

        ``caps`` (goal → cap) winsorises each visitor's total value on a goal
        at its cap before the sums; ``capped_visitors`` counts the totals
        cut. Raises ``ValueError`` when the stored values overflow the
        database's arithmetic (PostgreSQL refuses a square above 1e308).
        """
        per_visitor = (
            sa.select(
                CONVERSION.c.goal,
                CONVERSION.c.variant,
                CONVERSION.c.visitor,
                sa.func.coalesce(sa.func.sum(CONVERSION.c.value), 0.0).label("total"),
            )
            .where(CONVERSION.c.experiment == experiment)
            .group_by(CONVERSION.c.goal, CONVERSION.c.variant, CONVERSION.c.visitor)
            .subquery()
        )
        total = per_visitor.c.total
        over_cap = [
            (sa.and_(per_visitor.c.goal == goal, total > cap), sa.literal(cap, sa.Float))
            for goal, cap in (caps or {}).items()
        ]
        capped = sa.select(
            per_visitor.c.goal,
            per_visitor.c.variant,
            (sa.case(*over_cap, else_=total) if over_cap else total).label("total"),
            (
                sa.case(*((over, 1) for over, _ in over_cap), else_=0)
                if over_cap
                else sa.literal(0)
            ).label("capped"),
        ).subquery()
        query = sa.select(
            capped.c.goal,
            capped.c.variant,
            sa.func.count().label("conversions"),
            sa.func.sum(capped.c.total).label("value_sum"),
            sa.func.sum(capped.c.total * capped.c.total).label("value_sum_squares"),
            sa.func.sum(capped.c.total * capped.c.total * capped.c.total).label("value_sum_cubes"),
            sa.func.sum(capped.c.capped).label("capped_visitors"),
        ).group_by(capped.c.goal, capped.c.variant)
        try:
            with self._reading() as conn:
                return [dict(row._mapping) for row in conn.execute(query).all()]
        except sa.exc.DataError as error:
            raise ValueError(
                f"value_sum, value_sum_squares or value_sum_cubes of experiment {experiment!r} "
                f"overflows the database's arithmetic: {error.orig}"
            ) from error


@contextmanager
def _overflow_as_value_error(experiment: str) -> Iterator[None]:
    """PostgreSQL refuses a sum of squares or cubes above 1e308; say which data."""
    try:
        yield
    except sa.exc.DataError as error:
        raise ValueError(
            f"value_sum, value_sum_squares or value_sum_cubes of experiment {experiment!r} "
            f"overflows the database's arithmetic: {error.orig}"
        ) from error
