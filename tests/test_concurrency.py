"""A real gunicorn with 4 workers: concurrent and duplicate events are stored exactly once."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from abconv.store import Store
from tests.conftest import ADMIN_PASSWORD

ROOT = Path(__file__).parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(
    base: str, path: str, body: dict[str, object] | None = None, timeout: float = 30
) -> tuple[int, dict]:
    """One call as JSON, with the admin password as a Bearer token (public routes ignore it)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN_PASSWORD}"}
    req = urllib.request.Request(base + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def start_gunicorn(
    database_url: str,
    experiments_dir: Path,
    log: Path,
    port: int | None = None,
    workers: int = 4,
) -> tuple[str, subprocess.Popen[bytes]]:
    """A healthy gunicorn (``wsgi:app``) with the worker class and threads of
    ``abconv serve``, and its master; its log goes to ``log``.

    It runs in a session and process group of its own, whose id is the
    master's pid, so ``os.killpg`` reaches master and workers at once, as a
    crash of the whole host would.
    """
    port = port or free_port()
    env = {**os.environ, "ABCONV_DATABASE_URL": database_url,
           "ABCONV_EXPERIMENTS_DIR": str(experiments_dir),
           "ABCONV_ADMIN_PASSWORD": ADMIN_PASSWORD}  # fmt: skip
    with log.open("ab") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
             "-k", "abconv.gunicorn_worker.AbconvWorker", "--threads", "8",
             "--no-control-socket", "wsgi:app"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stream, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if request(base, "/healthz", timeout=5)[0] == 200:
                return base, process
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            stop_gunicorn(process)
            raise RuntimeError("gunicorn did not start: " + log.read_text()[-2000:])
        time.sleep(0.2)


def stop_gunicorn(process: subprocess.Popen[bytes]) -> None:
    """Stop a server from ``start_gunicorn``, then kill what is left of its group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # workers a killed master left behind
    process.wait()


@pytest.fixture
def server(gunicorn: tuple[str, subprocess.Popen[bytes]]) -> str:
    return gunicorn[0]


@pytest.fixture
def gunicorn(
    database_url: str, experiments_dir: Path, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A gunicorn with 4 workers on a free port: its base URL and master process."""
    base, process = start_gunicorn(database_url, experiments_dir, tmp_path / "gunicorn.log")
    try:
        yield base, process
    finally:
        stop_gunicorn(process)


def test_2000_conversions_and_500_duplicates_from_8_threads(server: str, database_url: str) -> None:
    visitors = [f"visitor-{i}" for i in range(200)]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(
                lambda v: request(server, f"/api/assign?visitor={v}&experiment=shop")[0], visitors
            )
        )
    assert statuses == [200] * len(visitors)

    rng = random.Random(7)
    events = [
        {
            "visitor": visitors[i % len(visitors)],
            "goal": "purchase",
            "value": 10,
            "event_id": f"e{i}",
        }
        for i in range(2000)
    ]
    sent = events + rng.sample(events, 500)
    rng.shuffle(sent)
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda e: request(server, "/api/convert", e), sent))
    assert [status for status, _ in replies] == [200] * len(sent)

    store = Store(database_url)
    try:
        assert store.count_rows("exposure", "shop") == 200
        assert store.count_rows("conversion", "shop") == 2000
        value_sum = sum(row["value_sum"] for row in store.conversions_by_variant("shop"))
        assert value_sum == 20_000
    finally:
        store.dispose()


def test_the_same_new_visitor_on_every_worker_at_once_gets_one_variant(
    server: str, database_url: str
) -> None:
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: request(server, "/api/assign?visitor=racer"), range(64)))
    assert {status for status, _ in replies} == {200}
    assert len({json.dumps(body["assignments"]) for _, body in replies}) == 1
    store = Store(database_url)
    try:
        assert store.count_rows("exposure") == 1
    finally:
        store.dispose()


def test_every_worker_picks_up_an_added_file(server: str, experiments_dir: Path) -> None:
    from tests.conftest import write_experiment

    assert request(server, "/api/assign?visitor=a&experiment=launch")[0] == 404
    write_experiment(experiments_dir, "launch")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with ThreadPoolExecutor(8) as pool:
            statuses = list(
                pool.map(
                    lambda i: request(server, f"/api/assign?visitor=v{i}&experiment=launch")[0],
                    range(40),
                )
            )
        if statuses == [200] * 40:
            break
        time.sleep(0.3)
    assert statuses == [200] * 40  # requests spread over the 4 workers all see the new file
