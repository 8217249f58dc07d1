"""Wrong admin passwords counted per client, so that guessing is slow.

The rule: a client that gave ``MAX_FAILURES`` wrong passwords within
``WINDOW_SECONDS`` is refused, right password or not, until the oldest of
those failures is ``WINDOW_SECONDS`` old; then it may try once more. So a
guesser gets at most 5 tries per 10 minutes per address (per worker process:
the counts live in each process's memory, so a server of W workers allows up
to W × 5). A client is an IPv4 address or an IPv6 /64 network, the block one
subscriber usually holds. No Flask here: the web layer passes the address.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_FAILURES = 5
WINDOW_SECONDS = 600.0
MAX_CLIENTS = 10_000  # memory bound: the longest-quiet client is forgotten first


def client_key(address: str) -> str:
    """The unit that is counted: the address, or its /64 network for IPv6."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


class FailedAttempts:
    """The recent failures of each client; safe to share between threads."""

    def __init__(
        self,
        limit: int = MAX_FAILURES,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self._limit, self._window, self._clock = limit, window, clock
        self._max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until ``address`` may try again, or ``None`` if it may now."""
        with self._lock:
            recent = self._recent(client_key(address))
            if len(recent) < self._limit:
                return None
            return max(1, math.ceil(recent[0] + self._window - self._clock()))

    def record_failure(self, address: str) -> int:
        """Count a wrong password; return the client's failures within the window."""
        key = client_key(address)
        with self._lock:
            recent = self._recent(key)
            recent.append(self._clock())
            self._failures[key] = recent
            self._failures.move_to_end(key)
            while len(self._failures) > self._max_clients:
                self._failures.popitem(last=False)
            return len(recent)

    def _recent(self, key: str) -> deque[float]:
        recent = self._failures.get(key, deque())
        horizon = self._clock() - self._window
        while recent and recent[0] <= horizon:
            recent.popleft()
        if not recent:
            self._failures.pop(key, None)
        return recent
