"""SQLite's hot-path writes (abconv.store.sqlite_writes): many rows per statement,
states and caps in one query, store what row by row stored."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from abconv.store import NewConversion, Store, sqlite_writes
from tests.test_rollups import assert_same_rows, rollup_rows

AT = datetime(2026, 3, 2, 12, 0, 0, 123456)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    store = Store(f"sqlite:///{tmp_path / 'hot.sqlite3'}")
    store.upgrade_schema()
    yield store
    store.dispose()


def exposure(visitor: str, variant: str = "a", at: datetime = AT, phase: int = 1) -> dict[str, Any]:
    return {"experiment": "shop", "visitor": visitor, "variant": variant, "created_at": at,
            "phase": phase}  # fmt: skip


def test_grouped_exposures_count_a_shared_row_for_its_first_request(store: Store) -> None:
    hot = store.database.hot
    assert hot is not None
    payloads = [
        [exposure("v1"), exposure("v2", "b")],
        [exposure("v2", "b"), exposure("v3")],  # v2 is the first request's
        [exposure("v1")],
    ]
    with hot.transaction() as connection:
        assert sqlite_writes.insert_exposures(connection, payloads) == [2, 1, 0]
    with hot.transaction() as connection:  # all stored already
        assert sqlite_writes.insert_exposures(connection, payloads) == [0, 0, 0]
    assert store.visitors_by_variant("shop") == {"a": 2, "b": 1}
    assert store.count_rows("exposure", "shop") == 3


def test_rows_partly_stored_already_count_only_those_stored_now(store: Store) -> None:
    """One statement, some of whose rows were stored by an earlier transaction
    (as by another worker): only the others count, in the answer and the rollups."""
    hot = store.database.hot
    assert hot is not None
    with hot.transaction() as connection:
        assert sqlite_writes.insert_exposures(connection, [[exposure("v2", "b")]]) == [1]
        assert sqlite_writes.insert_exposures(connection, [[exposure("v9")]]) == [1]
    payloads = [[exposure("v1"), exposure("v2", "b")], [exposure("v3", "b"), exposure("v9")]]
    with hot.transaction() as connection:
        assert sqlite_writes.insert_exposures(connection, payloads) == [1, 1]
    assert store.visitors_by_variant("shop") == {"a": 2, "b": 2}

    def purchase(visitor: str, event_id: str | None) -> NewConversion:
        return NewConversion("shop", "a", visitor, "purchase", "hard", 10.0, event_id, AT)

    with hot.transaction() as connection:
        assert sqlite_writes.insert_conversions(connection, [purchase("v1", "e1")]) == [True]
    rows = [purchase("v1", "e1"), purchase("v1", "e2"), purchase("v9", None), purchase("v9", "e1")]
    with hot.transaction() as connection:
        assert sqlite_writes.insert_conversions(connection, rows) == [False, True, True, True]
    assert store.count_rows("conversion", "shop") == 4
    incremental = rollup_rows(store, "shop")
    store.rebuild_rollups("shop")
    assert_same_rows(rollup_rows(store, "shop"), incremental)


def test_a_batch_of_more_rows_than_a_statement_takes_stores_each_once(store: Store) -> None:
    """Several multi-row statements; repeated exposures and event ids, rows without
    event id, days and phases mixed: the rows and rollups a rebuild gives."""
    many = 3 * sqlite_writes.CHUNK + 7
    visitors = [f"v{n}" for n in range(many)]
    exposures = [
        exposure(v, "ab"[n % 2], AT - timedelta(days=n % 3), 1 + n % 2)
        for n, v in enumerate(visitors)
    ]
    exposures += exposures[:20]  # sent twice: stored once
    sends = [(1, 2.5), (1, 9.0), (None, None)]  # event 1 twice, one without event id

    def credit(found: dict[tuple[str, str], Any]) -> list[NewConversion]:
        return [
            NewConversion("shop", found[(v, "shop")].variant, v, "purchase", "hard", value,
                          None if event is None else f"e{event}-{n % 5}",
                          AT + timedelta(hours=n % 30), found[(v, "shop")].phase)
            for n, v in enumerate(visitors) for event, value in sends
        ]  # fmt: skip

    new_exposures, rows, inserted = store.ingest(exposures, visitors, credit)
    assert new_exposures == many
    assert inserted == [True, False, True] * many
    assert store.count_rows("exposure", "shop") == many
    assert store.count_rows("conversion", "shop") == 2 * many
    value_sums = {r["variant"]: r["value_sum"] for r in store.conversions_by_variant("shop")}
    assert value_sums == {"a": 2.5 * len(visitors[0::2]), "b": 2.5 * len(visitors[1::2])}
    incremental = rollup_rows(store, "shop")
    store.rebuild_rollups("shop")
    assert_same_rows(rollup_rows(store, "shop"), incremental)
    # The same batch again, but for its rows without event id, changes nothing.
    sends = sends[:2]
    again = store.ingest(exposures, visitors, credit)
    assert again[0] == 0 and again[2] == [False, False] * many
    assert_same_rows(rollup_rows(store, "shop"), incremental)


def test_conversions_with_states_and_caps_read_in_one_query_equal_a_rebuild(
    store: Store,
) -> None:
    store.record_exposures("v1", {"shop": "a"}, AT)
    store.record_exposures("v2", {"shop": "b"}, AT)
    store.rebuild_rollups("shop", caps={"shop": {"purchase": 20.0}})  # records a cap
    sent = [
        NewConversion("shop", "a", "v1", "newsletter", "soft", None, "n1", AT),
        NewConversion("shop", "a", "v1", "purchase", "hard", 15.0, "p1", AT + timedelta(hours=1)),
        NewConversion("shop", "b", "v2", "purchase", "hard", 30.0, "p1", AT - timedelta(days=1)),
        NewConversion("shop", "a", "v1", "purchase", "hard", 15.0, "p2", AT + timedelta(days=1)),
    ]
    for row in sent:
        assert store.record_conversions([row]) == [True]
    assert store.record_conversions(sent[1:2]) == [False]
    incremental = rollup_rows(store, "shop")
    store.rebuild_rollups("shop", caps={"shop": {"purchase": 20.0}})
    assert_same_rows(rollup_rows(store, "shop"), incremental)
    goal = {(r[1], r[2]): r for r in incremental["rollup_goal"]}
    assert goal[("a", "purchase")][10] == 1  # v1's 30 capped at 20: one capped visitor
