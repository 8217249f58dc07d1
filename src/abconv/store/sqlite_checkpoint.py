"""WAL checkpoints off the requests' path.

SQLite copies the WAL back into the database (a checkpoint) in the
connection whose commit takes the WAL past 1000 pages, before that commit
returns: milliseconds of work, done while abconv's writers' file lock is
held, so every writer of every worker waits for it. The hot path's
connections turn that off (``PRAGMA wal_autocheckpoint=0``) and tell a
thread of their process when they commit; the thread checkpoints a moment
later, PASSIVE: writers go on meanwhile, and nobody waits for the copy.

The WAL restarts from its beginning only when a writer finds it all copied
back. Under steady writes some frames are always newer than the last
checkpoint; past :data:`LIMIT` pages the thread copies those few while it
holds the writers' lock, so that the next writer restarts the WAL: it never
grows without bound. A checkpoint is safe to interrupt (a killed process
leaves a WAL that SQLite reads as before), and the lock is a ``flock`` that
dies with its process.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress

# Seconds between checkpoints while writes go on: commits in between share one.
INTERVAL = 0.1
# WAL pages past which a checkpoint finishes under the writers' lock.
LIMIT = 4000


class Checkpointer:
    """Checkpoints ``database`` from a daemon thread of this process, started
    at its first :meth:`committed` (again in a forked child)."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        writer_lock: AbstractContextManager[object],
        interval: float = INTERVAL,
        limit: int = LIMIT,
    ) -> None:
        self.connect = connect
        self.writer_lock = writer_lock
        self.interval = interval
        self.limit = limit
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._starting = threading.Lock()
        self.checkpoints = 0  # run (tests)
        self.under_lock = 0  # of which finished holding the writers' lock (tests)

    def committed(self) -> None:
        """A hot-path connection committed: checkpoint soon."""
        if self._pid != os.getpid():
            self._start()
        if not self._wake.is_set():
            self._wake.set()

    def close(self) -> None:
        """Stop the thread (it finishes the checkpoint under way first)."""
        thread = self._thread
        self._stop.set()
        self._wake.set()
        if thread is not None and self._pid == os.getpid() and thread.is_alive():
            thread.join(timeout=5)
        self._thread, self._pid = None, 0
        self._stop, self._wake = threading.Event(), threading.Event()

    def _start(self) -> None:
        with self._starting:
            if self._pid == os.getpid():
                return
            # A forked child inherits no thread: it starts its own.
            self._stop, self._wake = threading.Event(), threading.Event()
            thread = threading.Thread(
                target=self._run, args=(self._stop, self._wake), name="abconv-wal", daemon=True
            )
            thread.start()
            self._thread, self._pid = thread, os.getpid()

    def _run(self, stop: threading.Event, wake: threading.Event) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while True:
                wake.wait()
                if stop.wait(self.interval):
                    return
                wake.clear()
                try:
                    if connection is None:
                        connection = self.connect()
                    self.checkpoint(connection)
                except Exception:
                    # The file went away or is read-only: try anew after the next commit.
                    if connection is not None:
                        with suppress(sqlite3.Error):
                            connection.close()
                    connection = None
        finally:
            if connection is not None:
                with suppress(sqlite3.Error):
                    connection.close()

    def checkpoint(self, connection: sqlite3.Connection) -> None:
        """One PASSIVE checkpoint; when the WAL is past the limit, another under
        the writers' lock, for the frames written meanwhile: the next writer
        then finds the WAL all copied back and restarts it."""
        ((_, pages, _),) = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self.checkpoints += 1
        if pages > self.limit:
            with self.writer_lock:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.under_lock += 1
