"""Recorded exposures a worker has seen: a returning visitor costs no query."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from abconv.store.tables import StoredExposure


class ExposureCache:
    """Recorded exposures this process has seen, by visitor, least recently used
    dropped first. Only exposures known to be stored go in, never absences."""

    def __init__(self, max_visitors: int = 100_000) -> None:
        self.max_visitors = max_visitors
        self._visitors: OrderedDict[str, dict[str, StoredExposure]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, visitor: str, experiments: Sequence[str]) -> dict[str, StoredExposure] | None:
        """The exposures to ``experiments``, or None unless every one is known."""
        with self._lock:
            known = self._visitors.get(visitor)
            if known is None or any(key not in known for key in experiments):
                return None
            self._visitors.move_to_end(visitor)
            return {key: known[key] for key in experiments}

    def put(self, visitor: str, exposures: Iterable[StoredExposure]) -> None:
        with self._lock:
            known = self._visitors.setdefault(visitor, {})
            known.update((exposure.experiment, exposure) for exposure in exposures)
            self._visitors.move_to_end(visitor)
            while len(self._visitors) > self.max_visitors:
                self._visitors.popitem(last=False)
