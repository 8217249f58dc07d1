"""The client processes of the crash test (tests/test_worker_kill.py).

A module of its own, with only the standard library, because each client is
a fresh interpreter (multiprocessing's ``spawn``) that imports it: separate
processes, as separate sites are, and quick to start.

A client sends batches of 1,000 conversions to ``/api/events`` and behaves
as a careful site does: whatever got no reply is sent again, unchanged (same
event ids), until a 200 says it was committed. It reads the server's port
before every try, since the test may restart the server on another port.
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized, SynchronizedArray
from multiprocessing.synchronize import Event
from typing import Any

BATCH = 1000


@dataclass
class ClientReport:
    """What one client process saw; sent back to the test through a queue."""

    number: int
    sent: list[str] = field(default_factory=list)  # "visitor event_id" of every event sent
    acknowledged: list[str] = field(default_factory=list)  # ... of every event in a 200 reply
    cut_off: int = 0  # tries that were cut off: the connection dropped without a reply
    resent: int = 0  # acknowledged batches sent once more, as if the reply had been lost
    committed_unanswered: int = 0  # cut-off batches whose retry found them stored already
    refused: int = 0  # tries that found no server listening
    unexpected: list[str] = field(default_factory=list)  # any reply other than 200 or 503


def batch_of(visitors: list[str], number: int) -> list[dict[str, object]]:
    """Batch ``number`` of a client: 1,000 conversions spread over its visitors.

    Event ids hold the visitor, so they are unique per visitor and overall:
    the count holds whether idempotency is scoped per visitor or global.
    """
    events: list[dict[str, object]] = []
    for i in range(BATCH):
        visitor = visitors[i % len(visitors)]
        event_id = f"{visitor}-b{number}-{i}"
        events.append(
            {"type": "conversion", "visitor": visitor, "goal": "purchase", "value": 1,
             "event_id": event_id}
        )  # fmt: skip
    return events


def post(port: int, body: bytes, token: str) -> tuple[int, bytes]:
    """One try: the reply's status and body; ``OSError`` or ``HTTPException`` without a reply."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        connection.request("POST", "/api/events", body=body, headers=headers)
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def run_client(
    number: int,
    visitors: list[str],
    token: str,
    port: Synchronized[int],
    cut_offs: Synchronized[int],
    acknowledged_batches: SynchronizedArray[int],
    stop: Event,
    reports: Queue[ClientReport],
) -> None:
    """Send batches until ``stop`` is set; a batch once started is sent until acknowledged.

    Every third batch is sent once more after its 200, as when a reply is
    lost on the way back: the kills alone rarely land between a commit and
    its reply, and that is where a retry could double events.
    """
    report = ClientReport(number)
    batch = 0
    while not stop.is_set():
        events = batch_of(visitors, batch)
        keys = [f"{e['visitor']} {e['event_id']}" for e in events]
        report.sent.extend(keys)
        body = json.dumps({"events": events}).encode()
        delivered = deliver(body, token, port, cut_offs, report)
        if delivered is None:
            break  # the test fails on the unexpected reply
        tries, reply = delivered
        if tries > 1 and reply["conversions"]["duplicates"]:
            report.committed_unanswered += 1  # a kill came after the commit
        report.acknowledged.extend(keys)
        acknowledged_batches[number] += 1  # only this client writes its slot
        if batch % 3 == 2:
            report.resent += 1
            again = deliver(body, token, port, cut_offs, report)
            if again is not None and again[1]["conversions"]["duplicates"] != BATCH:
                report.unexpected.append(f"batch {batch} sent again: {again}")
        batch += 1
    reports.put(report)


def deliver(
    body: bytes,
    token: str,
    port: Synchronized[int],
    cut_offs: Synchronized[int],
    report: ClientReport,
) -> tuple[int, dict[str, Any]] | None:
    """Send ``body`` until a 200 comes back: the tries it took and the reply (None after an
    unexpected status)."""
    tries = 0
    while True:
        tries += 1
        try:
            status, reply = post(port.value, body, token)
        except ConnectionRefusedError:
            report.refused += 1  # the server is down: wait for its restart
            time.sleep(0.05)
            continue
        except (OSError, http.client.HTTPException):
            report.cut_off += 1  # killed in the middle: send the same batch again
            with cut_offs.get_lock():
                cut_offs.value += 1
            continue
        if status == 200:
            return tries, json.loads(reply)
        if status != 503:  # 503: the database did not answer; nothing stored, try again
            report.unexpected.append(f"{status}: {reply[:300]!r}")
            return None
        time.sleep(0.05)
