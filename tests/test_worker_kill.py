"""A worker SIGKILLed under load: no acknowledged event lost, none doubled.

Clients retry what got no reply with the same event ids, as the snippet and
server-side sites do; a reply of 200 means the rows were committed. The load
is batches of conversions, which keep workers busy long enough that a kill
lands inside a request (single conversions are done faster than the test's
own client can send them, so kills would mostly hit idle workers).
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import threading
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor

from abconv.store import Store
from tests.test_concurrency import gunicorn, request  # noqa: F401 - the fixture


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def send_until_acknowledged(base: str, batch: dict[str, object]) -> int:
    """POST until a 200 comes back; return how many tries it took."""
    for attempt in range(1, 50):
        try:
            status, _ = request(base, "/api/events", batch)
        except (OSError, urllib.error.URLError, http.client.HTTPException):
            status = 0  # cut off by the killed worker: send again
        if status == 200:
            return attempt
        time.sleep(0.05)
    raise AssertionError("a batch was never acknowledged")


def test_killing_a_worker_loses_and_doubles_nothing(
    gunicorn: tuple[str, subprocess.Popen[bytes]],  # noqa: F811
    database_url: str,
) -> None:
    server, master = gunicorn[0], gunicorn[1].pid
    visitors = [f"k{i}" for i in range(50)]
    for visitor in visitors:
        assert request(server, f"/api/assign?visitor={visitor}&experiment=shop")[0] == 200
    events = [
        {"type": "conversion", "visitor": visitors[i % 50], "goal": "purchase", "value": 1,
         "event_id": f"kill-{i}"}
        for i in range(24_000)
    ]  # fmt: skip
    batches = [{"events": events[i : i + 1000]} for i in range(0, len(events), 1000)]

    sending = threading.Event()
    killed: list[int] = []
    tries: list[int] = []

    def killer() -> None:
        """Kill a worker every 0.15 s while the load runs, until one kill cut
        a request off (a worker between requests loses nothing to test)."""
        while sending.is_set() and not any(t > 1 for t in tries) and len(killed) < 30:
            pids = worker_pids(master)
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.15)

    sending.set()
    thread = threading.Thread(target=killer)
    thread.start()
    with ThreadPoolExecutor(8) as pool:
        for attempts in pool.map(lambda b: send_until_acknowledged(server, b), batches):
            tries.append(attempts)
    sending.clear()
    thread.join()
    assert killed
    assert max(tries) > 1, "no request was cut off: the test did not kill a busy worker"

    store = Store(database_url)
    try:
        assert store.count_rows("conversion", "shop") == 24_000
        assert sum(r["value_sum"] for r in store.conversions_by_variant("shop")) == 24_000
    finally:
        store.dispose()
