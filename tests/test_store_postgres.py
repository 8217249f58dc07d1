"""PostgreSQL's hot path (abconv.store.postgres): the same rows and rollups as a
rebuild, repeated events, insert-first exposures, errors and rollbacks."""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from abconv.store import NewConversion, Store
from abconv.store.postgres import INSERT_EXPOSURES, SELECT_EXPOSURES, as_json
from tests.conftest import POSTGRES_ENV, POSTGRES_URL, postgres_schema
from tests.test_rollups import rollup_rows

pytestmark = pytest.mark.postgres

AT = datetime(2026, 11, 2, 12, 0)


@pytest.fixture
def pg_store() -> Iterator[Store]:
    if not POSTGRES_URL:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    for url in postgres_schema(POSTGRES_URL):
        store = Store(url)
        store.upgrade_schema()
        try:
            yield store
        finally:
            store.dispose()


def conversion(visitor: str, event_id: str | None, experiment: str = "shop", **kw: Any) -> Any:
    return NewConversion(
        experiment, kw.get("variant", "a"), visitor, kw.get("goal", "purchase"),
        kw.get("kind", "hard"), kw.get("value", 10.0), event_id, kw.get("at", AT),
    )  # fmt: skip


def assert_rollups_rebuild_alike(store: Store, experiment: str = "shop") -> None:
    incremental = rollup_rows(store, experiment)
    store.rebuild_rollups(experiment)
    assert rollup_rows(store, experiment) == incremental


def test_a_repeated_event_answers_with_its_rows_and_writes_nothing(pg_store: Store) -> None:
    pg_store.record_exposures("v1", {"shop": "a", "other": "b"}, AT - timedelta(days=1))
    rows = [conversion("v1", "e1"), conversion("v1", "e1", "other", variant="b")]
    assert pg_store.convert("v1", "e1", rows) == ([], [True, True])
    again = [conversion("v1", "e1", value=99.0, at=AT + timedelta(hours=1))]
    earlier, inserted = pg_store.convert("v1", "e1", again)
    assert sorted(earlier, key=lambda row: row.experiment) == sorted(
        rows, key=lambda row: row.experiment
    )
    assert inserted == [False]
    assert pg_store.count_rows("conversion") == 2
    (row,) = pg_store.conversions_by_variant("shop")
    assert (row["conversions"], row["value_sum"]) == (1, 10.0)
    assert_rollups_rebuild_alike(pg_store)
    assert_rollups_rebuild_alike(pg_store, "other")


def test_another_visitors_event_id_is_another_event(pg_store: Store) -> None:
    for visitor in ("v1", "v2"):
        pg_store.record_exposures(visitor, {"shop": "a"}, AT - timedelta(days=1))
        assert pg_store.convert(visitor, "e1", [conversion(visitor, "e1")]) == ([], [True])
    assert pg_store.count_rows("conversion") == 2


def test_an_event_without_rows_only_looks_up_its_id(pg_store: Store) -> None:
    pg_store.record_exposures("v1", {"shop": "a"}, AT - timedelta(days=1))
    pg_store.convert("v1", "e1", [conversion("v1", "e1")])
    earlier, inserted = pg_store.convert("v1", "e1", [])
    assert [row.experiment for row in earlier] == ["shop"] and inserted == []
    assert pg_store.convert("v1", "e2", []) == ([], [])


def test_concurrent_repeats_of_events_store_each_once(pg_store: Store) -> None:
    visitors = [f"v{n}" for n in range(12)]
    for visitor in visitors:
        pg_store.record_exposures(visitor, {"shop": "a"}, AT - timedelta(days=1))
    sent = [(v, f"e{n % 2}") for n, v in enumerate(visitors)] * 4
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda ve: pg_store.convert(ve[0], ve[1], [conversion(*ve)]), sent))
    assert sum(inserted == [True] for _, inserted in answers) == len(visitors)
    assert sum(bool(earlier) for earlier, _ in answers) + len(visitors) <= len(sent)
    assert pg_store.count_rows("conversion") == len(visitors)
    (row,) = pg_store.conversions_by_variant("shop")
    assert (row["conversions"], row["value_sum"]) == (len(visitors), 10.0 * len(visitors))
    assert_rollups_rebuild_alike(pg_store)


def test_conversions_of_many_goals_and_days_keep_rollups_as_a_rebuild(pg_store: Store) -> None:
    pg_store.record_exposures("v1", {"shop": "a"}, AT - timedelta(days=3))
    pg_store.record_exposures("v2", {"shop": "b"}, AT - timedelta(days=3))
    for n, (visitor, goal, days) in enumerate(
        [("v1", "purchase", 0), ("v1", "newsletter", -2), ("v2", "purchase", 1),
         ("v1", "purchase", -1), ("v2", "newsletter", 0), ("v1", "newsletter", 2)]
    ):  # fmt: skip
        variant = "a" if visitor == "v1" else "b"
        kind = "hard" if goal == "purchase" else "soft"
        row = conversion(
            visitor, f"e{n}", goal=goal, variant=variant, kind=kind, at=AT + timedelta(days=days)
        )
        assert pg_store.convert(visitor, f"e{n}", [row]) == ([], [True])
    pg_store.record_conversions([conversion("v2", None, variant="b", value=None)])
    assert_rollups_rebuild_alike(pg_store)


def test_exposures_are_inserted_first_and_a_stored_one_wins(pg_store: Store) -> None:
    assert pg_store.record_exposures_counted("v1", {"shop": "a"}) == ({"shop": "a"}, 1)
    other = Store(pg_store.url)  # another worker: its cache knows nothing
    try:
        assert other.record_exposures_counted("v1", {"shop": "b", "more": "a"}) == (
            {"shop": "a", "more": "a"},
            1,
        )
        # What the insert found is cached: no read needed to answer again.
        assert other.events.known_exposures("v1", ["shop", "more"]) is not None
    finally:
        other.dispose()
    assert pg_store.visitors_by_variant("shop") == {"a": 1}
    assert pg_store.count_rows("exposure") == 2


def test_a_row_stored_meanwhile_is_read_back(pg_store: Store, monkeypatch: Any) -> None:
    """The insert's snapshot can miss a row that another transaction committed
    while the insert waited for it: then the stored row is read."""
    pg_store.record_exposures("v1", {"shop": "b"})
    events = pg_store.events
    assert events._writes is not None
    monkeypatch.setattr(events._writes, "run", lambda write, rows, **_: (0, []))
    assert pg_store.record_exposures_counted("v1", {"shop": "a"}) == ({"shop": "b"}, 0)


def test_the_new_exposure_counts_in_the_rollup_once(pg_store: Store) -> None:
    for _ in range(3):
        pg_store.record_exposures("v1", {"shop": "a"}, AT)
    with pg_store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT day, visitors FROM rollup_exposure")).all()
    assert rows == [(AT.date(), 1)]


def test_a_failed_write_rolls_back_and_the_next_one_works(pg_store: Store) -> None:
    with pytest.raises(sa.exc.IntegrityError):  # a psycopg error, as SQLAlchemy's
        pg_store.record_exposures("v1", {"shop": None})  # type: ignore[dict-item]
    assert pg_store.record_exposures_counted("v1", {"shop": "a"}) == ({"shop": "a"}, 1)


def test_an_exception_in_a_transaction_commits_nothing(pg_store: Store) -> None:
    hot = pg_store.database.postgres
    assert hot is not None
    row = {"experiment": "shop", "visitor": "v1", "variant": "a", "created_at": AT, "phase": 1}
    with pytest.raises(RuntimeError), hot.pipeline() as pipeline:
        pipeline.rows(pipeline.send(INSERT_EXPOSURES, as_json([row])))  # ran, not committed
        raise RuntimeError("a bug between two statements")
    assert pg_store.count_rows("exposure") == 0
    assert hot.rows(SELECT_EXPOSURES, "v1") == []


def test_prepared_statements_survive_a_rollback_on_the_same_connection(pg_store: Store) -> None:
    """psycopg deallocates its session's prepared statements after a ROLLBACK
    when it prepared some itself; it must not, or the hot path's are lost."""
    pg_store.record_exposures("v0", {"shop": "a"})  # prepares on the pooled connection
    for n in range(1, 4):
        with pytest.raises(RuntimeError), pg_store.writing() as conn:
            for _ in range(6):
                conn.execute(
                    sa.text("SELECT count(*) FROM exposure WHERE visitor = :v"), {"v": "x"}
                )
            raise RuntimeError("rolled back")
        assert pg_store.record_exposures_counted(f"v{n}", {"shop": "a"}) == ({"shop": "a"}, 1)


def test_an_unreachable_database_is_a_sqlalchemy_operational_error() -> None:
    store = Store("postgresql://abconv@127.0.0.1:9/none")  # nothing listens on port 9
    store.database.schema_ready = True
    try:
        with pytest.raises(sa.exc.OperationalError):
            store.exposures_of("v1", ["shop"])
        with pytest.raises(sa.exc.OperationalError):
            store.convert("v1", "e1", [conversion("v1", "e1")])
    finally:
        store.dispose()


def test_json_parameters_keep_values_exact() -> None:
    assert as_json([{"at": AT, "day": date(2026, 1, 2), "x": 0.1 + 0.2}]) == (
        '[{"at":"2026-11-02T12:00:00","day":"2026-01-02","x":0.30000000000000004}]'
    )
    # PostgreSQL's float8 input reads these strings as the values.
    assert as_json([math.inf, -math.inf, 1.0]) == '["Infinity","-Infinity",1.0]'
    assert as_json({"t": [math.nan]}) == '{"t":["NaN"]}'


def test_workers_racing_for_a_new_visitor_all_answer_the_stored_variant(pg_store: Store) -> None:
    others = [Store(pg_store.url) for _ in range(3)]
    try:
        stores = [pg_store, *others]
        asks = [(stores[n % 4], f"v{n // 8}", "ab"[n % 2]) for n in range(64)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    lambda a: (a[1], a[0].record_exposures_counted(a[1], {"shop": a[2]})), asks
                )
            )
    finally:
        for store in others:
            store.dispose()
    stored = {visitor: variants["shop"] for visitor, (variants, _) in answers}
    assert len(stored) == 8
    for visitor, (variants, _) in answers:
        assert variants == {"shop": stored[visitor]}
    assert sum(new for _, (_, new) in answers) == 8  # each visitor recorded once
    assert pg_store.count_rows("exposure") == 8
    assert sum(pg_store.visitors_by_variant("shop").values()) == 8
    with pg_store.engine.connect() as conn:
        total = conn.execute(sa.text("SELECT sum(visitors) FROM rollup_exposure")).scalar_one()
    assert total == 8


def test_text_beyond_ascii_goes_and_comes_back_unchanged(pg_store: Store) -> None:
    visitor = "visiteur-é-✓"
    assert pg_store.record_exposures_counted(visitor, {"shop": "a"}) == ({"shop": "a"}, 1)
    other = Store(pg_store.url)  # reads from the database, not from the cache
    try:
        assert other.exposures_of(visitor, ["shop"])["shop"].variant == "a"
        assert other.convert(visitor, "é1", [conversion(visitor, "é1")]) == ([], [True])
        earlier, _ = other.convert(visitor, "é1", [conversion(visitor, "é1")])
        assert [(row.visitor, row.event_id) for row in earlier] == [(visitor, "é1")]
    finally:
        other.dispose()
