"""The benchmark: every figure of the write path, as ratios of a bare Flask route.

Run: ``python3 bench/run.py`` (about 4 minutes; ``--help`` for the knobs).

Starts gunicorn with the settings of ``abconv serve`` twice, side by side:
on the bare Flask JSON route of ``bench/bare_app.py``, and on abconv with a
fresh database (SQLite; PostgreSQL too when ``ABCONV_TEST_DATABASE_URL`` is
set: a database ``bench`` on that server, created when absent and emptied
first). Drives them with ``wrk -t1 -c16`` (``apt-get install wrk``), or a
Python load generator when wrk is absent, in alternating rounds: the bare
route, then each abconv route. Measures

- ``/api/assign``, a new visitor each request (exposure committed),
- ``/api/assign``, returning visitors (1,000 recorded during the warm-up),
- ``/api/convert`` with an ``event_id`` (rollups updated), by those visitors,
- ``/lp/signup-redirect``, a new visitor each request (exposure, then 302),
- ``/api/events``, 1,000 events a request (500 new exposures and their
  500 conversions), in events per second,

each with its p99 latency against the bare route's, then ``abconv.analyze``
on 5 variants x 6 goals (``bench_analyze.py``) and the results route at 10k
and 1M stored exposures (``bench_results.py``). Writes the figures to
``bench/results/run-<time>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "src")]
PASSWORD = "bench-password"
CONNECTIONS = 16
BATCH = 1000

# Targets of issue 17: (SQLite, PostgreSQL) ratio to the bare route's req/s.
TARGETS = {
    "assign_new": (0.75, 0.50),
    "assign_returning": (0.90, 0.90),
    "convert": (0.65, 0.40),
    "lp_redirect": (0.70, 0.45),
}
BATCH_TARGETS = (30_000, 15_000)  # events/s
P99_TARGETS = (3.0, 4.0)  # at most this many times the bare route's p99

# -- the requests, as wrk scripts and as Python request makers ----------------
# Every request a new id where the route needs one; PREFIX is unique per round
# (wrk's math.random is unseeded), COUNTER the request's number.

LUA = """
counter = 0
request = function()
  counter = counter + 1
  return %s
end
"""
ROUTES: dict[str, dict[str, Any]] = {
    "bare": {"method": "GET", "path": '"/bare?visitor=PREFIX-" .. counter'},
    "assign_new": {
        "method": "GET",
        "path": '"/api/assign?experiment=homepage-cta&visitor=PREFIX-" .. counter',
    },
    "assign_returning": {
        "method": "GET",
        "path": '"/api/assign?experiment=homepage-cta&visitor=back-" .. (counter % 1000)',
    },
    "convert": {
        "method": "POST",
        "path": '"/api/convert"',
        # a purchase (with a value) every third request, else a soft goal
        "body": '\'{"visitor":"back-\' .. (counter % 1000) .. \'","goal":"\' .. '
        '({"purchase","guide-download","newsletter"})[counter % 3 + 1] .. \'"\' .. '
        '(counter % 3 == 0 and \',"value":12.5\' or "") .. '
        "',\"event_id\":\"PREFIX-' .. counter .. '\"}'",
    },
    "lp_redirect": {
        "method": "GET",
        "path": '"/lp/signup-redirect?utm_source=bench"',
        "cookie": '"abconv_visitor=PREFIX-" .. counter',
    },
    "batch": {"method": "POST", "path": '"/api/events"', "batch": True},
}
LABELS = {
    "bare": "bare Flask route",
    "assign_new": "assign, new visitor",
    "assign_returning": "assign, returning",
    "convert": "convert + event_id",
    "lp_redirect": "/lp redirect, new",
    "batch": "batch /api/events",
}

BATCH_LUA = """
counter = 0
request = function()
  counter = counter + 1
  local events = {}
  for i = 1, %(half)d do
    local visitor = "PREFIX-" .. counter .. "-" .. i
    events[i] = '{"type":"exposure","experiment":"homepage-cta","visitor":"' .. visitor .. '"}'
    events[%(half)d + i] = '{"type":"conversion","visitor":"' .. visitor ..
      '","goal":"purchase","value":10,"event_id":"e' .. i .. '"}'
  end
  local body = '{"events":[' .. table.concat(events, ",") .. ']}'
  return wrk.format("POST", "/api/events", HEADERS, body)
end
"""


def wrk_script(route: str, prefix: str) -> str:
    spec = ROUTES[route]
    headers = '{["Content-Type"] = "application/json", ["Authorization"] = "Bearer PASSWORD"}'
    headers = headers.replace("PASSWORD", PASSWORD)
    if spec.get("batch"):
        text = BATCH_LUA % {"half": BATCH // 2}
        return text.replace("HEADERS", headers).replace("PREFIX", prefix)
    if "cookie" in spec:
        call = f'wrk.format("GET", {spec["path"]}, {{["Cookie"] = {spec["cookie"]}}})'
    elif "body" in spec:
        call = f'wrk.format("POST", {spec["path"]}, {headers}, {spec["body"]})'
    else:
        call = f'wrk.format("GET", {spec["path"]})'
    return (LUA % call).replace("PREFIX", prefix)


def python_request(
    route: str, prefix: str, n: int
) -> tuple[str, str, bytes | None, dict[str, str]]:
    """The ``n``-th request of ``route`` for the Python load generator (as the wrk scripts)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {PASSWORD}"}
    if route == "bare":
        return "GET", f"/bare?visitor={prefix}-{n}", None, {}
    if route == "assign_new":
        return "GET", f"/api/assign?experiment=homepage-cta&visitor={prefix}-{n}", None, {}
    if route == "assign_returning":
        return "GET", f"/api/assign?experiment=homepage-cta&visitor=back-{n % 1000}", None, {}
    if route == "lp_redirect":
        cookie = {"Cookie": f"abconv_visitor={prefix}-{n}"}
        return "GET", "/lp/signup-redirect?utm_source=bench", None, cookie
    if route == "convert":
        goal = ("purchase", "guide-download", "newsletter")[n % 3]
        body = {"visitor": f"back-{n % 1000}", "goal": goal, "event_id": f"{prefix}-{n}"}
        if goal == "purchase":
            body["value"] = 12.5
        return "POST", "/api/convert", json.dumps(body).encode(), headers
    half = BATCH // 2
    visitors = [f"{prefix}-{n}-{i}" for i in range(half)]
    events = [{"type": "exposure", "experiment": "homepage-cta", "visitor": v} for v in visitors]
    events += [
        {"type": "conversion", "visitor": v, "goal": "purchase", "value": 10, "event_id": f"e{i}"}
        for i, v in enumerate(visitors)
    ]
    return "POST", "/api/events", json.dumps({"events": events}).encode(), headers


# -- load ----------------------------------------------------------------------


def load_wrk(base: str, route: str, seconds: float, prefix: str) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(wrk_script(route, prefix))
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency",
               "-s", lua.name, base + "/"]  # fmt: skip
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(lua.name)
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "rps": rate,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
        "failed": int(failed.group(1)) if failed else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
    }


def load_python(base: str, route: str, seconds: float, prefix: str) -> dict[str, float]:
    """``CONNECTIONS`` keep-alive connections on threads, for ``seconds``."""
    host, port = base.removeprefix("http://").split(":")
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    failed = [0]
    counter = iter(range(10**9))
    lock = threading.Lock()

    def client() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        mine = []
        while time.monotonic() < deadline:
            with lock:
                n = next(counter)
            method, path, body, headers = python_request(route, prefix, n)
            started = time.perf_counter()
            connection.request(method, path, body=body, headers=headers)
            reply = connection.getresponse()
            reply.read()
            mine.append(time.perf_counter() - started)
            if reply.status >= 400:
                with lock:
                    failed[0] += 1
        connection.close()
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return {"rps": len(latencies) / elapsed, "p99_ms": p99 * 1000, "failed": failed[0],
            "socket_errors": 0}  # fmt: skip


# -- servers -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(target: str, env: dict[str, str], probe: str) -> tuple[subprocess.Popen[bytes], str]:
    """gunicorn with ``abconv serve``'s settings (``bench/gunicorn_settings.py``) on ``target``."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:gunicorn_settings",
         "-b", f"127.0.0.1:{port}", target],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + probe, timeout=5)
            return process, base
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"gunicorn {target} did not start")


def workers_cpu_seconds(server: subprocess.Popen[bytes]) -> float:
    """CPU seconds (user and system) the gunicorn workers of ``server`` have used:
    a measure of a route's cost that other load on the machine moves far less
    than req/s (NaN where /proc cannot tell)."""
    try:
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    except OSError:
        return float("nan")
    ticks = 0
    for child in children:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a worker replaced meanwhile
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def postgres_bench_url(test_url: str, name: str = "bench") -> str:
    """A database ``name`` on the server of ``test_url``, created when absent
    and emptied (its own schema dropped): other tests use ``test``."""
    import sqlalchemy as sa

    from abconv.store import normalise_url

    url = sa.engine.make_url(normalise_url(test_url))
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if (
            conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            is None
        ):
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    bench = url.set(database=name)
    engine = sa.create_engine(bench, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return bench.render_as_string(hide_password=False)


def record_returning_visitors(base: str) -> None:
    """Expose back-0 ... back-999, the returning visitors and converters."""
    events = [{"type": "exposure", "experiment": "homepage-cta", "visitor": f"back-{n}"}
              for n in range(1000)]  # fmt: skip
    request = urllib.request.Request(
        base + "/api/events", data=json.dumps({"events": events}).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {PASSWORD}"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as reply:
        reply.read()


# -- the run -------------------------------------------------------------------


def measure_database(
    name: str, url: str, args: argparse.Namespace, load: Callable[..., dict[str, float]]
) -> dict[str, Any]:
    env = {**os.environ, "ABCONV_EXPERIMENTS_DIR": str(ROOT / "experiments"),
           "ABCONV_DATABASE_URL": url, "ABCONV_ADMIN_PASSWORD": PASSWORD,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT / "src")]),
           "BENCH_WORKER": "abconv", "BENCH_THREADS": str(args.threads),
           "BENCH_WORKERS": str(args.workers)}  # fmt: skip
    instance = tempfile.mkdtemp(prefix="abconv-bench-")
    env["ABCONV_INSTANCE_DIR"] = instance
    bare, bare_url = start("bare_app:app", env, "/bare")
    app, app_url = start("wsgi:app", env, "/healthz")
    rounds: dict[str, list[dict[str, float]]] = {route: [] for route in ROUTES}
    try:
        warm = min(1.0, args.seconds)
        load(bare_url, "bare", warm, f"w{time.time_ns()}")
        record_returning_visitors(app_url)
        load(app_url, "assign_returning", warm, "warm")
        for number in range(args.rounds):
            for route in ROUTES:
                base, server = (bare_url, bare) if route == "bare" else (app_url, app)
                used = workers_cpu_seconds(server)
                figures = load(base, route, args.seconds, f"r{number}x{time.time_ns()}")
                used = workers_cpu_seconds(server) - used
                figures["cpu_us"] = 1e6 * used / max(figures["rps"] * args.seconds, 1)
                rounds[route].append(figures)
                print(f"  {name} round {number + 1}: {route:<17} {figures['rps']:9.0f} req/s"
                      f"  p99 {figures['p99_ms']:7.2f} ms  workers' CPU {figures['cpu_us']:6.0f}"
                      " µs a request", flush=True)  # fmt: skip
    finally:
        stop(app)
        stop(bare)
        shutil.rmtree(instance, ignore_errors=True)
    bare_rps = statistics.mean(r["rps"] for r in rounds["bare"])
    bare_p99 = statistics.mean(r["p99_ms"] for r in rounds["bare"])
    column = 0 if name == "sqlite" else 1
    routes: dict[str, Any] = {}
    for route, runs in rounds.items():
        rps = statistics.mean(r["rps"] for r in runs)
        p99 = statistics.mean(r["p99_ms"] for r in runs)
        entry = {
            "cpu_us": statistics.mean(r["cpu_us"] for r in runs),
            "rps": rps,
            "rps_rounds": [r["rps"] for r in runs],
            "p99_ms": p99,
            "failed": sum(int(r["failed"]) for r in runs),
            "socket_errors": sum(int(r["socket_errors"]) for r in runs),
            "ratio": rps / bare_rps,
            "p99_ratio": p99 / bare_p99 if bare_p99 else float("nan"),
        }
        if route in TARGETS:
            entry["target"] = TARGETS[route][column]
        if route == "batch":
            entry["events_per_s"] = rps * BATCH
            entry["target_events_per_s"] = BATCH_TARGETS[column]
        if route != "bare":
            entry["p99_target"] = P99_TARGETS[column]
        routes[route] = entry
    return {"database": name, "routes": routes}


def measure_analyze(calls: int) -> dict[str, float]:
    import bench_analyze

    return {
        method: bench_analyze.median_ms(bench_analyze.counts_input(method), calls)
        for method in ("bayesian", "frequentist", "sequential")
    }


def measure_results(small: int, large: int, calls: int) -> dict[str, Any]:
    import logging

    import bench_results

    logging.disable(logging.INFO)
    figures = {"small": small, "large": large}
    for size, key in ((small, "small_ms"), (large, "large_ms")):
        measured = bench_results.measure(size, calls)
        figures[key] = {name: measured[name] for name in ("counts_ms", "rollups_ms", "route_ms")}
        figures[key]["fill_s"] = measured["fill_s"]
    logging.disable(logging.NOTSET)
    return figures


def table(report: dict[str, Any]) -> str:
    nan = float("nan")  # runs saved before the CPU column have none
    lines = [f"load: {report['load']}, {report['seconds']} s x {report['rounds']} rounds per route;"
             f" gunicorn {report['gunicorn']}"]  # fmt: skip
    for db in report["databases"]:
        routes = db["routes"]
        bare = routes["bare"]
        lines.append("")
        lines.append(f"{db['database']}: bare Flask route {bare['rps']:.0f} req/s,"
                     f" p99 {bare['p99_ms']:.2f} ms, workers' CPU {bare.get('cpu_us', nan):.0f} µs"
                     " a request")  # fmt: skip
        lines.append(f"  {'route':<22}{'req/s':>9}{'ratio':>8}{'target':>8}"
                     f"{'p99 ms':>9}{'p99/bare':>9}{'target':>7}{'CPU µs':>8}  failed")  # fmt: skip
        for route, entry in routes.items():
            if route == "bare":
                continue
            if route == "batch":
                figure = f"{entry['events_per_s']:>9.0f} ev/s"
                target = f"{entry['target_events_per_s']:>8}"
                lines.append(f"  {LABELS[route]:<22}{figure:>17}{target:>8}{entry['p99_ms']:9.2f}"
                             f"{entry['p99_ratio']:9.2f}{entry['p99_target']:>7.1f}"
                             f"{entry.get('cpu_us', nan):8.0f}  {entry['failed']}")  # fmt: skip
                continue
            lines.append(f"  {LABELS[route]:<22}{entry['rps']:9.0f}{entry['ratio']:8.2f}"
                         f"{entry['target']:8.2f}{entry['p99_ms']:9.2f}{entry['p99_ratio']:9.2f}"
                         f"{entry['p99_target']:>7.1f}{entry.get('cpu_us', nan):8.0f}"
                         f"  {entry['failed']}")  # fmt: skip
    if report.get("analyze_ms"):
        lines.append("")
        lines.append("abconv.analyze, 5 variants x 6 goals (median ms): " + ", ".join(
            f"{m} {ms:.2f}" for m, ms in report["analyze_ms"].items()))  # fmt: skip
    results = report.get("results")
    if results:
        small, large = results["small_ms"], results["large_ms"]
        lines.append(f"results at {results['small']:,} vs {results['large']:,} exposures (ms):")
        for name, label in (("counts_ms", "result_counts"), ("rollups_ms", "results document"),
                            ("route_ms", "results route")):  # fmt: skip
            lines.append(f"  {label:<18}{small[name]:9.2f}{large[name]:9.2f}"
                         f"{large[name] / small[name]:8.2f}x")  # fmt: skip
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    """The README's table of a run: both databases side by side."""
    names = [db["database"] for db in report["databases"]]
    by_db = {db["database"]: db["routes"] for db in report["databases"]}
    head = "| route (target SQLite / PostgreSQL) |"
    head += "".join(f" {n} | ratio | p99 ms (× bare) | CPU µs |" for n in names)
    lines = [head, "|---|" + "---|---|---|---|" * len(names)]
    for route in ROUTES:
        if route == "bare":
            label = "bare Flask route, req/s"
        elif route == "batch":
            label = f"{LABELS[route]}, events/s (≥ {BATCH_TARGETS[0]:,} / {BATCH_TARGETS[1]:,})"
        else:
            label = f"{LABELS[route]}, req/s (≥ {TARGETS[route][0]} / {TARGETS[route][1]}×)"
        cells = []
        for name in names:
            e = by_db[name][route]
            cpu = f" {e['cpu_us']:,.0f} |" if "cpu_us" in e else " |"
            if route == "batch":
                cells.append(
                    f" {e['events_per_s']:,.0f} | | {e['p99_ms']:.0f} ({e['p99_ratio']:.1f}×) |"
                    + cpu
                )
            elif route == "bare":
                cells.append(f" {e['rps']:,.0f} | 1 | {e['p99_ms']:.1f} |" + cpu)
            else:
                p99 = f"{e['p99_ms']:.0f} ({e['p99_ratio']:.1f}×)"
                cells.append(f" {e['rps']:,.0f} | {e['ratio']:.2f}× | {p99} |" + cpu)
        lines.append(f"| {label} |" + "".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per route and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="processes, as abconv serve")
    parser.add_argument("--threads", type=int, default=8, help="per worker, as abconv serve")
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--pg-database", default="bench", help="PostgreSQL database to use (emptied first)"
    )
    parser.add_argument(
        "--routes-only", action="store_true", help="skip analyze and the results route"
    )
    parser.add_argument("--analyze-calls", type=int, default=100)
    parser.add_argument("--small", type=int, default=10_000, help="exposures, results route")
    parser.add_argument("--large", type=int, default=1_000_000, help="exposures, results route")
    parser.add_argument("--results-calls", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--show", type=Path, help="print the tables of a saved run, and stop")
    args = parser.parse_args()
    if args.show is not None:
        saved = json.loads(args.show.read_text())
        print(table(saved) + "\n\n" + markdown(saved))
        return
    tool = args.load
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    load = load_wrk if tool == "wrk" else load_python
    databases: list[tuple[str, str | None]] = [] if args.no_sqlite else [("sqlite", None)]
    test_url = os.environ.get("ABCONV_TEST_DATABASE_URL")
    if test_url and not args.no_postgres:
        databases.append(("postgresql", test_url))
    report: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load": f"wrk -t1 -c{CONNECTIONS}"
        if tool == "wrk"
        else f"python, {CONNECTIONS} connections",
        "seconds": args.seconds,
        "rounds": args.rounds,
        "gunicorn": f"{args.workers} workers x {args.threads} threads, "
        "abconv.gunicorn_worker.AbconvWorker",
        "cpus": os.cpu_count(),
        "databases": [],
    }
    for name, given in databases:
        with tempfile.TemporaryDirectory() as folder:
            url = (
                f"sqlite:///{folder}/bench.sqlite3"
                if given is None
                else postgres_bench_url(given, args.pg_database)
            )
            report["databases"].append(measure_database(name, url, args, load))
    if not args.routes_only:
        print("  analyze ...", flush=True)
        report["analyze_ms"] = measure_analyze(args.analyze_calls)
        print("  results at two sizes ...", flush=True)
        report["results"] = measure_results(args.small, args.large, args.results_calls)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"run-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(table(report))
    print(f"\nfigures: {path}")


if __name__ == "__main__":
    main()
