"""Writes per second through the Store from several threads of one process,
as a gunicorn worker's threads make them: ``--threads`` threads, each
recording new visitors' exposures, then conversions of those visitors.
Shows what group commit (``abconv.store.group_commit``) does without HTTP,
Flask or a load generator in the way. Run with ``PYTHONPATH`` set to the
``src`` of the code to measure; ``--database-url`` for PostgreSQL.

    python3 bench/bench_group_commit.py --threads 8
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable

from abconv.store import NewConversion, Store, utcnow


def timed(threads: int, each: int, write: Callable[[int, int], object]) -> float:
    """Writes per second of ``threads`` threads calling ``write(thread, n)`` ``each`` times."""
    workers = [
        threading.Thread(target=lambda t=t: [write(t, n) for n in range(each)])
        for t in range(threads)
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return threads * each / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--each", type=int, default=200, help="writes per thread and kind")
    parser.add_argument("--database-url", help="default: a new SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(args.database_url or f"sqlite:///{folder}/bench.sqlite3")
        store.upgrade_schema()
        prefix = f"b{time.time_ns()}"

        def expose(t: int, n: int) -> object:
            return store.record_exposures(f"{prefix}-{t}-{n}", {"homepage-cta": "a"})

        def convert(t: int, n: int) -> object:
            row = NewConversion("homepage-cta", "a", f"{prefix}-{t}-{n}", "purchase",
                                "hard", 12.5, "e1", utcnow())  # fmt: skip
            return store.record_conversions([row])

        exposures = timed(args.threads, args.each, expose)
        conversions = timed(args.threads, args.each, convert)
        store.dispose()
    print(f"{args.threads} threads: {exposures:,.0f} exposures/s, {conversions:,.0f} conversions/s")


if __name__ == "__main__":
    main()
