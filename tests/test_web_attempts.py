"""The count of wrong passwords per client: the window, the lockout, the memory bound."""

from __future__ import annotations

import pytest

from abconv.web.attempts import MAX_FAILURES, WINDOW_SECONDS, FailedAttempts, client_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failures_lock_a_client_until_the_oldest_is_ten_minutes_old() -> None:
    assert (MAX_FAILURES, WINDOW_SECONDS) == (5, 600.0)  # the rule the README states
    clock = Clock()
    attempts = FailedAttempts(clock=clock)
    for i in range(5):
        assert attempts.retry_after("198.51.100.7") is None
        assert attempts.record_failure("198.51.100.7") == i + 1
        clock.now += 10
    assert attempts.retry_after("198.51.100.7") == 550  # the first failure was 50 s ago
    assert attempts.retry_after("198.51.100.8") is None
    clock.now += 549.5
    assert attempts.retry_after("198.51.100.7") == 1  # never 0: rounded up
    clock.now += 0.5
    assert attempts.retry_after("198.51.100.7") is None  # one more try is free...
    attempts.record_failure("198.51.100.7")
    assert attempts.retry_after("198.51.100.7") == 10  # ...and locks again until the next expires


def test_an_ipv6_client_is_its_64_network() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("::ffff:198.51.100.7") == client_key("198.51.100.7") == "198.51.100.7"
    assert client_key("not an address") == "not an address"
    attempts = FailedAttempts(limit=2)
    attempts.record_failure("2001:db8:1:2::1")
    attempts.record_failure("2001:db8:1:2::2")
    assert attempts.retry_after("2001:db8:1:2::3") is not None


@pytest.mark.parametrize("clients", [3, 50])
def test_memory_is_bounded_by_forgetting_the_quietest_client(clients: int) -> None:
    clock = Clock()
    attempts = FailedAttempts(limit=1, clock=clock, max_clients=3)
    for i in range(clients):
        attempts.record_failure(f"10.0.0.{i}")
        clock.now += 1
    assert attempts.retry_after(f"10.0.0.{clients - 1}") is not None
    assert (attempts.retry_after("10.0.0.0") is None) == (clients > 3)
