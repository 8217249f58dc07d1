"""Recorded exposures a worker has seen: a returning visitor costs no query."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime

from abconv.store.tables import StoredExposure

# (variant, created_at, phase): plain tuples of strings, times and numbers,
# which the garbage collector stops tracking, and then the dicts that hold
# them. Cached StoredExposure objects would stay tracked, two objects a
# visitor with the dict: 100,000 visitors made each full collection about
# 30 ms longer, a pause every request of the worker waits through.
_Entry = tuple[str, datetime, int]


class ExposureCache:
    """Recorded exposures this process has seen, by visitor, least recently used
    dropped first. Only exposures known to be stored go in, never absences."""

    def __init__(self, max_visitors: int = 100_000) -> None:
        self.max_visitors = max_visitors
        self._visitors: OrderedDict[str, dict[str, _Entry]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, visitor: str, experiments: Sequence[str]) -> dict[str, StoredExposure] | None:
        """The exposures to ``experiments``, or None unless every one is known."""
        with self._lock:
            known = self._visitors.get(visitor)
            if known is None or any(key not in known for key in experiments):
                return None
            self._visitors.move_to_end(visitor)
            return {key: StoredExposure(key, *known[key]) for key in experiments}

    def put(self, visitor: str, exposures: Iterable[StoredExposure]) -> None:
        entries = {e.experiment: (e.variant, e.created_at, e.phase) for e in exposures}
        with self._lock:
            known = self._visitors.get(visitor)
            if known is None:
                self._visitors[visitor] = entries
            else:
                known.update(entries)
                self._visitors.move_to_end(visitor)
            while len(self._visitors) > self.max_visitors:
                self._visitors.popitem(last=False)
