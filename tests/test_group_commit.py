"""Group commit (abconv.store.group_commit): concurrent writes of one process
share one transaction, each gets its own answer after the commit, a bad write
fails alone, an outage fails each write, and nothing is lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from abconv.store import NewConversion, Store, group_commit, utcnow
from abconv.store.group_commit import GroupCommit
from abconv.store.outage import HangGuard

THREADS = 6


class Ledger:
    """A stand-in database: transactions of lists, committed or rolled back."""

    def __init__(self) -> None:
        self.committed: list[list[Any]] = []
        self.rolled_back = 0
        self.down = False

    @contextmanager
    def transaction(self) -> Iterator[list[Any]]:
        if self.down:
            raise sa.exc.OperationalError("BEGIN", None, ConnectionRefusedError("refused"))
        written: list[Any] = []
        try:
            yield written
        except BaseException:
            self.rolled_back += 1
            raise
        self.committed.append(written)


def doubled(written: list[Any], payloads: list[int]) -> list[int]:
    """A write that refuses negative numbers."""
    if any(p < 0 for p in payloads):
        raise ValueError(f"negative: {[p for p in payloads if p < 0]}")
    written.extend(payloads)
    return [2 * p for p in payloads]


def held_first(
    group: GroupCommit[Any], queued: int, first: threading.Event
) -> Callable[[], AbstractContextManager[Any]]:
    """``group``'s transactions, the first (``first`` set when it begins) held
    open until ``queued`` writes wait behind it: the writes of the other
    threads then go together in the next."""
    begin = group.transaction

    @contextmanager
    def transaction() -> Iterator[Any]:
        holds = not first.is_set()
        first.set()
        with begin() as connection:
            deadline = time.monotonic() + 10
            while holds and group.waiting < queued and time.monotonic() < deadline:
                time.sleep(0.001)
            yield connection

    return transaction


def run_together(group: GroupCommit[Any], write: Any, payloads: list[Any]) -> list[Any]:
    """``payloads[0]`` first, alone; the others from threads of their own while
    it is held, in one group. Each thread's answer, or the error it raised."""
    begun = threading.Event()
    group.transaction = held_first(group, len(payloads) - 1, begun)

    def one(payload: Any) -> Any:
        try:
            return group.run(write, payload)
        except Exception as error:
            return error

    with ThreadPoolExecutor(len(payloads)) as pool:
        first = pool.submit(one, payloads[0])
        while not begun.is_set() and not first.done():  # its transaction is open (or over)
            time.sleep(0.001)
        rest = [pool.submit(one, payload) for payload in payloads[1:]]
        return [first.result(), *(future.result() for future in rest)]


def test_writes_that_queue_meanwhile_share_the_next_commit_and_get_their_own_answers() -> None:
    ledger = Ledger()
    group = GroupCommit(ledger.transaction)
    answers = run_together(group, doubled, list(range(1, THREADS + 1)))
    assert answers == [2 * n for n in range(1, THREADS + 1)]
    assert ledger.committed[0] == [1]
    assert sorted(ledger.committed[1]) == list(range(2, THREADS + 1))  # one commit for the rest
    assert len(ledger.committed) == 2


def test_a_lone_write_commits_at_once() -> None:
    ledger = Ledger()
    group = GroupCommit(ledger.transaction)
    started = time.monotonic()
    assert group.run(doubled, 4) == 8
    assert time.monotonic() - started < 0.5
    assert ledger.committed == [[4]]
    assert group.waiting == 0 and not group.busy


def writes_started_together() -> Ledger:
    """``THREADS`` threads released at once, each writing its number."""
    ledger = Ledger()
    group = GroupCommit(ledger.transaction, busy_window=3600)
    group.run(doubled, 0)  # a write before: the group is under load
    ledger.committed.clear()
    start = threading.Barrier(THREADS)

    def one(payload: int) -> int:
        start.wait()
        return group.run(doubled, payload)

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(one, range(1, THREADS + 1)))
    assert answers == [2 * n for n in range(1, THREADS + 1)]
    return ledger


def test_writes_that_start_together_share_the_first_commit() -> None:
    """The leader lets the threads about to write queue before it takes the
    queue; without that, the first transaction of each round held only the
    leader's write (the thread that had the GIL)."""
    shared = 0
    for _ in range(20):
        ledger = writes_started_together()
        stored = sorted(p for written in ledger.committed for p in written)
        assert stored == list(range(1, THREADS + 1))
        shared += len(ledger.committed[0]) > 1
    assert shared >= 15


def test_only_a_write_close_behind_another_gives_up_its_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The yield costs a lone write 50-100 µs of latency (timer slack), so a
    write with no other near it, as under light load, goes straight on."""
    pause = time.sleep
    slept: list[float] = []
    monkeypatch.setattr(group_commit.time, "sleep", slept.append)
    ledger = Ledger()
    quiet = GroupCommit(ledger.transaction)  # the default window, 1 ms
    assert quiet.run(doubled, 1) == 2
    pause(0.02)
    assert quiet.run(doubled, 2) == 4
    assert slept == []
    busy = GroupCommit(ledger.transaction, busy_window=3600)
    assert [busy.run(doubled, n) for n in (3, 4)] == [6, 8]
    assert slept == [0]  # the second write followed the first within the window
    assert ledger.committed == [[1], [2], [3], [4]]


def test_a_failing_write_fails_alone_and_its_batch_mates_commit() -> None:
    ledger = Ledger()
    group = GroupCommit(ledger.transaction)
    answers = run_together(group, doubled, [1, 2, -3, 4, 5])
    assert answers[:2] == [2, 4] and answers[3:] == [8, 10]
    assert isinstance(answers[2], ValueError) and "-3" in str(answers[2])
    assert sorted(p for written in ledger.committed for p in written) == [1, 2, 4, 5]
    assert ledger.rolled_back == 2  # the shared transaction, then -3 alone


def test_an_outage_fails_every_write_of_the_group_with_a_database_error() -> None:
    ledger = Ledger()
    group = GroupCommit(ledger.transaction)
    begin = group.transaction

    @contextmanager
    def goes_down() -> Iterator[Any]:
        with begin() as connection:
            yield connection
        ledger.down = True  # after the first commit

    group.transaction = goes_down
    answers = run_together(group, doubled, [1, 2, 3, 4])
    assert answers[0] == 2
    assert all(isinstance(a, sa.exc.OperationalError) for a in answers[1:])
    assert ledger.committed == [[1]]


def test_the_next_leader_takes_over_when_the_queue_outgrows_one_transaction() -> None:
    ledger = Ledger()
    group = GroupCommit(ledger.transaction, most=2)
    answers = run_together(group, doubled, list(range(1, 8)))
    assert answers == [2 * n for n in range(1, 8)]
    assert [len(written) for written in ledger.committed] == [1, 2, 2, 2]
    assert group.waiting == 0 and not group.busy


# -- on the databases --------------------------------------------------------


def writes_of(store: Store) -> GroupCommit[Any]:
    group = store.events._hot_writes or store.events._writes
    assert group is not None  # a file or PostgreSQL: writes are grouped
    return group


def conversion(visitor: str, event_id: str, value: float) -> NewConversion:
    return NewConversion("shop", "a", visitor, "purchase", "hard", value, event_id, utcnow())


def test_grouped_conversions_are_each_stored_once_with_their_rollups(store: Store) -> None:
    group = writes_of(store)
    store.record_exposures("v1", {"shop": "a"})
    store.record_exposures("v2", {"shop": "a"})
    payloads = [
        [conversion("v1", "e1", 10.0)],
        [conversion("v2", "e1", 5.0)],  # another visitor's e1: another event
        [conversion("v1", "e1", 10.0)],  # v1's e1 again, in the same group
        [conversion("v1", "e2", 1.0), conversion("v2", "e2", 2.0)],
    ]
    before = group.transactions
    answers = run_together(group, group_write(store, "conversions"), payloads)
    assert answers == [[True], [True], [False], [True, True]]
    assert group.transactions - before == 2  # the first alone, then the rest together
    assert store.count_rows("conversion", "shop") == 4
    (row,) = store.conversions_by_variant("shop")
    assert (row["conversions"], row["value_sum"]) == (2, 18.0)


def test_a_bad_exposure_fails_alone_and_the_others_of_its_group_are_stored(
    store: Store,
) -> None:
    group = writes_of(store)
    at = utcnow()
    rows = [[{"experiment": "shop", "visitor": f"v{n}", "variant": "a", "created_at": at,
              "phase": 1}] for n in range(4)]  # fmt: skip
    rows.insert(2, [{"experiment": "shop", "visitor": "bad", "variant": None, "created_at": at,
                     "phase": 1}])  # fmt: skip
    answers = run_together(group, group_write(store, "exposures"), rows)
    assert answers[:2] == [1, 1] and answers[3:] == [1, 1]
    assert isinstance(answers[2], sa.exc.DBAPIError)
    assert store.count_rows("exposure", "shop") == 4


def test_an_unreachable_database_fails_each_grouped_write() -> None:
    store = Store("postgresql://abconv@127.0.0.1:9/none")  # nothing listens on port 9
    store.database.schema_ready = True  # nothing to migrate: fail on the write itself
    try:
        group = writes_of(store)
        payloads = [[conversion(f"v{n}", "e1", 1.0)] for n in range(4)]
        answers = run_together(group, group_write(store, "conversions"), payloads)
        assert all(isinstance(a, sa.exc.OperationalError) for a in answers)
    finally:
        store.dispose()


def test_many_threads_lose_nothing_and_double_nothing(store: Store) -> None:
    group = writes_of(store)
    visitors = [f"visitor-{n}" for n in range(40)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda v: store.record_exposures(v, {"shop": "a"}), visitors))
        sent = [conversion(v, f"e{n % 3}", 1.0) for n, v in enumerate(visitors * 3)]
        answers = list(pool.map(lambda row: store.record_conversions([row]), sent + sent[:30]))
    assert sum(new for (new,) in answers) == len({(r.visitor, r.event_id) for r in sent})
    assert store.count_rows("exposure", "shop") == 40
    assert store.count_rows("conversion", "shop") == len({(r.visitor, r.event_id) for r in sent})
    (row,) = store.conversions_by_variant("shop")
    assert row["conversions"] == 40
    assert group.transactions <= 40 + 150  # never more than one a write


def group_write(store: Store, kind: str) -> Any:
    """The write function ``store`` groups for ``kind``, as record_* pass it."""
    hot = store.events._hot_writes is not None
    from abconv.store import events as module
    from abconv.store import postgres_writes

    if kind == "exposures":
        return module._exposures_hot if hot else postgres_writes.exposures_written
    return module._conversions_hot if hot else postgres_writes.conversions_written


class _Deadlock(Exception):
    sqlstate = "40P01"  # PostgreSQL's deadlock_detected


def test_a_deadlock_between_two_groups_is_not_taken_for_a_hanging_database() -> None:
    """Two workers' groups can deadlock; PostgreSQL answers one after a second
    (deadlock_timeout), which must not make every request fail at once."""
    guard = HangGuard(lambda: None, slow=0.0)  # any failure counts as slow
    try:
        with pytest.raises(sa.exc.OperationalError), guard.watch():
            raise sa.exc.OperationalError("INSERT", None, _Deadlock())
        assert not guard.hanging
        with pytest.raises(sa.exc.OperationalError), guard.watch():
            raise sa.exc.OperationalError("INSERT", None, ConnectionError("timed out"))
        assert guard.hanging
    finally:
        guard.close()
