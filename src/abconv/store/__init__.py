"""Storage: tables, writes and reads. Nothing outside this package touches SQL.

``database`` holds :class:`Store` (every query), ``tables`` the tables and the
values passed in and out, ``sqlite`` the SQLite specifics, ``exposure_cache``
the per-worker cache of recorded exposures.
"""

from __future__ import annotations

from abconv.store import schema
from abconv.store.database import Store, normalise_url, utcnow
from abconv.store.exposure_cache import ExposureCache
from abconv.store.outage import UNAVAILABLE
from abconv.store.tables import CONVERSION, EXPOSURE, NewConversion, StoredExposure

__all__ = [
    "CONVERSION",
    "EXPOSURE",
    "ExposureCache",
    "NewConversion",
    "Store",
    "StoredExposure",
    "UNAVAILABLE",
    "normalise_url",
    "schema",
    "utcnow",
]
