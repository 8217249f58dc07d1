"""A real ``abconv serve``: slow clients, and requests gunicorn refuses, in JSON."""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from abconv.gunicorn_worker import (
    KEEPALIVE_REQUESTS,
    READ_TIMEOUT_SECONDS,
    REFUSALS,
    quiet_timeouts,
)
from abconv.server import wait_for_port
from tests.test_concurrency import ROOT, free_port

ASSIGN = "/api/assign?visitor=alice&experiment=homepage-cta"


def start_serve(port: int, database: Path, *args: str, **variables: str) -> subprocess.Popen[bytes]:
    """``abconv serve`` in its own process group, on the example experiments;
    ``variables`` are more ``ABCONV_*`` settings."""
    env = {**os.environ, "ABCONV_DATABASE_URL": f"sqlite:///{database}",
           "ABCONV_INSTANCE_DIR": str(database.parent / "instance"),
           "ABCONV_EXPERIMENTS_DIR": str(ROOT / "experiments"), **variables}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "abconv", "serve", "--port", str(port), *args],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip


def wait_until_healthy(port: int, process: subprocess.Popen[bytes], seconds: float) -> float:
    """Seconds until ``/healthz`` answers 200 (fails after ``seconds``)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if get(port, "/healthz")[0] == 200:
                return time.monotonic() - started
        except OSError:
            pass
        if process.poll() is not None:
            pytest.fail("abconv serve stopped: " + process.stderr.read().decode()[-3000:])  # type: ignore[union-attr]
        time.sleep(0.1)
    pytest.fail(f"abconv serve did not answer /healthz within {seconds} s")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(child) for child in out.stdout.split()]


def workers_of(master: int, count: int = 2) -> list[int]:
    """The master's worker pids, once it has forked ``count`` (gunicorn forks
    them one by one, and the first may answer before the last exists)."""
    deadline = time.monotonic() + 30
    while len(found := children(master)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def stop(process: subprocess.Popen[bytes]) -> str:
    """SIGTERM to the server's process group; what it logged."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    return process.communicate(timeout=30)[1].decode()


def get(port: int, path: str, timeout: float = 30) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as reply:
        return reply.status, reply.read()


def raw_exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` as is; the status, headers and body of the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real ``abconv serve`` with its defaults (2 workers of 8 threads)."""
    port = free_port()
    process = start_serve(port, tmp_path_factory.mktemp("serve") / "serve.sqlite3")
    try:
        wait_until_healthy(port, process, 60)
        assert len(workers_of(process.pid)) == 2
        yield port
    finally:
        stop(process)


def slow_client(port: int) -> socket.socket:
    """A client that sent its headers and part of its body, and holds."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(
        b"POST /api/convert HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"visitor": '
    )
    return sock


def test_slow_clients_do_not_stall_health_or_assignment(port: int) -> None:
    # 12: more than the threads of one worker (8), so a worker whose threads
    # are all taken must leave new connections to the other; far more than
    # the 2 processes of the old sync workers, which 2 slow clients stalled.
    clients = [slow_client(port) for _ in range(12)]
    try:
        time.sleep(1)  # the slow clients are inside the server, holding threads
        timings = []
        for path in ["/healthz", ASSIGN] * 3:
            started = time.monotonic()
            status, _ = get(port, path, timeout=READ_TIMEOUT_SECONDS + 20)
            timings.append(time.monotonic() - started)
            assert status == 200
        print(f"with 12 slow clients: slowest /healthz or /api/assign {max(timings):.3f} s")
        assert max(timings) < 2
    finally:
        for sock in clients:
            sock.close()


def test_a_client_that_stalls_is_cut_off_after_the_read_timeout(port: int) -> None:
    outcomes: dict[str, tuple[float, bytes]] = {}

    def hold(name: str, sock: socket.socket) -> None:
        started, reply = time.monotonic(), b""
        with sock:
            while chunk := sock.recv(65536):
                reply += chunk
        outcomes[name] = (time.monotonic() - started, reply)

    head_only = socket.create_connection(("127.0.0.1", port), timeout=60)
    head_only.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no blank line: headers unfinished
    threads = [
        threading.Thread(target=hold, args=("body", slow_client(port))),
        threading.Thread(target=hold, args=("headers", head_only)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    print({name: f"{seconds:.1f} s" for name, (seconds, _) in outcomes.items()})
    for seconds, _ in outcomes.values():
        assert READ_TIMEOUT_SECONDS - 1 < seconds < READ_TIMEOUT_SECONDS + 15
    status_line, _, body = outcomes["body"][1].partition(b"\r\n")
    assert b" 400 " in status_line  # the app read a body that never came
    assert json.loads(body.partition(b"\r\n\r\n")[2])["error"]["code"] == "bad_request"
    assert outcomes["headers"][1] == b""  # closed: no request to answer


REFUSED = [
    pytest.param(
        b"GET /api/assign?visitor=" + b"a" * 10_240 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        414, "request_line_too_long", id="10 KB URL",
    ),
    pytest.param(
        b"GET /api/assign?visitor=a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_480 + b"\r\n\r\n",
        431, "headers_too_large", id="20 KB header",
    ),
    pytest.param(
        b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
        431, "headers_too_large", id="200 headers",
    ),
    pytest.param(b"\x16\x03\x01\x00\xffgarbage\r\n\r\n", 400, "bad_request", id="garbage"),
    pytest.param(b"HELLO WORLD\r\n\r\n", 400, "bad_request", id="no method"),
    pytest.param(b"GET /healthz HTTP/7.0\r\n\r\n", 400, "bad_request", id="bad version"),
    pytest.param(
        b"GET /healthz HTTP/1.1\r\nBad Name: 1\r\n\r\n", 400, "bad_request", id="bad header"
    ),
]  # fmt: skip


@pytest.mark.parametrize(("request_bytes", "status", "code"), REFUSED)
def test_requests_gunicorn_refuses_get_the_json_error(
    port: int, request_bytes: bytes, status: int, code: str
) -> None:
    got, headers, body = raw_exchange(port, request_bytes)
    assert got == status
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"]
    assert set(error) == {"code", "message"}
    assert get(port, "/healthz")[0] == 200  # and the worker carries on


def test_readme_lists_the_refusal_codes() -> None:
    readme = (ROOT / "README.md").read_text()
    assert [code for *_, code in REFUSALS if f"| `{code}` |" not in readme] == []


def test_serve_waits_for_a_port_that_is_being_released() -> None:
    holder = socket.create_server(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    threading.Timer(1.0, holder.close).start()  # as a dying worker would
    started = time.monotonic()
    wait_for_port("127.0.0.1", port, seconds=30)
    assert 0.8 < time.monotonic() - started < 20
    socket.create_server(("127.0.0.1", port)).close()  # free indeed


def test_serve_stops_waiting_for_a_port_that_stays_taken() -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        started = time.monotonic()
        wait_for_port("127.0.0.1", holder.getsockname()[1], seconds=0.5)
        assert time.monotonic() - started < 10  # then gunicorn reports the port in use


@pytest.mark.parametrize(
    ("error", "one_line"),
    [(BlockingIOError(11, "Resource temporarily unavailable"), True), (OSError(5, "EIO"), False)],
)
def test_a_stalled_connection_is_logged_in_one_line(error: OSError, one_line: bool) -> None:
    try:
        raise error
    except OSError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "gunicorn.error",
        logging.ERROR,
        __file__,
        1,
        "Socket error processing request.",
        (),
        exc_info,
    )
    assert quiet_timeouts(record)  # never dropped
    assert (record.exc_info is None) is one_line
    assert ("stalled for 10 s" in record.getMessage()) is one_line
    assert record.levelname == ("INFO" if one_line else "ERROR")


def test_a_keep_alive_connection_closes_after_its_hundredth_request(port: int) -> None:
    """So that a proxy's few long-lived connections spread over the workers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for number in range(1, KEEPALIVE_REQUESTS + 1):
            connection.request("GET", "/healthz")
            reply = connection.getresponse()
            reply.read()
            assert reply.status == 200
            closing = reply.getheader("Connection", "").lower() == "close"
            assert closing == (number == KEEPALIVE_REQUESTS), number
        assert connection.sock is None  # http.client saw the server close it
    finally:
        connection.close()
