"""Time ``abconv.stats.analyze`` on 5 variants x 6 goals (two with values).

Run: ``python3 bench/bench_analyze.py [CALLS]``.  Prints the median time per
call over CALLS calls (default 200) for each method; the budget is 50 ms.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import numpy as np

from abconv.stats import analyze

VARIANTS = ["control", "b", "c", "d", "e"]
GOALS = [("purchase", "hard", True), ("quote", "hard", True), ("signup", "hard", False)]
GOALS += [("newsletter", "soft", False), ("guide", "soft", False), ("video", "soft", False)]
BUDGET_MS = 50.0


def counts_input(method: str, seed: int = 7) -> dict[str, Any]:
    """A realistic experiment: ~20,000 visitors per variant, rates of 1-12 %."""
    rng = np.random.default_rng(seed)
    visitors = {key: int(rng.integers(19_500, 20_500)) for key in VARIANTS}
    goals = []
    for index, (key, kind, has_value) in enumerate(GOALS):
        counts: dict[str, Any] = {}
        for variant, n in visitors.items():
            conversions = int(rng.binomial(n, 0.01 + 0.02 * index))
            entry: dict[str, Any] = {"conversions": conversions}
            if has_value:
                orders = rng.gamma(2.0, 50.0, size=conversions)
                entry["value_sum"] = float(orders.sum())
                entry["value_sum_squares"] = float((orders**2).sum())
            counts[variant] = entry
        goals.append(
            {"key": key, "kind": kind, "primary": index == 0, "value": has_value, "counts": counts}
        )
    return {
        "experiment": "bench",
        "method": method,
        "variants": [{"key": key, "visitors": n} for key, n in visitors.items()],
        "goals": goals,
    }


def median_ms(data: dict[str, Any], calls: int) -> float:
    analyze(data)  # warm-up: imports and first-call caches
    timings = []
    for _ in range(calls):
        start = time.perf_counter()
        analyze(data)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1000.0


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    worst = 0.0
    for method in ("bayesian", "frequentist", "sequential"):
        ms = median_ms(counts_input(method), calls)
        worst = max(worst, ms)
        print(
            f"analyze, {method:<11} 5 variants x 6 goals: {ms:6.2f} ms per call (median of {calls})"
        )
    verdict = "within" if worst < BUDGET_MS else "OVER"
    print(f"worst {worst:.2f} ms: {verdict} the {BUDGET_MS:.0f} ms budget")


if __name__ == "__main__":
    main()
