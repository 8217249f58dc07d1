"""Time the results of an experiment at 1,000,000 exposures and at 10,000.

Run: ``python3 bench/bench_results.py [--small N] [--large N] [--calls N]``.
Fills two SQLite databases (3 variants, 4 goals, 60 days; conversions 15 %
of exposures) by bulk-inserting raw rows and running ``rollups rebuild``,
then prints the median latency of

- ``result_counts``: the storage part alone,
- ``results document``: ``result_counts`` and the whole results document
  (analysis, soft→hard, timeline, progress), and
- ``results route``: ``GET /api/experiments/bench/results`` through the Flask test
  client with the admin bearer,

for both sizes, with the ratio large / small. Target: ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from abconv import create_app
from abconv.results import results_document
from abconv.store import Store, utcnow

KEY = "bench"
VARIANTS = ["control", "b", "c"]
GOALS = [("purchase", "hard"), ("quote", "hard"), ("guide", "soft"), ("newsletter", "soft")]
DAYS = 60
START = datetime(2026, 9, 1)
PASSWORD = "bench-password"
EXPERIMENT = f"""
key = "{KEY}"
name = "Results bench"
status = "running"
kind = "cta"
{
    "".join(
        f'''
[[variants]]
key = "{v}"
content = {{ text = "{v}" }}
'''
        for v in VARIANTS
    )
}
[[goals]]
key = "purchase"
kind = "hard"
value = true
primary = true
cap = 500

[[goals]]
key = "quote"
kind = "hard"

[[goals]]
key = "guide"
kind = "soft"

[[goals]]
key = "newsletter"
kind = "soft"
"""


def stamp(at: datetime) -> str:
    return at.isoformat(sep=" ", timespec="microseconds")


def fill(folder: Path, exposures: int, seed: int = 15) -> str:
    """A SQLite database of ``exposures`` exposures and 15 % as many conversions."""
    url = f"sqlite:///{folder / 'abconv.sqlite3'}"
    store = Store(url)
    store.upgrade_schema()
    store.dispose()
    rng = np.random.default_rng(seed)
    exposed_at = rng.uniform(0, DAYS * 86_400, size=exposures)
    variants = rng.integers(0, len(VARIANTS), size=exposures)
    conversions = exposures * 15 // 100
    who = rng.integers(0, exposures, size=conversions)
    goals = rng.integers(0, len(GOALS), size=conversions)
    delay = rng.exponential(2 * 86_400, size=conversions)
    values = rng.gamma(2.0, 40.0, size=conversions)
    database = sqlite3.connect(folder / "abconv.sqlite3")
    with database:
        database.executemany(
            "INSERT INTO exposure (experiment, visitor, variant, created_at) VALUES (?, ?, ?, ?)",
            (
                (KEY, f"v{i}", VARIANTS[variants[i]], stamp(START + timedelta(seconds=s)))
                for i, s in enumerate(exposed_at.tolist())
            ),
        )
        database.executemany(
            "INSERT INTO conversion (experiment, variant, visitor, goal, kind, value, event_id,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    KEY,
                    VARIANTS[variants[v]],
                    f"v{v}",
                    GOALS[g][0],
                    GOALS[g][1],
                    round(float(values[n]), 2) if GOALS[g][0] == "purchase" else None,
                    f"e{n}",
                    stamp(START + timedelta(seconds=float(exposed_at[v] + delay[n]))),
                )  # fmt: skip
                for n, (v, g) in enumerate(zip(who.tolist(), goals.tolist(), strict=True))
            ),
        )
    database.close()
    store = Store(url)
    store.rebuild_rollups(KEY, {KEY: {"purchase": 500.0}})
    store.dispose()
    return url


def median_ms(call: Callable[[], Any], calls: int) -> float:
    call()  # warm: statement caches, the experiment registry
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(exposures: int, calls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        started = time.perf_counter()
        url = fill(folder, exposures)
        filled = time.perf_counter() - started
        experiments = folder / "experiments"
        experiments.mkdir()
        (experiments / f"{KEY}.toml").write_text(EXPERIMENT)
        app = create_app(
            {"ABCONV_DATABASE_URL": url, "ABCONV_EXPERIMENTS_DIR": str(experiments),
             "ABCONV_ADMIN_PASSWORD": PASSWORD, "ABCONV_INSTANCE_DIR": str(folder / "instance")}
        )  # fmt: skip
        services = app.extensions["abconv"]
        experiment = services.experiment(KEY)
        caps = {g.key: g.cap for g in experiment.goals if g.cap is not None}

        def rollups() -> None:
            results_document(experiment, services.store.result_counts(KEY, caps), utcnow())

        client = app.test_client()
        headers = {"Authorization": f"Bearer {PASSWORD}"}

        def route() -> None:
            reply = client.get(f"/api/experiments/{KEY}/results", headers=headers)
            assert reply.status_code == 200, reply.get_data(as_text=True)

        figures = {
            "fill_s": filled,
            "counts_ms": median_ms(lambda: services.store.result_counts(KEY, caps), calls),
            "rollups_ms": median_ms(rollups, calls),
            "route_ms": median_ms(route, max(3, calls // 4)),
        }
        services.store.dispose()
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the access log of every call
    small, large = measure(args.small, args.calls), measure(args.large, args.calls)
    print(f"{'':24}{args.small:>12,}{args.large:>12,}   ratio")
    for name, label in (
        ("counts_ms", "result_counts"),
        ("rollups_ms", "results document"),
        ("route_ms", "results route"),
    ):
        ratio = large[name] / small[name]
        print(f"{label + ' (ms)':24}{small[name]:12.2f}{large[name]:12.2f}{ratio:8.2f}x")
    print(f"{'fill + rebuild (s)':24}{small['fill_s']:12.1f}{large['fill_s']:12.1f}")


if __name__ == "__main__":
    main()
