"""Hot paths: /api/assign and /lp/KEY for new and returning visitors, as ratios of a bare route.

Runs gunicorn with the settings of ``abconv serve`` (2 workers of 8 threads;
``--worker sync``: the former 2 sync workers) on a bare Flask JSON route and on
abconv with a fresh SQLite database (or ``ABCONV_DATABASE_URL``), drives each
with ``wrk -t1 -c16`` on loopback, and prints requests per second and the ratio
to the bare route measured in the same run. Needs ``wrk`` (``apt-get install wrk``).

    python3 bench/bench_assign.py [--seconds 5] [--worker abconv|sync] [--threads 8]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import start as start_gunicorn

ROOT = Path(__file__).parents[1]
# Every request a new visitor id, for the bare route too, so both pay the
# same client-side cost of generating requests.
NEW_VISITORS = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "PATH?experiment=homepage-cta&visitor=PREFIX-" .. counter)
end
"""
# A landing page (a rendered template, or a 302) for a new visitor each time:
# the visitor id comes in the cookie, as from a browser.
NEW_LANDING_VISITORS = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "PATH", {["Cookie"] = "abconv_visitor=PREFIX-" .. counter})
end
"""
# A thousand returning visitors, recorded during the warm-up.
RETURNING_VISITORS = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/api/assign?experiment=homepage-cta&visitor=back-" .. (counter % 1000))
end
"""


def start(target: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """gunicorn under ``abconv serve``'s settings, as ``bench/run.py`` starts it."""
    return start_gunicorn(target, env, "/healthz" if "wsgi" in target else "/bare")


def wrk(url: str, seconds: int, script: str | None = None) -> float:
    command = ["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        if script:
            # wrk's math.random is unseeded: a prefix per round keeps ids new.
            lua.write(script.replace("PREFIX", f"r{time.time_ns()}"))
    if script:
        command += ["-s", lua.name]
    out = subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout
    os.unlink(lua.name)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed requests on {url}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def landing(path: str) -> str:
    return NEW_LANDING_VISITORS.replace("PATH", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--worker", choices=["abconv", "sync"], default="abconv")
    parser.add_argument("--threads", type=int, default=8, help="per worker (abconv worker)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench_assign needs wrk: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp())
    env = {**os.environ, "ABCONV_EXPERIMENTS_DIR": str(ROOT / "experiments")}
    env.setdefault("ABCONV_DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    # This checkout's abconv, whatever is installed.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "bench"), str(ROOT / "src")])
    env["BENCH_WORKER"], env["BENCH_THREADS"] = args.worker, str(args.threads)
    bare, bare_url = start("bare_app:app", env)
    abconv, abconv_url = start("wsgi:app", env)
    try:
        bare_script = NEW_VISITORS.replace("PATH", "/bare")
        assign_script = NEW_VISITORS.replace("PATH", "/api/assign")
        for _ in range(2):  # warm both up, and record the returning visitors
            wrk(bare_url + "/", 1, bare_script)
            wrk(abconv_url + "/", 1, RETURNING_VISITORS)
        base = wrk(bare_url + "/", args.seconds, bare_script)
        returning = wrk(abconv_url + "/", args.seconds, RETURNING_VISITORS)
        new = wrk(abconv_url + "/", args.seconds, assign_script)
        page = wrk(abconv_url + "/", args.seconds, landing("/lp/pricing-page"))
        redirect = wrk(abconv_url + "/", args.seconds, landing("/lp/signup-redirect?utm_source=a"))
        base_again = wrk(bare_url + "/", args.seconds, bare_script)
    finally:
        for process in (bare, abconv):
            process.terminate()
            process.wait()
    bare_rate = (base + base_again) / 2
    database = env["ABCONV_DATABASE_URL"].split(":")[0]
    setting = (
        "2 sync workers" if args.worker == "sync" else f"2 abconv workers x {args.threads} threads"
    )
    print(f"database: {database}; gunicorn {setting}; wrk -t1 -c16 -d{args.seconds}s")
    rows = [
        ("bare Flask route", bare_rate, f"runs: {base:.0f}, {base_again:.0f}"),
        ("assign, returning", returning, "no write; no query once cached"),
        ("assign, new visitor", new, "exposure committed"),
        ("/lp/ page, new visitor", page, "template rendered; half enrolled (traffic 0.5)"),
        ("/lp/ redirect, new", redirect, "exposure committed, then 302"),
    ]
    for name, rate, note in rows:
        print(f"{name:<22} {rate:8.0f} req/s  {rate / bare_rate:.2f}x  ({note})")


if __name__ == "__main__":
    main()
