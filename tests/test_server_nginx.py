"""deploy/nginx.conf in front of a real ``abconv serve``: slow clients stop at nginx.

Skipped where nginx is not installed. TLS is left out (the test has no
certificate): the HTTPS server's listen lines become plain HTTP on free ports;
everything else is the shipped file.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_concurrency import ROOT, free_port
from tests.test_server import (
    ASSIGN,
    get,
    slow_client,
    start_serve,
    stop,
    wait_until_healthy,
)

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")


def site_for_test(abconv_port: int, port: int) -> str:
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    site = site.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{abconv_port};")
    site = re.sub(r"\n\s*listen \[::\]:\d+[^;]*;", "", site)
    site = re.sub(r"\n\s*ssl_certificate[^;]*;", "", site)
    site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port};")
    return site.replace("listen 80;", f"listen 127.0.0.1:{free_port()};")


@pytest.fixture
def nginx_port(tmp_path: Path) -> Iterator[int]:
    """nginx with deploy/nginx.conf in front of ``abconv serve``: its port."""
    abconv_port, port = free_port(), free_port()
    abconv = start_serve(abconv_port, tmp_path / "nginx.sqlite3", ABCONV_TRUSTED_PROXIES="1")
    (tmp_path / "site.conf").write_text(site_for_test(abconv_port, port))
    (tmp_path / "nginx.conf").write_text(
        f"daemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        "events {}\nhttp {\n"
        f"  access_log off;\n  client_body_temp_path {tmp_path}/body;\n"
        f"  proxy_temp_path {tmp_path}/proxy;\n  include {tmp_path}/site.conf;\n}}\n"
    )
    command = ["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    nginx = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        wait_until_healthy(abconv_port, abconv, 60)
        wait_until_healthy(port, nginx, 30)  # type: ignore[arg-type]
        yield port
    finally:
        nginx.terminate()
        nginx.wait(timeout=30)
        stop(abconv)


def test_slow_clients_stop_at_nginx(nginx_port: int) -> None:
    # 40: more than all of abconv's threads (2 workers x 8).
    clients = [slow_client(nginx_port) for _ in range(40)]
    try:
        time.sleep(1)
        timings = []
        for path in ["/healthz", ASSIGN] * 3:
            started = time.monotonic()
            assert get(nginx_port, path)[0] == 200
            timings.append(time.monotonic() - started)
        print(f"with 40 slow clients at nginx: slowest reply {max(timings):.3f} s")
        assert max(timings) < 2
    finally:
        for sock in clients:
            sock.close()


def wrong_password(port: int, source: str, forged: str) -> int:
    """An admin request with a wrong password from ``source`` (a loopback
    address) that claims to come from ``forged``; its status."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=30, source_address=(source, 0)
    )
    try:
        headers = {"Authorization": "Bearer wrong", "X-Forwarded-For": forged}
        connection.request("GET", "/api/experiments", headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def test_behind_nginx_abconv_sees_each_client_and_no_forged_address(nginx_port: int) -> None:
    # The wrong-password limit counts per client address (5 per 10 minutes),
    # so it shows which address abconv believed.
    statuses = [wrong_password(nginx_port, "127.0.0.2", f"10.0.0.{i}") for i in range(6)]
    assert statuses == [401] * 5 + [429]  # one client, whatever it wrote
    assert wrong_password(nginx_port, "127.0.0.3", "127.0.0.2") == 401  # not nginx's address
