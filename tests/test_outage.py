"""PostgreSQL going away: 503s, nothing half-stored, and recovery without a restart.

A small TCP relay stands between abconv and PostgreSQL; closing it is the
outage, reopening it on the same port is the recovery.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from abconv import create_app
from tests.conftest import POSTGRES_URL, assert_error, postgres_schema


class Relay:
    """Forwards 127.0.0.1:port to PostgreSQL until ``stop()``; ``start()`` again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.connections: list[socket.socket] = []

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


@pytest.mark.postgres
def test_an_outage_answers_503_and_recovers(
    relayed_url: tuple[str, Relay], experiments_dir: Path
) -> None:
    url, relay = relayed_url
    app = create_app({"ABCONV_DATABASE_URL": url, "ABCONV_EXPERIMENTS_DIR": str(experiments_dir)})
    client = app.test_client()
    try:
        assert client.get("/api/assign?visitor=before&experiment=shop").status_code == 200

        relay.stop()
        assert client.get("/healthz").status_code == 503
        outage = client.get("/api/assign?visitor=during&experiment=shop")
        assert_error(outage, 503, "database_unavailable")
        lost = client.post("/api/convert", json={"visitor": "before", "goal": "purchase"})
        assert_error(lost, 503, "database_unavailable")

        relay.start()
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/assign?visitor=after&experiment=shop").status_code == 200
        store = app.extensions["abconv"].store
        assert set(store.visitors_by_variant("shop").values()) <= {1, 2}
        assert store.count_rows("exposure", "shop") == 2  # "during" was not stored
        assert store.count_rows("conversion", "shop") == 0
    finally:
        app.extensions["abconv"].store.dispose()


@pytest.mark.postgres
def test_a_server_started_during_an_outage_serves_once_it_is_over(
    relayed_url: tuple[str, Relay], experiments_dir: Path
) -> None:
    url, relay = relayed_url
    relay.stop()
    app = create_app({"ABCONV_DATABASE_URL": url, "ABCONV_EXPERIMENTS_DIR": str(experiments_dir)})
    client = app.test_client()
    try:
        assert client.get("/healthz").status_code == 503
        assert_error(
            client.get("/api/assign?visitor=a&experiment=shop"), 503, "database_unavailable"
        )
        relay.start()
        assert client.get("/api/assign?visitor=a&experiment=shop").status_code == 200
        assert app.extensions["abconv"].store.count_rows("exposure", "shop") == 1
    finally:
        app.extensions["abconv"].store.dispose()
