"""The database going away: writes answer 503 JSON within 3 seconds, assignment
answers from the hash, /healthz names the part that is down, nothing is
half-stored, and everything recovers without a restart.

A small TCP relay stands between abconv and PostgreSQL; closing it is the
outage (PostgreSQL stopped: connections cut, new ones refused), reopening it
on the same port is the recovery. Its silent mode accepts connections and
never answers (a database that hangs). For SQLite, the outage is a database
file that cannot be written.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from abconv import create_app
from abconv.assignment import assign
from abconv.service import DEGRADED
from abconv.store import Store
from abconv.store.outage import DatabaseHanging, HangGuard
from tests.conftest import (
    ADMIN_PASSWORD,
    POSTGRES_URL,
    admin_client,
    assert_error,
    postgres_schema,
    write_experiment,
)

LIMIT = 3.0  # seconds: the longest a request may take during an outage


class Relay:
    """Forwards 127.0.0.1:port to PostgreSQL until ``stop()``; ``start()`` again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.connections: list[socket.socket] = []
        self.silent = False  # accept, and never answer

    def start(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def stop(self) -> None:
        if self.listener.fileno() == -1:
            return  # stopped already
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        self.listener.close()
        self.cut()

    def hang(self) -> None:
        """Cut the connections; accept new ones but never answer them."""
        self.silent = True
        self.cut()

    def resume(self) -> None:
        self.silent = False
        self.cut()

    def cut(self) -> None:
        for connection in self.connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()
        self.connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self.silent:
                self.connections.append(client)
                continue
            upstream = socket.create_connection(self.target)
            self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def relayed_url() -> Iterator[tuple[str, Relay]]:
    if not POSTGRES_URL:
        pytest.skip("ABCONV_TEST_DATABASE_URL is not set")
    for url in postgres_schema(POSTGRES_URL):
        parsed = sa.engine.make_url(url)
        relay = Relay((parsed.host or "127.0.0.1", parsed.port or 5432))
        relay.start()
        yield parsed.set(host="127.0.0.1", port=relay.port).render_as_string(False), relay
        relay.stop()


@pytest.fixture
def relayed_app(relayed_url: tuple[str, Relay], experiments_dir: Path) -> Iterator[Flask]:
    write_experiment(experiments_dir, "other")
    url, _ = relayed_url
    app = create_app(
        {
            "ABCONV_DATABASE_URL": url,
            "ABCONV_EXPERIMENTS_DIR": str(experiments_dir),
            "ABCONV_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
    )
    yield app
    app.extensions["abconv"].store.dispose()


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    reply = call()
    return reply, time.perf_counter() - started


def write_calls(client: FlaskClient, visitor: str) -> list[Callable[[], Any]]:
    """Every route that writes, as calls that fail during an outage."""
    conversion = {"visitor": visitor, "goal": "purchase", "value": 5, "event_id": f"{visitor}-o1"}
    batch = {"events": [{"type": "exposure", "visitor": visitor, "experiment": "shop"}]}
    return [
        lambda: client.post("/api/convert", json=conversion),
        lambda: client.post("/api/convert", json={"visitor": visitor, "goal": "newsletter"}),
        lambda: client.post("/api/events", json=batch),
    ]


def assert_writes_refused(client: FlaskClient, visitor: str) -> float:
    """Every write answers 503 JSON within :data:`LIMIT`; return the slowest."""
    slowest = 0.0
    for call in write_calls(client, visitor):
        reply, seconds = timed(call)
        assert_error(reply, 503, "database_unavailable")
        assert seconds < LIMIT, f"a 503 took {seconds:.2f} s"
        slowest = max(slowest, seconds)
    return slowest


def assert_assignment_degraded(app: Flask, client: FlaskClient, visitor: str) -> float:
    """Assignment answers 200 from the hash, nothing enrolled, and says so."""
    reply, seconds = timed(lambda: client.get(f"/api/assign?visitor={visitor}"))
    assert reply.status_code == 200 and seconds < LIMIT
    body = reply.get_json()
    assert body["degraded"] == DEGRADED
    registry = app.extensions["abconv"].experiments
    assert [a["experiment"] for a in body["assignments"]] == ["other", "shop"]
    for given in body["assignments"]:
        experiment = registry.get(given["experiment"])
        variant = assign(experiment, visitor).variant
        assert given["variant"] == variant.key and given["content"] == variant.content
        assert given["enrolled"] is False
    return seconds


def recovery_seconds(client: FlaskClient, visitor: str) -> float:
    """From now to the first 200 on a write, trying every 10 ms."""
    started = time.perf_counter()
    while time.perf_counter() - started < 30:
        reply = client.post("/api/convert", json={"visitor": visitor, "goal": "purchase"})
        if reply.status_code == 200:
            return time.perf_counter() - started
        assert_error(reply, 503, "database_unavailable")
        time.sleep(0.01)
    raise AssertionError("no write succeeded within 30 s of the database's return")


def assert_recovered(app: Flask, client: FlaskClient) -> None:
    """Healthy and enrolling again; stored: the exposures of "before" and
    "after" to both experiments, and the recovery write, in both."""
    assert health(client)[0] == 200
    after = client.get("/api/assign?visitor=after").get_json()
    assert "degraded" not in after and all(a["enrolled"] for a in after["assignments"])
    store = app.extensions["abconv"].store
    assert (store.count_rows("exposure"), store.count_rows("conversion")) == (4, 2)


def print_figures(outage: str, write: float, assign: float, recovery: float) -> None:
    print(
        f"\n{outage}: slowest 503 on a write {write * 1000:.0f} ms, degraded assign "
        f"{assign * 1000:.0f} ms; recovery (database back to the first 200 on a write) "
        f"{recovery * 1000:.0f} ms"
    )


def health(client: FlaskClient) -> tuple[int, dict[str, Any]]:
    reply = client.get("/healthz")
    return reply.status_code, reply.get_json()


@pytest.mark.postgres
def test_postgresql_stopped_answers_503_at_once_and_recovers(
    relayed_url: tuple[str, Relay], relayed_app: Flask
) -> None:
    _, relay = relayed_url
    app, client = relayed_app, admin_client(relayed_app)
    before = client.get("/api/assign?visitor=before").get_json()
    assert "degraded" not in before and all(a["enrolled"] for a in before["assignments"])

    relay.stop()
    assert health(client) == (
        503,
        {"status": "unavailable", "database": "unreachable", "experiments": "ok",
         "experiments_loaded": 2},
    )  # fmt: skip
    write_latency = max(assert_writes_refused(client, v) for v in ("before", "during"))
    assign_latency = assert_assignment_degraded(app, client, "during")
    assert_error(client.get("/api/experiments/shop/results"), 503, "database_unavailable")
    page = client.get("/")
    assert page.status_code == 503 and page.mimetype == "text/html"

    relay.start()
    recovery = recovery_seconds(client, "before")
    print_figures("PostgreSQL stopped", write_latency, assign_latency, recovery)
    assert_recovered(app, client)


@pytest.mark.postgres
def test_a_hanging_postgresql_answers_503_within_3_seconds_then_at_once(
    relayed_url: tuple[str, Relay], relayed_app: Flask
) -> None:
    _, relay = relayed_url
    app, client = relayed_app, admin_client(relayed_app)
    client.get("/api/assign?visitor=before")

    relay.hang()
    first, first_seconds = timed(write_calls(client, "before")[0])
    assert_error(first, 503, "database_unavailable")
    assert first_seconds < LIMIT  # waited for the connect timeout
    # Known to hang: everything answers at once while a thread probes.
    (status, body), health_seconds = timed(lambda: health(client))
    assert status == 503 and body["database"] == "unreachable"
    write_latency = assert_writes_refused(client, "before")
    assign_latency = assert_assignment_degraded(app, client, "during")
    assert max(health_seconds, write_latency, assign_latency) < 1.0

    relay.resume()
    recovery = recovery_seconds(client, "before")
    print_figures(
        f"PostgreSQL hanging (first 503: {first_seconds * 1000:.0f} ms)",
        write_latency,
        assign_latency,
        recovery,
    )
    assert_recovered(app, client)


@pytest.mark.postgres
def test_a_server_started_during_an_outage_serves_once_it_is_over(
    relayed_url: tuple[str, Relay], experiments_dir: Path
) -> None:
    url, relay = relayed_url
    relay.stop()
    app = create_app(
        {
            "ABCONV_DATABASE_URL": url,
            "ABCONV_EXPERIMENTS_DIR": str(experiments_dir),
            "ABCONV_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
    )
    client = admin_client(app)
    try:
        assert health(client)[0] == 503
        assert "degraded" in client.get("/api/assign?visitor=a&experiment=shop").get_json()
        assert_writes_refused(client, "a")
        relay.start()
        # The first request after the outage creates the tables.
        reply = client.get("/api/assign?visitor=a&experiment=shop").get_json()
        assert "degraded" not in reply and reply["assignments"][0]["enrolled"] is True
        assert app.extensions["abconv"].store.count_rows("exposure", "shop") == 1
    finally:
        app.extensions["abconv"].store.dispose()


def set_read_only(path: Path, read_only: bool) -> None:
    """Make a file unwritable, even for root (who ignores permission bits)."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i" if read_only else "-i", str(path)], check=True)
    else:
        path.chmod(0o444 if read_only else 0o644)


def test_a_sqlite_file_that_cannot_be_written_answers_503_and_recovers(
    tmp_path: Path, experiments_dir: Path
) -> None:
    write_experiment(experiments_dir, "other")
    database = tmp_path / "abconv.sqlite3"
    environ = {
        "ABCONV_DATABASE_URL": f"sqlite:///{database}",
        "ABCONV_EXPERIMENTS_DIR": str(experiments_dir),
        "ABCONV_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    first = create_app(environ)
    admin_client(first).get("/api/assign?visitor=before")
    first.extensions["abconv"].store.dispose()

    set_read_only(database, True)
    try:
        app = create_app(environ)  # opens the file as it is now
        client = admin_client(app)
        status, body = health(client)
        assert status == 503 and (body["database"], body["experiments"]) == ("read_only", "ok")
        write_latency = assert_writes_refused(client, "before")
        assign_latency = assert_assignment_degraded(app, client, "during")
    finally:
        set_read_only(database, False)
    try:
        recovery = recovery_seconds(client, "before")
        print_figures("SQLite read-only", write_latency, assign_latency, recovery)
        assert_recovered(app, client)
    finally:
        app.extensions["abconv"].store.dispose()


def failure() -> sa.exc.OperationalError:
    return sa.exc.OperationalError(None, None, ConnectionError("no answer"))


def test_only_a_slow_failure_makes_requests_fail_at_once_until_a_probe_answers() -> None:
    answers = threading.Event()

    def probe() -> None:
        if not answers.is_set():
            raise failure()

    guard = HangGuard(probe, slow=0.05, interval=0.01)
    try:
        with pytest.raises(sa.exc.OperationalError), guard.watch():
            raise failure()  # refused at once: the next request tries again
        assert not guard.hanging
        with pytest.raises(sa.exc.OperationalError), guard.watch():
            time.sleep(0.06)
            raise failure()
        assert guard.hanging
        with pytest.raises(DatabaseHanging), guard.watch():
            raise AssertionError("not tried while hanging")
        answers.set()
        deadline = time.monotonic() + 5
        while guard.hanging and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not guard.hanging
        with guard.watch():
            pass
    finally:
        guard.close()


@contextmanager
def table_locked_elsewhere(database_url: str) -> Iterator[None]:
    """Another program holds the write lock (SQLite) or the conversion table (PostgreSQL)."""
    store = Store(database_url)
    try:
        with store.engine.connect() as conn:
            if store.is_sqlite:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("LOCK TABLE conversion IN ACCESS EXCLUSIVE MODE")
            yield
            conn.exec_driver_sql("ROLLBACK") if store.is_sqlite else conn.rollback()
    finally:
        store.dispose()


def test_a_write_waiting_for_a_lock_held_elsewhere_answers_503_within_3_seconds(
    app: Flask, client: FlaskClient, database_url: str
) -> None:
    client.get("/api/assign?visitor=alice&experiment=shop")
    with table_locked_elsewhere(database_url):
        reply, seconds = timed(
            lambda: client.post("/api/convert", json={"visitor": "alice", "goal": "purchase"})
        )
    assert_error(reply, 503, "database_unavailable")
    assert seconds < LIMIT
    recovery_seconds(client, "alice")  # the lock is released: writes go through again
    assert app.extensions["abconv"].store.count_rows("conversion") == 1


def test_healthz_names_an_unreadable_experiments_folder(tmp_path: Path) -> None:
    app = create_app(
        {
            "ABCONV_DATABASE_URL": f"sqlite:///{tmp_path / 'abconv.sqlite3'}",
            "ABCONV_EXPERIMENTS_DIR": str(tmp_path / "no-such-folder"),
        }
    )
    try:
        assert health(admin_client(app)) == (
            503,
            {"status": "unavailable", "database": "ok", "experiments": "unreadable",
             "experiments_loaded": 0},
        )  # fmt: skip
    finally:
        app.extensions["abconv"].store.dispose()
