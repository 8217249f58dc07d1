"""Group commit: the concurrent writes of one process share one transaction.

A commit costs more than the statements before it: a WAL flush on
PostgreSQL (milliseconds), the writers' file lock and a WAL append on
SQLite. gunicorn runs a worker's requests on threads, so while one write
commits others queue; the next transaction takes them all and commits once.

No thread of its own and no timer: the first writer to find no transaction
under way leads one, holding whatever queued meanwhile; the others sleep
until it wakes them. Under load (another write began less than
:data:`BUSY_WINDOW` ago), the leader first gives up the GIL once
(``time.sleep(0)``): the worker's other threads run until they block, and
those whose request is about to write queue and join this transaction. In
the benchmark's SQLite new visitors, 42 % of writes committed alone before,
3 % since, and the workers' CPU per request fell 6-14 % on SQLite's write
routes (PostgreSQL's groups were large already: no change). The yield
costs its thread 50-100 µs of wall time (Linux's timer slack rounds the
sleep up, and that pause is what lets the others run), so a write with no
other write near it, most writes under light load, does not yield.

Writes of one kind are merged into one call (one statement for all their
rows, where the kind allows). Each write gets its own answer, and only after
the commit that holds it: a 2xx still means committed. When the shared
transaction fails, each write is retried alone in a transaction of its own,
so one bad write fails only its own request, and an outage fails each with
the error it would have met alone.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

C = TypeVar("C")  # the connection a transaction hands its writes
P = TypeVar("P")  # what one request asks to write
R = TypeVar("R")  # what it gets back

#: Writes of one kind in one transaction: the answers to ``payloads``, in order.
Write = Callable[[C, list[P]], list[R]]

#: A leader yields to the worker's other threads only when another write
#: began within this many seconds before its own: a sign of load.
BUSY_WINDOW = 0.001


class _Job:
    """One request's write, and its answer once the transaction is over."""

    __slots__ = ("write", "payload", "one_statement", "woken", "done", "result", "error")

    def __init__(self, write: Write[Any, Any, Any], payload: Any, one_statement: bool) -> None:
        self.write = write
        self.payload = payload
        self.one_statement = one_statement
        # Done, or asked to lead the next transaction; made only for a job that
        # waits (a leader's own job never does).
        self.woken: threading.Event | None = None
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error, self.done = result, error, True
        if self.woken is not None:
            self.woken.set()

    def answer(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class GroupCommit(Generic[C]):
    """Runs writes in shared transactions made by ``transaction`` (a context
    manager that yields a connection and commits on leaving), at most
    ``most`` writes a transaction.

    ``autocommit``, if given, yields a connection on which each statement
    commits as it runs: a group whose writes are all of one kind that is
    one statement for any number of payloads runs there, without the
    round trips of BEGIN and COMMIT, and holds its row locks for that
    statement only. ``busy_window``: see :data:`BUSY_WINDOW`.
    """

    def __init__(
        self,
        transaction: Callable[[], AbstractContextManager[C]],
        autocommit: Callable[[], AbstractContextManager[C]] | None = None,
        most: int = 64,
        busy_window: float = BUSY_WINDOW,
    ) -> None:
        self.transaction = transaction
        self.autocommit = autocommit
        self.most = most
        self._lock = threading.Lock()
        self._queue: list[_Job] = []
        self._leading = False  # a thread is running a transaction; the queue waits for it
        self.busy_window = busy_window
        self._last_write = -math.inf  # time.monotonic() when the latest write began
        self.transactions = 0  # committed or not (tests: writes were grouped)

    @property
    def busy(self) -> bool:
        """A transaction is under way (later writes queue for the next)."""
        return self._leading

    @property
    def waiting(self) -> int:
        """Writes queued for the next transaction."""
        with self._lock:
            return len(self._queue)

    def run(self, write: Write[C, P, R], payload: P, one_statement: bool = False) -> R:
        """``write(connection, [payload, ...])[i]`` for this ``payload``, once committed.

        ``write`` may be called with other requests' payloads beside this one
        (in the order they came), and again with this one alone if the shared
        transaction fails; it must depend on nothing but its arguments.
        ``one_statement``: ``write`` runs one statement, whatever the payloads.
        """
        job = _Job(write, payload, one_statement)
        with self._lock:
            now = time.monotonic()
            busy = now - self._last_write < self.busy_window
            self._last_write = now
            self._queue.append(job)
            leads = not self._leading
            self._leading = True
            if not leads:
                woken = job.woken = threading.Event()
        if not leads:
            woken.wait()
            if job.done:
                return job.answer()  # type: ignore[no-any-return]
        # This thread leads: its job is first in the queue. Under load it first
        # gives up the GIL once, so that threads about to queue a write do so
        # and join this transaction instead of the next (see the module's docstring).
        if busy:
            time.sleep(0)
        with self._lock:
            batch = self._queue[: self.most]
            del self._queue[: self.most]
        try:
            self._commit(batch)
        finally:
            with self._lock:
                if self._queue:
                    next_leader = self._queue[0].woken
                    assert next_leader is not None  # it queued behind a leader
                    next_leader.set()  # it leads the next transaction
                else:
                    self._leading = False
        return job.answer()  # type: ignore[no-any-return]

    def _commit(self, batch: list[_Job]) -> None:
        """Run ``batch`` in one transaction and answer each job; alone on failure."""
        kinds: dict[Write[C, Any, Any], list[_Job]]
        if len(batch) == 1:  # a lone write (most, under light load)
            kinds = {batch[0].write: batch}
        else:
            kinds = {}
            for job in batch:
                kinds.setdefault(job.write, []).append(job)
        self.transactions += 1
        begin = self.transaction
        if self.autocommit is not None and len(kinds) == 1 and batch[0].one_statement:
            begin = self.autocommit
        try:
            with begin() as connection:
                answers = [
                    (jobs, write(connection, [job.payload for job in jobs]))
                    for write, jobs in kinds.items()
                ]
        except Exception as error:
            if len(batch) == 1:
                batch[0].finish(error=error)
                return
            for job in batch:
                self._commit([job])
            return
        except BaseException as error:  # the thread is stopping: nobody may wait forever
            for job in batch:
                job.finish(error=error)
            raise
        for jobs, results in answers:
            for job, result in zip(jobs, results, strict=True):
                job.finish(result)
