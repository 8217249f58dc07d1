"""Rollups: kept as events arrive, equal to a rebuild from the raw rows and to
counts computed here from the events sent, whatever the order, repeats,
duplicates and backfilled timestamps."""

from __future__ import annotations

import importlib.util
import itertools
import math
import random
from collections import defaultdict
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abconv.cli import cli
from abconv.store import (
    DayCounts,
    GoalCounts,
    NewConversion,
    PairCounts,
    ResultCounts,
    Store,
)
from abconv.store.tables import ROLLUP_TABLES
from tests.conftest import write_experiment

GOALS = {"purchase": "hard", "signup": "hard", "guide": "soft", "newsletter": "soft"}
VARIANTS = ["a", "b", "c"]
START = datetime(2026, 11, 1)


# -- the reference: counts computed from the events sent ----------------------


@dataclass
class Sent:
    """What a stream stored, by the store's own rules: first exposure wins, a
    visitor's repeated event id is one event."""

    exposures: dict[str, tuple[str, datetime, int]] = field(default_factory=dict)  # + phase
    conversions: dict[tuple[str, Any], NewConversion] = field(default_factory=dict)
    serial: Iterator[int] = field(default_factory=itertools.count)

    def expose(self, visitor: str, variant: str, at: datetime, phase: int = 1) -> None:
        self.exposures.setdefault(visitor, (variant, at, phase))

    def convert(self, row: NewConversion) -> None:
        key = (row.visitor, row.event_id if row.event_id is not None else next(self.serial))
        self.conversions.setdefault(key, row)

    def counts(self, caps: Mapping[str, float], phase: int = 1) -> ResultCounts:
        """The counts of the visitors first exposed in ``phase``."""
        visitors: dict[str, int] = defaultdict(int)
        days: dict[date, DayCounts] = {}

        def on(day: date) -> DayCounts:
            return days.setdefault(day, DayCounts(day, {}, {}))

        for variant, at, first_phase in self.exposures.values():
            if first_phase != phase:
                continue
            visitors[variant] += 1
            new = on(at.date()).visitors
            new[variant] = new.get(variant, 0) + 1
        rows: dict[tuple[str, str], list[NewConversion]] = defaultdict(list)
        for row in self.conversions.values():
            if row.phase == phase:
                rows[(row.visitor, row.goal)].append(row)
        per_goal: dict[tuple[str, str], list[Any]] = defaultdict(
            lambda: [0, 0, 0.0, 0.0, 0.0, 0, 0.0, 0.0]
        )
        kinds: dict[str, set[str]] = defaultdict(set)
        for (_, goal), events in rows.items():
            variant = events[0].variant
            total = sum(r.value or 0.0 for r in events)
            value = min(total, caps[goal]) if goal in caps else total
            sums = per_goal[(goal, variant)]
            n = len(events)
            for i, add in enumerate(
                (1, n, value, value**2, value**3, int(value != total), n * n, value * n)
            ):
                sums[i] += add
            first = on(min(r.created_at for r in events).date()).converting
            first[(goal, variant)] = first.get((goal, variant), 0) + 1
            kinds[goal].update(r.kind for r in events)
        goals = {key: GoalCounts(*sums) for key, sums in per_goal.items()}
        soft = sorted(g for g, k in kinds.items() if "soft" in k)
        hard = sorted(g for g in kinds if g not in soft)
        variants = sorted(visitors.keys() | {v for _, v in goals})
        pairs = [self._pair(s, h, v, phase, rows) for s in soft for h in hard for v in variants]
        return ResultCounts(dict(visitors), goals, [days[d] for d in sorted(days)], pairs)

    def _pair(
        self,
        soft: str,
        hard: str,
        variant: str,
        phase: int,
        rows: dict[tuple[str, str], list[NewConversion]],
    ) -> PairCounts:
        ours = [v for v, (var, _, p) in self.exposures.items() if (var, p) == (variant, phase)]
        first_soft = {
            v: min(r.created_at for r in rows[(v, soft)]) for v in ours if (v, soft) in rows
        }
        last_hard = {
            v: max(r.created_at for r in rows[(v, hard)]) for v in ours if (v, hard) in rows
        }
        after = [v for v, t in first_soft.items() if v in last_hard and last_hard[v] >= t]
        without = [v for v in last_hard if v not in first_soft]
        return PairCounts(soft, hard, variant, len(first_soft), len(after), len(without))


def assert_same(got: ResultCounts, want: ResultCounts) -> None:
    assert got.visitors == want.visitors
    assert got.days == want.days
    assert got.pairs == want.pairs
    assert got.goals.keys() == want.goals.keys()
    for key, counts in got.goals.items():
        expected = want.goals[key]
        for name in ("converting", "events", "capped_visitors"):
            assert getattr(counts, name) == getattr(expected, name), (key, name)
        sums = ("value_sum", "value_sum_squares", "value_sum_cubes")
        for name in (*sums, "events_sum_squares", "value_events_sum"):
            assert math.isclose(
                getattr(counts, name), getattr(expected, name), rel_tol=1e-9, abs_tol=1e-6
            ), (key, name, counts, expected)


def rollup_rows(store: Store, experiment: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every rollup row of an experiment, in key order."""
    with store.engine.connect() as conn:
        return {
            table.name: sorted(
                tuple(row)
                for row in conn.execute(sa.select(table).where(table.c.experiment == experiment))
            )
            for table in ROLLUP_TABLES
        }


def assert_same_rows(got: dict[str, list[Any]], want: dict[str, list[Any]]) -> None:
    """Equal rows; floats equal but for rounding (sums of differences vs sums)."""
    assert got.keys() == want.keys()
    for table, rows in got.items():
        assert len(rows) == len(want[table]), (table, rows, want[table])
        for row, expected in zip(rows, want[table], strict=True):
            for value, other in zip(row, expected, strict=True):
                if isinstance(value, float):
                    assert math.isclose(value, other, rel_tol=1e-9, abs_tol=1e-4), (table, row)
                else:
                    assert value == other, (table, row, expected)


# -- the property: incremental == rebuilt == reference -------------------------

AT = st.builds(
    lambda seconds, micro: START + timedelta(seconds=seconds, microseconds=micro),
    st.integers(0, 6 * 86_400),
    st.integers(0, 999_999),
)
PHASES = (1, 2)  # an exposure is in the phase its server knew as current
EXPOSE = st.tuples(
    st.just("expose"), st.integers(0, 5), st.sampled_from(VARIANTS), AT, st.booleans(),
    st.sampled_from(PHASES),
)  # fmt: skip
CONVERSION = st.tuples(
    st.integers(0, 5),
    st.sampled_from(sorted(GOALS)),
    st.none() | st.integers(0, 5000).map(lambda cents: cents / 100),
    st.none() | st.sampled_from(["e1", "e2", "e3"]),
    AT,
)
CONVERT = st.tuples(st.just("convert"), st.lists(CONVERSION, min_size=1, max_size=3))
STREAM = st.lists(st.one_of(EXPOSE, CONVERT), min_size=4, max_size=60)
CAPS = st.fixed_dictionaries({}, optional={"purchase": st.sampled_from([0.5, 20.0, 60.0])})

EXAMPLES = 100


def send(store: Store, sent: Sent, experiment: str, stream: list[Any]) -> None:
    """The stream through the Store API: exposures on SQLite's hot path or in a
    batch transaction, conversions of exposed visitors in one transaction each."""
    for op in stream:
        if op[0] == "expose":
            _, n, variant, at, batch, phase = op
            visitor = f"v{n}"
            row = {"experiment": experiment, "visitor": visitor, "variant": variant}
            if batch:
                with store.writing() as conn:
                    store.insert_exposures(conn, [{**row, "created_at": at, "phase": phase}])
            else:
                store.record_exposures(visitor, {experiment: variant}, at, {experiment: phase})
            sent.expose(visitor, variant, at, phase)
            continue
        rows = []
        for n, goal, value, event_id, at in op[1]:
            exposure = sent.exposures.get(f"v{n}")
            if exposure is None:
                continue
            kind = GOALS[goal]
            rows.append(
                NewConversion(
                    experiment, exposure[0], f"v{n}", goal, kind, value, event_id, at, exposure[2]
                )
            )
        store.record_conversions(rows)
        for row in rows:
            sent.convert(row)


def test_incremental_rollups_equal_a_rebuild_and_the_events_sent(store: Store) -> None:
    keys = itertools.count()

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(before=STREAM, caps=CAPS, after=STREAM)
    def check(before: list[Any], caps: dict[str, float], after: list[Any]) -> None:
        experiment, sent = f"x{next(keys)}", Sent()
        send(store, sent, experiment, before)
        # Caps recorded by the rebuild a results read makes, then kept by later events.
        for phase in PHASES:
            assert_same(store.result_counts(experiment, caps, phase), sent.counts(caps, phase))
        send(store, sent, experiment, after)
        incremental = rollup_rows(store, experiment)
        for phase in PHASES:
            assert_same(store.result_counts(experiment, caps, phase), sent.counts(caps, phase))
        assert store.rebuild_rollups(experiment) == [experiment]  # keeps the recorded caps
        assert_same_rows(rollup_rows(store, experiment), incremental)
        for phase in PHASES:
            assert_same(store.result_counts(experiment, caps, phase), sent.counts(caps, phase))

    check()


# -- by hand -------------------------------------------------------------------


def at(day: int, hour: int = 12) -> datetime:
    return START + timedelta(days=day, hours=hour)


def convert(store: Store, visitor: str, goal: str, when: datetime, **fields: Any) -> list[bool]:
    row = NewConversion(
        "shop", fields.get("variant", "a"), visitor, goal, GOALS[goal],
        fields.get("value"), fields.get("event_id"), when,
    )  # fmt: skip
    return store.record_conversions([row])


def test_a_backfilled_conversion_moves_the_first_day_and_adds_its_value(store: Store) -> None:
    store.record_exposures("alice", {"shop": "a"}, at(0))
    convert(store, "alice", "purchase", at(3), value=30.0)
    convert(store, "alice", "purchase", at(1), value=20.0)  # arrives late, happened earlier
    counts = store.result_counts("shop", {})
    # One visitor with total 50 over 2 events: 50, 50² = 2500, 50³ = 125000, 2² = 4, 50·2.
    assert counts.goals[("purchase", "a")] == GoalCounts(
        1, 2, 50.0, 2500.0, 125000.0, 0, 4.0, 100.0
    )
    assert counts.days == [
        DayCounts(date(2026, 11, 1), {"a": 1}, {}),
        DayCounts(date(2026, 11, 2), {}, {("purchase", "a"): 1}),  # her first, backfilled
    ]
    with store.engine.connect() as conn:
        day3 = conn.execute(sa.text("SELECT converting, events FROM rollup_goal_day "
                                    "WHERE day = :d"), {"d": date(2026, 11, 4)}).one()  # fmt: skip
    assert tuple(day3) == (0, 1)  # the event stays on its day; the first conversion moved


def test_a_cap_cuts_the_total_not_each_event(store: Store) -> None:
    store.record_exposures("alice", {"shop": "a"}, at(0))
    store.record_exposures("bob", {"shop": "a"}, at(0))
    assert store.result_counts("shop", {"purchase": 40.0}).goals == {}  # caps recorded
    for value in (30.0, 20.0):
        convert(store, "alice", "purchase", at(1), value=value)
    convert(store, "bob", "purchase", at(1), value=10.0)
    # alice 30 + 20 = 50 → 40 (capped), bob 10: 50, 40² + 10² = 1700, 40³ + 10³ = 65000;
    # events 2² + 1² = 5; value x events 40·2 + 10·1 = 90 (the capped total).
    goal = store.result_counts("shop", {"purchase": 40.0}).goals[("purchase", "a")]
    assert goal == GoalCounts(2, 3, 50.0, 1700.0, 65000.0, 1, 5.0, 90.0)
    # Another cap in the file: rebuilt with it. alice 50 → 45: 55, 2125, 92125, 5, 100.
    goal = store.result_counts("shop", {"purchase": 45.0}).goals[("purchase", "a")]
    assert goal == GoalCounts(2, 3, 55.0, 2125.0, 92125.0, 1, 5.0, 100.0)
    # No cap: 60, 2600, 126000, 5, 110.
    assert store.result_counts("shop", {}).goals[("purchase", "a")] == GoalCounts(
        2, 3, 60.0, 2600.0, 126000.0, 0, 5.0, 110.0
    )


def test_soft_to_hard_pairs_count_hard_conversions_at_or_after_the_first_soft(
    store: Store,
) -> None:
    for visitor in ("x", "y", "z", "w"):
        store.record_exposures(visitor, {"shop": "a"}, at(0))
    convert(store, "x", "guide", at(1))
    convert(store, "x", "purchase", at(2))  # after her guide download
    convert(store, "y", "purchase", at(1))
    convert(store, "y", "guide", at(2))  # purchase before the guide: not after
    convert(store, "z", "purchase", at(1))  # no guide at all
    convert(store, "w", "guide", at(1))  # no purchase
    pair = PairCounts("guide", "purchase", "a", soft_visitors=3, hard_after_soft=1,
                      hard_without_soft=1)  # fmt: skip
    assert pair in store.result_counts("shop", {}).pairs
    convert(store, "y", "purchase", at(3))  # y buys again, now after the guide
    convert(store, "z", "guide", at(0, 1))  # backfilled: z's guide came before the purchase
    pairs = store.result_counts("shop", {}).pairs
    assert PairCounts("guide", "purchase", "a", 4, 3, 0) in pairs
    # Every soft x hard goal seen, per variant: guide x purchase only here.
    assert [(p.soft, p.hard) for p in pairs] == [("guide", "purchase")]


def test_a_duplicate_event_changes_no_rollup(store: Store) -> None:
    store.record_exposures("alice", {"shop": "a"}, at(0))
    assert store.record_exposures("alice", {"shop": "b"}, at(2)) == {"shop": "a"}
    assert convert(store, "alice", "purchase", at(1), value=5.0, event_id="o-1") == [True]
    before = rollup_rows(store, "shop")
    assert convert(store, "alice", "purchase", at(2), value=9.0, event_id="o-1") == [False]
    assert rollup_rows(store, "shop") == before
    assert before["rollup_exposure"] == [("shop", "a", 1, date(2026, 11, 1), 1)]


def test_abconv_rollups_rebuild_recomputes_with_the_files_caps(
    database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "experiments"
    folder.mkdir()
    write_experiment(folder)  # "shop": purchase has no cap
    store = Store(database_url)
    store.upgrade_schema()
    try:
        store.record_exposures("alice", {"shop": "trial"}, at(0))
        convert(store, "alice", "purchase", at(1), value=30.0, variant="trial")
        with store.writing() as conn:  # rows lost from the rollups, as a bug or a restore could
            for table in ROLLUP_TABLES:
                conn.execute(table.delete())
        env = {"ABCONV_DATABASE_URL": database_url, "ABCONV_EXPERIMENTS_DIR": str(folder)}
        result = CliRunner().invoke(cli, ["rollups", "rebuild"], env=env)
        assert result.exit_code == 0, result.output
        assert result.output == "rollups rebuilt for 1 experiment(s): shop\n"
        counts = store.result_counts("shop", {})
        assert counts.visitors == {"trial": 1}
        assert counts.goals[("purchase", "trial")] == GoalCounts(
            1, 1, 30.0, 900.0, 27000.0, 0, 1.0, 30.0
        )
        other = CliRunner().invoke(cli, ["rollups", "rebuild", "nothing"], env=env)
        assert other.output == "rollups rebuilt for 1 experiment(s): nothing\n"
    finally:
        store.dispose()


def test_concurrent_writers_keep_the_rollups_of_one_visitor_right(database_url: str) -> None:
    """Four stores (as four workers) and eight threads convert the same visitors
    at once, with batches and duplicates: the rollups equal the events sent and
    a rebuild (on PostgreSQL, one visitor's events queue on their exposure row)."""
    stores = [Store(database_url) for _ in range(4)]
    stores[0].upgrade_schema()
    sent, rng = Sent(), random.Random(15)
    for n in range(10):
        stores[0].record_exposures(f"v{n}", {"shop": VARIANTS[n % 3]}, at(0))
        sent.expose(f"v{n}", VARIANTS[n % 3], at(0))
    events = []
    for i in range(300):
        n, goal = rng.randrange(10), rng.choice(sorted(GOALS))
        when = at(rng.randrange(5), rng.randrange(24))
        variant = VARIANTS[n % 3]
        row = NewConversion(
            "shop", variant, f"v{n}", goal, GOALS[goal], float(i % 7), f"e{i}", when
        )
        events.append(row)
    sent_rows = events + rng.sample(events, 60)  # duplicates: the same event again
    rng.shuffle(sent_rows)
    cuts = sorted(rng.sample(range(1, len(sent_rows)), 120))
    batches = [sent_rows[i:j] for i, j in itertools.pairwise([0, *cuts, len(sent_rows)])]
    try:
        with ThreadPoolExecutor(8) as pool:
            # Meanwhile the file's cap changes back and forth, as results are read.
            recaps = pool.submit(
                lambda: [stores[1].result_counts("shop", {"purchase": 3.0} if i % 2 else {})
                         for i in range(20)]
            )  # fmt: skip
            list(pool.map(lambda ib: stores[ib[0] % 4].record_conversions(ib[1]),
                          enumerate(batches)))  # fmt: skip
            recaps.result()
        for row in events:
            sent.convert(row)
        for caps in ({"purchase": 3.0}, {}, {"purchase": 4.0}):
            assert_same(stores[0].result_counts("shop", caps), sent.counts(caps))
        incremental = rollup_rows(stores[0], "shop")
        stores[0].rebuild_rollups("shop")
        assert_same_rows(rollup_rows(stores[0], "shop"), incremental)
    finally:
        for store in stores:
            store.dispose()


def test_the_results_bench_runs_on_a_tiny_database() -> None:
    """``bench/bench_results.py`` at 300 exposures, one call: it fills, rebuilds and
    measures (the figures themselves are not checked: no timed assertions)."""
    path = Path(__file__).parents[1] / "bench" / "bench_results.py"
    spec = importlib.util.spec_from_file_location("bench_results", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    figures = bench.measure(300, calls=1)
    assert set(figures) == {"fill_s", "counts_ms", "rollups_ms", "route_ms"}


def test_a_goal_whose_kind_changed_counts_as_soft_as_the_rebuild_says(store: Store) -> None:
    store.record_exposures("alice", {"shop": "a"}, at(0))
    store.record_exposures("bob", {"shop": "a"}, at(0))
    rows = [
        NewConversion("shop", "a", "alice", "signup", "hard", None, None, at(1)),
        NewConversion("shop", "a", "bob", "signup", "soft", None, None, at(1)),  # file changed
        NewConversion("shop", "a", "bob", "purchase", "hard", 5.0, None, at(2)),
    ]
    store.record_conversions(rows)
    incremental = rollup_rows(store, "shop")
    assert {row[2]: row[4] for row in incremental["rollup_goal"]} == {
        "purchase": "hard",
        "signup": "soft",
    }
    assert store.result_counts("shop", {}).pairs == [PairCounts("signup", "purchase", "a", 2, 1, 0)]
    store.rebuild_rollups("shop")
    assert rollup_rows(store, "shop") == incremental


def test_abconv_rollups_rebuild_names_an_unreachable_database(tmp_path: Path) -> None:
    env = {
        "ABCONV_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "ABCONV_EXPERIMENTS_DIR": str(tmp_path),
    }
    result = CliRunner().invoke(cli, ["rollups", "rebuild"], env=env)
    assert result.exit_code == 1
    assert "Error: database postgresql://nobody@127.0.0.1:1/none cannot be rebuilt: " in (
        result.output
    )
    assert "Traceback" not in result.output
