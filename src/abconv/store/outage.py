"""Failing fast while the database hangs.

A database that refuses connections fails every request at once; one that
accepts them and never answers makes each request wait for the connect
timeout (2 s), and with gunicorn's sync workers the whole worker waits. So
after a failure that was slow, requests fail at once (503, or a degraded
assignment) while a background thread probes the database; the first probe
that succeeds ends it. Fast failures change nothing: each request tries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa

#: What a database that cannot be reached or written raises: refused or cut
#: connections, timeouts, a read-only SQLite file (OperationalError), a closed
#: connection (InterfaceError), no free connection in the pool (TimeoutError).
UNAVAILABLE: tuple[type[Exception], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,
)


class DatabaseHanging(sa.exc.OperationalError):
    """Raised without trying while the database is known to hang."""

    def __init__(self) -> None:
        reason = ConnectionError("the database hangs; not tried until a probe gets an answer")
        super().__init__(None, None, reason)


class HangGuard:
    """Per process: fail at once after a slow failure, until ``probe`` succeeds.

    ``slow`` and ``interval`` are in seconds.
    """

    def __init__(self, probe: Callable[[], None], slow: float = 0.5, interval: float = 0.5):
        self.probe = probe
        self.slow = slow
        self.interval = interval
        self._hanging = False
        self._closed = threading.Event()
        self._lock = threading.Lock()

    @property
    def hanging(self) -> bool:
        return self._hanging

    @contextmanager
    def watch(self) -> Iterator[None]:
        """Around one use of the database."""
        if self._hanging:
            raise DatabaseHanging()
        started = time.monotonic()
        try:
            yield
        except UNAVAILABLE as error:
            if time.monotonic() - started >= self.slow and not _answered(error):
                self._start_probing()
            raise

    def close(self) -> None:
        """Stop probing (tests; a worker just exits)."""
        self._closed.set()

    def _start_probing(self) -> None:
        with self._lock:
            if self._hanging or self._closed.is_set():
                return
            self._hanging = True
        threading.Thread(target=self._probe_until_answered, daemon=True).start()

    def _probe_until_answered(self) -> None:
        while not self._closed.wait(self.interval):
            try:
                self.probe()
            except Exception:  # any failure is "no answer yet"; a thread must not die of it
                continue
            break
        self._hanging = False


def _answered(error: Exception) -> bool:
    """A deadlock or a serialisation failure (SQLSTATE class 40): the database
    answered, after a wait that says nothing about its health."""
    return str(getattr(getattr(error, "orig", None), "sqlstate", "") or "").startswith("40")
