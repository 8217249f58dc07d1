"""Schema migrations: a database of the release before migrations is upgraded
with its rows, the migrations build exactly the tables of the code, and
servers starting together migrate once."""

from __future__ import annotations

import threading
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from abconv import create_app
from abconv.cli import cli
from abconv.store import DayCounts, GoalCounts, PairCounts, Store, schema
from abconv.store.phases import StoredPhase

# The tables exactly as the release before migrations created them
# (SQLModel.metadata.create_all), constraint names included.
OLD_SCHEMA = """
CREATE TABLE exposure (
    id {serial} NOT NULL,
    experiment VARCHAR(64) NOT NULL,
    visitor VARCHAR(128) NOT NULL,
    variant VARCHAR(64) NOT NULL,
    created_at {timestamp} NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_exposure UNIQUE (visitor, experiment)
);
CREATE TABLE conversion (
    id {serial} NOT NULL,
    experiment VARCHAR(64) NOT NULL,
    variant VARCHAR(64) NOT NULL,
    visitor VARCHAR(128) NOT NULL,
    goal VARCHAR(64) NOT NULL,
    kind VARCHAR(8) NOT NULL,
    value FLOAT,
    event_id VARCHAR(128),
    created_at {timestamp} NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_conversion_event UNIQUE (event_id, experiment)
);
CREATE INDEX ix_conversion_experiment ON conversion (experiment);
INSERT INTO exposure (experiment, visitor, variant, created_at) VALUES
    ('shop', 'alice', 'guide', '2026-01-01 10:00:00.000000'),
    ('shop', 'mallory', 'trial', '2026-01-01 11:00:00.000000');
INSERT INTO conversion (experiment, variant, visitor, goal, kind, value, event_id, created_at)
    VALUES ('shop', 'guide', 'alice', 'purchase', 'hard', 49.9, 'order-1001',
            '2026-01-01 10:30:00.123456');
"""


def create_old_schema(url: str) -> None:
    engine = sa.create_engine(Store(url).url)  # the driver abconv uses
    sqlite = engine.dialect.name == "sqlite"
    ddl = OLD_SCHEMA.format(
        serial="INTEGER" if sqlite else "SERIAL",
        timestamp="DATETIME" if sqlite else "TIMESTAMP WITHOUT TIME ZONE",
    )
    with engine.begin() as conn:
        for statement in filter(str.strip, ddl.split(";")):
            conn.exec_driver_sql(statement)
    engine.dispose()


def in_phase_1(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """Rows of a release before phases as they are after the upgrade: in phase 1."""
    return {table: [(*row, 1) for row in found] for table, found in rows.items()}


def all_rows(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    with store.engine.connect() as conn:
        return {
            table: [
                tuple(row) for row in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))
            ]
            for table in ("exposure", "conversion")
        }


def test_a_database_of_the_previous_release_is_upgraded_with_its_rows(
    database_url: str, experiments_dir: Path
) -> None:
    create_old_schema(database_url)
    old = Store(database_url)
    before = all_rows(old)
    old.dispose()

    app = create_app(
        {"ABCONV_DATABASE_URL": database_url, "ABCONV_EXPERIMENTS_DIR": str(experiments_dir)}
    )
    store = app.extensions["abconv"].store
    try:
        assert all_rows(store) == in_phase_1(before)
        # Phase 1 starts at the first exposure; its definition comes from the file.
        assert store.phases_of("shop") == [StoredPhase(1, datetime(2026, 1, 1, 10), None)]
        with store.engine.connect() as conn:
            assert schema.current(conn) == schema.head()
        # The rollups are built from the old rows.
        counts = store.result_counts("shop", {})
        assert counts.visitors == {"guide": 1, "trial": 1}
        assert counts.goals == {
            ("purchase", "guide"): GoalCounts(
                1, 1, 49.9, 49.9 * 49.9, 49.9 * 49.9 * 49.9, 0, 1.0, 49.9
            )
        }
        assert counts.days == [
            DayCounts(date(2026, 1, 1), {"guide": 1, "trial": 1}, {("purchase", "guide"): 1})
        ]
        client = app.test_client()
        # The new constraint: mallory's "order-1001" is her own event...
        event = {"visitor": "mallory", "goal": "purchase", "value": 7, "event_id": "order-1001"}
        mallory = client.post("/api/convert", json=event).get_json()
        assert mallory["duplicate"] is False
        assert mallory["recorded"] == [
            {"experiment": "shop", "variant": "trial", "kind": "hard", "value": 7}
        ]
        # ...and alice's, stored by the old release, is still a duplicate.
        alice = client.post("/api/convert", json={**event, "visitor": "alice"}).get_json()
        assert alice["duplicate"] is True and alice["recorded"][0]["value"] == 49.9
        assert store.count_rows("conversion") == 2
        assert store.result_counts("shop", {}).goals[("purchase", "trial")].value_sum == 7
    finally:
        store.dispose()


def test_the_migrations_build_the_tables_of_the_code(database_url: str) -> None:
    store = Store(database_url)
    try:
        done = store.upgrade_schema()
        assert (done.before, done.after, done.stamped) == (None, schema.head(), False)
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
            unique = sa.inspect(conn).get_unique_constraints("conversion")
        assert [(u["name"], u["column_names"]) for u in unique] == [
            ("uq_conversion_visitor_event", ["visitor", "event_id", "experiment"])
        ]
        again = store.upgrade_schema()
        assert (again.before, again.after) == (schema.head(), schema.head())
    finally:
        store.dispose()


def test_servers_starting_together_migrate_once(database_url: str) -> None:
    stores = [Store(database_url) for _ in range(4)]
    results: list[schema.Upgrade] = []
    start = threading.Barrier(len(stores))

    def migrate(store: Store) -> None:
        start.wait()
        results.append(store.upgrade_schema())

    threads = [threading.Thread(target=migrate, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert sorted(r.before or "" for r in results) == ["", *[schema.head()] * 3]
        with stores[0].engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(schema.head(),)]
    finally:
        for store in stores:
            store.dispose()


def test_abconv_db_upgrade_migrates_and_says_so(database_url: str) -> None:
    create_old_schema(database_url)
    runner = CliRunner()
    first = runner.invoke(cli, ["db", "upgrade"], env={"ABCONV_DATABASE_URL": database_url})
    assert first.exit_code == 0, first.output
    assert first.output == (
        f"database made before migrations: stamped at {schema.BASELINE}\n"
        f"database upgraded from {schema.BASELINE} to {schema.head()}\n"
    )
    again = runner.invoke(cli, ["db", "upgrade"], env={"ABCONV_DATABASE_URL": database_url})
    assert again.exit_code == 0 and again.output == f"database is up to date ({schema.head()})\n"


def test_abconv_db_upgrade_names_an_unreachable_database() -> None:
    url = "postgresql://nobody@127.0.0.1:1/none"
    result = CliRunner().invoke(cli, ["db", "upgrade"], env={"ABCONV_DATABASE_URL": url})
    assert result.exit_code == 1
    assert (
        "Error: database postgresql://nobody@127.0.0.1:1/none cannot be reached: " in result.output
    )
    assert "Traceback" not in result.output


def test_a_migration_that_fails_half_way_changes_nothing(database_url: str) -> None:
    create_old_schema(database_url)
    store = Store(database_url)
    try:
        before = all_rows(store)
        with pytest.raises(RuntimeError), store._migrating() as conn:
            schema.upgrade(conn)  # every revision ran, then the process failed
            raise RuntimeError("killed")
        with store.engine.connect() as conn:
            assert schema.current(conn) is None
            unique = sa.inspect(conn).get_unique_constraints("conversion")
            tables = set(sa.inspect(conn).get_table_names())
        assert [u["name"] for u in unique] == ["uq_conversion_event"]
        assert tables == {"exposure", "conversion"}  # no rollup or counter table left behind
        assert all_rows(store) == before
    finally:
        store.dispose()


def test_abconv_db_upgrade_creates_a_new_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'abconv.sqlite3'}"
    result = CliRunner().invoke(cli, ["db", "upgrade"], env={"ABCONV_DATABASE_URL": url})
    assert result.exit_code == 0 and result.output == f"database created at {schema.head()}\n"


def at_0002_with_old_rows(conn: Connection) -> None:
    """Migrate to revision 0002 (the release before rollups) and insert the old rows."""
    command.upgrade(schema._config(conn), "0002")
    for statement in filter(str.strip, OLD_SCHEMA.split(";")):
        if statement.strip().startswith("INSERT"):
            conn.exec_driver_sql(statement)


def test_a_database_at_0002_with_rows_gets_its_rollups_built(database_url: str) -> None:
    """The release before rollups (revision 0002): its events are kept, and the
    upgrade builds the rollups from them, as a rebuild would."""
    store = Store(database_url)
    try:
        with store._migrating() as conn:
            at_0002_with_old_rows(conn)
            conn.exec_driver_sql(
                "INSERT INTO conversion (experiment, variant, visitor, goal, kind, value, "
                "event_id, created_at) VALUES ('shop', 'guide', 'alice', 'newsletter', 'soft', "
                "NULL, NULL, '2026-01-01 10:20:00.000000')"
            )
        before = all_rows(store)
        done = store.upgrade_schema()
        assert (done.before, done.after) == ("0002", schema.head())
        assert all_rows(store) == in_phase_1(before)
        counts = store.result_counts("shop", {})
        assert counts.visitors == {"guide": 1, "trial": 1}
        assert counts.goals[("newsletter", "guide")] == GoalCounts(1, 1, 0.0, 0.0, 0.0, 0, 1.0, 0.0)
        # alice (guide): newsletter at 10:20, purchase at 10:30, hard after soft; mallory none.
        assert counts.pairs == [PairCounts("newsletter", "purchase", "guide", 1, 1, 0),
                                PairCounts("newsletter", "purchase", "trial", 0, 0, 0)]  # fmt: skip
    finally:
        store.dispose()


def rollup_rows(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    with store.engine.connect() as conn:
        return {
            table: sorted(tuple(row) for row in conn.execute(sa.text(f"SELECT * FROM {table}")))
            for table in ("rollup_exposure", "rollup_goal", "rollup_goal_day", "rollup_pair")
        }


def at_0004_with(conn: Any, statements: str) -> None:
    """The old rows taken to revision 0004, then ``statements`` (``;``-separated) run."""
    at_0002_with_old_rows(conn)
    command.upgrade(schema._config(conn), "0004")
    for statement in filter(str.strip, statements.split(";")):
        conn.exec_driver_sql(statement)


# Rollups as revision 0004 kept them (no phase) for the rows of OLD_SCHEMA.
ROLLUPS_AT_0004 = """
INSERT INTO rollup_exposure (experiment, variant, day, visitors) VALUES
    ('shop', 'guide', '2026-01-01', 1), ('shop', 'trial', '2026-01-01', 1),
    ('other', 'a', '2026-02-03', 1);
INSERT INTO rollup_goal (experiment, variant, goal, kind, converting, events, value_sum,
    value_sum_squares, value_sum_cubes, capped_visitors)
    VALUES ('shop', 'guide', 'purchase', 'hard', 1, 1, 49.9, 2490.0099999999998,
            124251.49899999998, 0);
INSERT INTO rollup_goal_day (experiment, variant, goal, day, converting, events)
    VALUES ('shop', 'guide', 'purchase', '2026-01-01', 1, 1);
INSERT INTO rollup_visitor_goal (experiment, visitor, goal, variant, kind, first_at, last_at,
    total, events) VALUES ('shop', 'alice', 'purchase', 'guide', 'hard',
    '2026-01-01 10:30:00.123456', '2026-01-01 10:30:00.123456', 49.9, 1);
INSERT INTO excluded_count (experiment, reason, day, requests)
    VALUES ('shop', 'bot', '2026-01-01', 3)
"""


def test_a_database_at_0004_with_rows_gets_phase_1_losing_nothing(
    database_url: str, experiments_dir: Path
) -> None:
    """The release before phases (revision 0004): its events are in phase 1,
    which starts at the first exposure; the rollups, rebuilt per phase, hold
    the same counts in phase 1; the first server to serve the experiment
    fills in phase 1's definition from the file, starting no phase 2."""
    store = Store(database_url)
    try:
        with store._migrating() as conn:
            at_0004_with(conn, ROLLUPS_AT_0004)
            conn.exec_driver_sql("INSERT INTO exposure (experiment, visitor, variant, "
                                 "created_at) VALUES ('other', 'bob', 'a', "
                                 "'2026-02-03 04:05:06.000000')")  # fmt: skip
        before = rollup_rows(store)
        done = store.upgrade_schema()
        assert (done.before, done.after) == ("0004", schema.head())
        assert rollup_rows(store) == {
            table: sorted(_with_phase_1(table, row) for row in rows)
            for table, rows in before.items()
        }
        assert store.phases_of("shop") == [StoredPhase(1, datetime(2026, 1, 1, 10), None)]
        assert store.phases_of("other") == [StoredPhase(1, datetime(2026, 2, 3, 4, 5, 6), None)]
        assert store.excluded_counts("shop") == [(date(2026, 1, 1), "bot", 3)]
        assert store.result_counts("shop", {}, phase=1).visitors == {"guide": 1, "trial": 1}
        assert store.result_counts("shop", {}, phase=2).visitors == {}
        definition = {"traffic": 1.0, "variants": [{"key": "guide", "weight": 1.0},
                                                   {"key": "trial", "weight": 1.0}]}  # fmt: skip
        assert store.current_phase("shop", definition).number == 1
        assert store.phases_of("shop") == [StoredPhase(1, datetime(2026, 1, 1, 10), definition)]
    finally:
        store.dispose()


# Rollups as the 0004 release kept them for OLD_SCHEMA's rows plus alice's two more
# purchases (20 and 30: total 99.9, cut to the recorded cap 60) and bob's one (10).
AT_0004 = """
INSERT INTO exposure (experiment, visitor, variant, created_at) VALUES
    ('shop', 'bob', 'guide', '2026-01-01 12:00:00.000000');
INSERT INTO conversion (experiment, variant, visitor, goal, kind, value, event_id, created_at)
    VALUES ('shop', 'guide', 'alice', 'purchase', 'hard', 20, NULL, '2026-01-02 09:00:00.000000'),
           ('shop', 'guide', 'alice', 'purchase', 'hard', 30, NULL, '2026-01-02 10:00:00.000000'),
           ('shop', 'guide', 'bob', 'purchase', 'hard', 10, NULL, '2026-01-01 12:30:00.000000');
INSERT INTO rollup_exposure VALUES ('shop', 'guide', '2026-01-01', 2),
                                   ('shop', 'trial', '2026-01-01', 1);
INSERT INTO rollup_cap VALUES ('shop', 'purchase', 60);
INSERT INTO rollup_visitor_goal VALUES
    ('shop', 'alice', 'purchase', 'guide', 'hard', '2026-01-01 10:30:00.123456',
     '2026-01-02 10:00:00.000000', 99.9, 3),
    ('shop', 'bob', 'purchase', 'guide', 'hard', '2026-01-01 12:30:00.000000',
     '2026-01-01 12:30:00.000000', 10, 1);
INSERT INTO rollup_goal VALUES ('shop', 'guide', 'purchase', 'hard', 2, 4, 70, 3700, 217000, 1);
INSERT INTO rollup_goal_day VALUES ('shop', 'guide', 'purchase', '2026-01-01', 2, 2),
                                   ('shop', 'guide', 'purchase', '2026-01-02', 0, 2);
INSERT INTO excluded_count VALUES ('shop', 'bot', '2026-01-02', 1)
"""


def test_a_database_at_0004_with_rows_and_rollups_gets_the_new_sums_filled(
    database_url: str,
) -> None:
    """The release before count and ratio metrics (revision 0004): its events,
    rollups and excluded counts are kept, and the new per-visitor sums of
    rollup_goal are filled from rollup_visitor_goal with the recorded caps, as a
    rebuild computes them."""
    store = Store(database_url)
    try:
        with store._migrating() as conn:
            at_0004_with(conn, AT_0004)
        before, rollups = all_rows(store), rollup_rows(store)
        with store._migrating() as conn:
            command.upgrade(schema._config(conn), "0005")
        assert all_rows(store) == before
        upgraded = rollup_rows(store)
        assert {t: r for t, r in upgraded.items() if t != "rollup_goal"} == {
            t: r for t, r in rollups.items() if t != "rollup_goal"
        }
        # alice: 3 events, total cut to 60; bob: 1 event of 10. Σ events² = 9 + 1,
        # Σ capped total x events = 60·3 + 10·1.
        assert upgraded["rollup_goal"] == [
            ("shop", "guide", "purchase", "hard", 2, 4, 70.0, 3700.0, 217000.0, 1, 10.0, 190.0)
        ]
        # On to the newest revision, which rebuilds the rollups per phase from the
        # events with the recorded cap: the same sums, in phase 1.
        done = store.upgrade_schema()
        assert (done.before, done.after) == ("0005", schema.head())
        assert store.excluded_counts("shop") == [(date(2026, 1, 2), "bot", 1)]
        expected = GoalCounts(2, 4, 70.0, 3700.0, 217000.0, 1, 10.0, 190.0)
        goal = store.result_counts("shop", {"purchase": 60.0}, phase=1).goals[("purchase", "guide")]
        assert goal == expected
        assert store.rebuild_rollups("shop") == ["shop"]  # keeps the recorded cap
        goal = store.result_counts("shop", {"purchase": 60.0}, phase=1).goals[("purchase", "guide")]
        assert goal == expected
    finally:
        store.dispose()


def _with_phase_1(table: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A rollup row of 0004 as the same row of phase 1: ``phase`` after the key's goals."""
    before_phase = {"rollup_exposure": 2, "rollup_goal": 3, "rollup_goal_day": 3,
                    "rollup_pair": 4}[table]  # fmt: skip
    phased = (*row[:before_phase], 1, *row[before_phase:])
    if table == "rollup_goal":  # 0005's sums: each visitor there converted once
        events, value_sum = row[5], row[6]
        return (*phased, float(events), value_sum)
    return phased
