"""Storage: what the hot path asks of the database, what it stores, and the exposure cache."""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from abconv import create_app
from abconv.store import EXPOSURE, ExposureCache, Store, StoredExposure, sqlite_writes


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    """The SELECT/INSERT/UPDATE/DELETE statements the store runs, on any path:
    SQLAlchemy's engine, the plain sqlite3 connection of SQLite's hot path, or
    the psycopg connections of PostgreSQL's."""
    seen: list[str] = []

    def record(statement: str) -> None:
        verb = statement.split()[0].upper()
        if verb in {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}:
            seen.append(verb)

    def record_engine(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        record(statement)

    hot = store._hot._connection() if store._hot is not None else None
    postgres = store.database.postgres
    sa.event.listen(store.engine, "before_cursor_execute", record_engine)
    if hot is not None:
        hot.set_trace_callback(record)
    if postgres is not None:
        postgres.trace = record
    try:
        yield seen
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record_engine)
        if hot is not None:
            hot.set_trace_callback(None)
        if postgres is not None:
            postgres.trace = None


def test_a_returning_visitor_costs_no_write(app: Flask, environ: dict[str, str]) -> None:
    client = app.test_client()
    store = app.extensions["abconv"].store
    url = "/api/assign?visitor=alice&experiment=shop"
    # The experiment's phase: looked up once per process and version of its file.
    client.get("/api/assign?visitor=bob&experiment=shop")
    with statements(store) as first:
        client.get(url)
    # The exposure, then its day's rollup; on PostgreSQL one statement does both,
    # tried first: the visitor's stored exposures are read only if it finds some.
    expected = ["SELECT", "INSERT", "INSERT"] if store.is_sqlite else ["WITH"]
    assert first == expected
    with statements(store) as again:
        client.get(url)
    assert again == []  # this worker knows the exposure: no query at all

    other_worker = create_app(environ)
    try:
        other_store = other_worker.extensions["abconv"].store
        with statements(other_store) as elsewhere:
            reply = other_worker.test_client().get(url)
        if store.is_sqlite:
            assert elsewhere == ["SELECT"]  # one read, no write
        else:  # the phase (once a process), then the insert that finds the row
            assert elsewhere == ["SELECT", "WITH"]
        assert reply.get_json() == client.get(url).get_json()
    finally:
        other_store.dispose()


def exposure(experiment: str) -> StoredExposure:
    return StoredExposure(experiment, "a", datetime(2026, 1, 1))


def test_the_cache_answers_only_when_it_knows_every_experiment() -> None:
    cache = ExposureCache()
    cache.put("v", [exposure("x")])
    assert cache.get("v", ["x"]) == {"x": exposure("x")}
    assert cache.get("v", ["x", "y"]) is None
    assert cache.get("w", ["x"]) is None


def test_the_cache_drops_the_least_recently_used_visitor() -> None:
    cache = ExposureCache(max_visitors=2)
    cache.put("a", [exposure("x")])
    cache.put("b", [exposure("x")])
    cache.get("a", ["x"])
    cache.put("c", [exposure("x")])
    assert cache.get("b", ["x"]) is None
    assert cache.get("a", ["x"]) is not None and cache.get("c", ["x"]) is not None


def test_the_cache_leaves_full_garbage_collections_nothing_to_walk() -> None:
    """A full collection pauses every request of the worker; 100,000 cached
    visitors must not lengthen it, so the collector must stop tracking them."""
    cache = ExposureCache()
    gc.collect()
    before = len(gc.get_objects())
    for n in range(5_000):
        cache.put(f"visitor-{n}", [exposure("x"), exposure(f"y-{n % 7}")])
    gc.collect()
    gc.collect()
    assert len(gc.get_objects()) - before < 100
    assert cache.get("visitor-3", ["x", "y-3"]) == {"x": exposure("x"), "y-3": exposure("y-3")}


IDENTIFIERS = st.from_regex(r"[a-z0-9-]{1,64}", fullmatch=True)
ANY_TIME = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59))


def test_the_hot_path_and_sqlalchemy_read_each_others_rows_identically(tmp_path: Path) -> None:
    """SQLite's hot path writes exposures with plain sqlite3; every other read
    and write goes through SQLAlchemy. Each must read back exactly what the
    other wrote, times to the microsecond, and store the same text."""
    store = Store(f"sqlite:///{tmp_path / 'abconv.sqlite3'}")
    store.upgrade_schema()
    assert store._hot is not None
    hot, numbers = store._hot, itertools.count()

    @settings(max_examples=300, deadline=None)
    @given(at=ANY_TIME, experiment=IDENTIFIERS, variant=IDENTIFIERS)
    def round_trip(at: datetime, experiment: str, variant: str) -> None:
        n = next(numbers)
        by_hot, by_sqlalchemy = f"hot-{n}", f"sqlalchemy-{n}"
        row = {"experiment": experiment, "variant": variant, "created_at": at, "phase": 2}
        with hot.transaction() as connection:
            assert sqlite_writes.insert_exposures(connection, [[{**row, "visitor": by_hot}]]) == [1]
        with store.writing() as conn:
            assert store.insert_exposures(conn, [{**row, "visitor": by_sqlalchemy}]) == 1

        with store.engine.connect() as conn:
            read = store.exposures_for(conn, [by_hot])
            text = conn.execute(
                sa.select(EXPOSURE.c.visitor, sa.cast(EXPOSURE.c.created_at, sa.String)).where(
                    EXPOSURE.c.visitor.in_([by_hot, by_sqlalchemy])
                )
            ).all()
        assert read == {(by_hot, experiment): StoredExposure(experiment, variant, at, 2)}
        assert hot.exposures_of(by_sqlalchemy) == [(experiment, variant, at, 2)]
        assert len({stored for _, stored in text}) == 1, text  # the same text from both

    try:
        round_trip()
    finally:
        store.dispose()
