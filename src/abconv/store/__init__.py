"""Storage: tables, migrations, event writes, rollups, reads for results.
Nothing outside this package touches SQL; everything else talks to :class:`Store`.

``database``        :class:`Store`, the one face of the package
``connections``     the engine, transactions and locks of one database
``schema``          Alembic migrations (``migrations/``), run at start-up
``tables``          the tables, and the values passed in and out
``events``          exposure and conversion writes (duplicates change nothing)
``rollups``         counters kept as events arrive, in the event's transaction
``rollup_rebuild``  the same counters recomputed from the raw events
``results``         reads for results: rollups → :class:`ResultCounts`
``counts``          :class:`ResultCounts` and its parts (plain values)
``phases``          the phases of experiments: their numbers, starts and definitions
``excluded``        counters of the requests served without being recorded
``sqlite``          SQLite specifics: pragmas, writers' file lock, the hot path
``postgres``        PostgreSQL's hot path: prepared statements in libpq's pipeline
``postgres_writes`` the writes PostgreSQL's hot path groups into one transaction
``exposure_cache``  the per-worker cache of recorded exposures
``outage``          failing fast while the database hangs
"""

from __future__ import annotations

from abconv.store import schema
from abconv.store.counts import DayCounts, GoalCounts, PairCounts, ResultCounts
from abconv.store.database import Store, normalise_url, utcnow
from abconv.store.exposure_cache import ExposureCache
from abconv.store.outage import UNAVAILABLE
from abconv.store.phases import StoredPhase
from abconv.store.tables import CONVERSION, EXPOSURE, NewConversion, StoredExposure

__all__ = [
    "CONVERSION",
    "EXPOSURE",
    "DayCounts",
    "ExposureCache",
    "GoalCounts",
    "NewConversion",
    "PairCounts",
    "ResultCounts",
    "Store",
    "StoredExposure",
    "StoredPhase",
    "UNAVAILABLE",
    "normalise_url",
    "schema",
    "utcnow",
]
