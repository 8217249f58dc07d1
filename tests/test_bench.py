"""The benchmark command runs end to end: about a second per route, tiny
results databases, every figure present, no request failed. Nothing here
is timed: the figures are not checked, only that they exist."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
ROUTES = {"bare", "assign_new", "assign_returning", "convert", "lp_redirect", "batch"}


def run_bench(tmp_path: Path, *options: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABCONV_")}
    if "ABCONV_TEST_DATABASE_URL" in os.environ:
        env["ABCONV_TEST_DATABASE_URL"] = os.environ["ABCONV_TEST_DATABASE_URL"]
    env["PYTHONPATH"] = str(ROOT / "src")
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--seconds", "1", "--rounds", "1",
               "--small", "200", "--large", "400", "--analyze-calls", "2", "--results-calls", "2",
               "--out", str(tmp_path), *options]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "bare Flask route" in done.stdout and "results route" in done.stdout
    [figures] = tmp_path.glob("run-*.json")
    return json.loads(figures.read_text())  # type: ignore[no-any-return]


def check(report: dict, databases: list[str]) -> None:
    assert [db["database"] for db in report["databases"]] == databases
    for db in report["databases"]:
        routes = db["routes"]
        assert set(routes) == ROUTES
        for route, entry in routes.items():
            assert entry["rps"] > 0 and entry["p99_ms"] > 0, route
            assert entry["failed"] == 0, (db["database"], route, entry)
        assert routes["batch"]["events_per_s"] > 0
    assert set(report["analyze_ms"]) == {"bayesian", "frequentist", "sequential"}
    for size in ("small_ms", "large_ms"):
        assert set(report["results"][size]) >= {"counts_ms", "rollups_ms", "route_ms"}


@pytest.mark.slow
def test_bench_with_the_python_load_generator(tmp_path: Path) -> None:
    """The fallback when wrk is absent, on every database configured."""
    report = run_bench(tmp_path, "--load", "python")
    expected = ["sqlite"] + (["postgresql"] if "ABCONV_TEST_DATABASE_URL" in os.environ else [])
    assert report["load"].startswith("python")
    check(report, expected)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_bench_with_wrk(tmp_path: Path) -> None:
    report = run_bench(tmp_path, "--load", "wrk", "--no-postgres")
    assert report["load"].startswith("wrk")
    check(report, ["sqlite"])
