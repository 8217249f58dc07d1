"""Crash safety: SIGKILLed workers, then the whole server, under load; nothing lost or doubled.

Four client processes (tests/crash_clients.py) send batches of 1,000
conversions to exposed visitors and send again, with the same event ids,
whatever got no reply (and every third batch once more after its 200, as
if the reply had been lost). Meanwhile the test SIGKILLs gunicorn workers
at random moments, then the whole server (master and workers, its process
group) once, starts it again on the same database, and lets the clients
carry on. Then it counts the stored rows by (visitor, event_id): every
event that got a 200 is stored exactly once.

A kill that lands between two requests proves nothing, so the test only
kills a worker it sees serving a request: a sync worker holds an accepted
connection on the server's port exactly while it serves one (read from
``/proc/net/tcp`` and the worker's ``/proc/PID/fd``). The client that was
cut off confirms it (its connection dropped without a reply). If a round
still cut no request off (a worker can finish between the look and the
kill), the whole scenario runs again; the assertions are never retried.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import operator
import os
import queue
import random
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from abconv.store import normalise_url
from abconv.store.tables import CONVERSION
from tests.crash_clients import ClientReport, run_client
from tests.test_concurrency import (  # noqa: F401 - the fixture
    ADMIN_PASSWORD,
    gunicorn,
    request,
    start_gunicorn,
    stop_gunicorn,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc"),
]

CLIENTS = 4
VISITORS_PER_CLIENT = 50
WORKER_KILLS = 3
ROUNDS = 3  # scenario attempts until one cut requests off with both kinds of kill
ROUND_LIMIT = 45.0  # seconds; a round that takes longer is cut short and counts as failed

T = TypeVar("T")


@dataclass
class Server:
    """The server under test; replaced when the whole server is killed and restarted."""

    base: str
    process: subprocess.Popen[bytes]
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)  # by the test

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])


@dataclass
class Round:
    """One run of the scenario and what its kills did."""

    reports: list[ClientReport] = field(default_factory=list, repr=False)
    worker_kills: int = 0
    worker_cut_offs: int = 0  # worker kills that a client saw cut its request off
    server_kills: int = 0
    server_kill_cut_off: bool = False
    same_port: bool = False  # the restarted server got its old port back
    finished: bool = False  # the whole program ran before the round's time limit

    def landed(self) -> bool:
        return self.finished and self.worker_cut_offs > 0 and self.server_kill_cut_off


def worker_pids(master: int) -> list[int]:
    """The live children of ``master``, from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            state, parent = stat.rsplit(")", 1)[1].split()[:2]
            if int(parent) == master and state != "Z":
                pids.append(int(entry))
    return pids


def connection_inodes(port: int) -> set[str]:
    """Socket inodes of established TCP connections accepted on ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    inodes.add(fields[9])
    return inodes


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def workers_in_request(server: Server) -> list[int]:
    """Workers holding a client's connection right now: each is serving a request."""
    accepted = connection_inodes(server.port)
    return [pid for pid in worker_pids(server.process.pid) if socket_inodes(pid) & accepted]


def until(condition: Callable[[], T], seconds: float) -> T | None:
    """Poll ``condition`` until it gives a truthy value (returned), or None after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    return None


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def expose(server: Server, visitors: list[str]) -> None:
    """Record each visitor's exposure to ``shop`` before any of their conversions."""
    events: list[dict[str, object]] = [
        {"type": "exposure", "visitor": visitor, "experiment": "shop"} for visitor in visitors
    ]
    status, body = request(server.base, "/api/events", {"events": events})
    assert status == 200, body
    assert body["exposures"]["recorded"] == len(visitors), body


def run_round(
    number: int, server: Server, experiments_dir: Path, database_url: str, log: Path
) -> Round:
    """The scenario once: load, worker kills, one whole-server kill and restart, more load."""
    rng = random.Random()
    result = Round()
    visitors = [[f"r{number}c{c}v{i}" for i in range(VISITORS_PER_CLIENT)] for c in range(CLIENTS)]
    expose(server, [visitor for group in visitors for visitor in group])

    context = multiprocessing.get_context("spawn")
    port = context.Value("i", server.port)
    cut_offs = context.Value("i", 0)
    acknowledged = context.Array("i", CLIENTS)  # batches acknowledged, by client
    stop = context.Event()
    reports: multiprocessing.Queue[ClientReport] = context.Queue()
    clients = [
        context.Process(
            target=run_client,
            args=(c, visitors[c], ADMIN_PASSWORD, port, cut_offs, acknowledged, stop, reports),
        )
        for c in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    deadline = time.monotonic() + ROUND_LIMIT

    def left() -> float:
        return deadline - time.monotonic()

    def kill_in_request(whole_server: bool) -> bool:
        """Kill a worker seen serving a request (or, then, the whole server); was one cut off?"""
        busy = until(lambda: workers_in_request(server), left())
        if not busy:
            return False
        before = cut_offs.value
        if whole_server:
            os.killpg(server.process.pid, signal.SIGKILL)
            result.server_kills += 1
        else:
            os.kill(rng.choice(busy), signal.SIGKILL)
            result.worker_kills += 1
        return bool(until(lambda: cut_offs.value > before, 2.0))

    try:
        until(lambda: all(acknowledged), left())  # every client under way
        for _ in range(WORKER_KILLS):
            time.sleep(rng.uniform(0.05, 0.5))
            result.worker_cut_offs += kill_in_request(whole_server=False)
        time.sleep(rng.uniform(0.05, 0.5))
        result.server_kill_cut_off = kill_in_request(whole_server=True)
        if not result.server_kills:  # no request came in time: kill it all the same
            os.killpg(server.process.pid, signal.SIGKILL)
            result.server_kills += 1
        server.process.wait()
        result.same_port = restart(server, database_url, experiments_dir, log)
        port.value = server.port
        before_restart = list(acknowledged)
        # The clients carry on: each gets at least one more batch through the new server.
        result.finished = bool(
            until(lambda: all(map(operator.gt, acknowledged, before_restart)), left())
        )
    finally:
        stop.set()
        result.reports = collect(reports, clients)
    return result


def restart(server: Server, database_url: str, experiments_dir: Path, log: Path) -> bool:
    """Start the server again on the same database: on its port if it is free, else another.

    Returns whether it got its old port back.
    """
    ports = [server.port, None] if until(lambda: port_is_free(server.port), 5.0) else [None]
    for port in ports:
        try:
            server.base, server.process = start_gunicorn(database_url, experiments_dir, log, port)
        except RuntimeError:
            if port is None:
                raise
            continue
        server.started.append(server.process)
        return port is not None
    raise AssertionError("unreachable: the last try raises")


def collect(reports: multiprocessing.Queue[ClientReport], clients: list[Any]) -> list[ClientReport]:
    """The clients' reports; a client stuck without a server is ended (the round then fails)."""
    collected = []
    with contextlib.suppress(queue.Empty):
        for _ in clients:
            collected.append(reports.get(timeout=90))
    for client in clients:
        client.join(timeout=5)
        if client.is_alive():
            client.kill()
            client.join()
    return collected


def stored_events(database_url: str) -> Counter[str]:
    """Conversion rows of ``shop`` by "visitor event_id": how often each event is stored."""
    engine = sa.create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(CONVERSION.c.visitor, CONVERSION.c.event_id, sa.func.count())
                .where(CONVERSION.c.experiment == "shop")
                .group_by(CONVERSION.c.visitor, CONVERSION.c.event_id)
            ).all()
    finally:
        engine.dispose()
    return Counter({f"{visitor} {event_id}": count for visitor, event_id, count in rows})


def test_sigkilled_workers_and_server_lose_and_double_no_acknowledged_event(
    gunicorn: tuple[str, subprocess.Popen[bytes]],  # noqa: F811
    database_url: str,
    experiments_dir: Path,
    tmp_path: Path,
) -> None:
    server = Server(*gunicorn)
    rounds: list[Round] = []
    try:
        while len(rounds) < ROUNDS and not (rounds and rounds[-1].landed()):
            rounds.append(
                run_round(len(rounds), server, experiments_dir, database_url, tmp_path / "g.log")
            )
    finally:
        for process in server.started:
            stop_gunicorn(process)

    reports = [report for r in rounds for report in r.reports]
    sent = {key for report in reports for key in report.sent}
    acknowledged = {key for report in reports for key in report.acknowledged}
    stored = stored_events(database_url)
    lost = acknowledged - set(stored)
    doubled = {key for key, count in stored.items() if count > 1}
    print(
        f"\ncrash safety ({database_url.split(':')[0].split('+')[0]}): {len(rounds)} round(s), "
        f"sent {len(sent):,}, acknowledged {len(acknowledged):,}, stored {len(stored):,}, "
        f"lost {len(lost)}, doubled {len(doubled)}, "
        f"worker kills {sum(r.worker_kills for r in rounds)} "
        f"({sum(r.worker_cut_offs for r in rounds)} cut a request off), "
        f"whole-server kills {sum(r.server_kills for r in rounds)} "
        f"({sum(r.server_kill_cut_off for r in rounds)} cut requests off; restarted on "
        f"{'the same' if rounds[-1].same_port else 'another'} port), "
        f"requests cut off {sum(report.cut_off for report in reports)} "
        f"({sum(report.committed_unanswered for report in reports)} after their commit), "
        f"acknowledged batches sent again {sum(report.resent for report in reports)}, "
        f"refused while down {sum(report.refused for report in reports)}"
    )
    assert rounds[-1].landed(), f"no round cut requests off with both kinds of kill: {rounds}"
    assert [u for report in reports for u in report.unexpected] == []
    assert acknowledged == sent  # every batch was sent until it was acknowledged
    assert not lost, sorted(lost)[:10]
    assert not doubled, sorted(doubled)[:10]
    assert set(stored) == sent  # nothing stored that no client sent
