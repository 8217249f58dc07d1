"""Two app servers, one PostgreSQL database, as two hosts would run them.

Two gunicorn processes on two ports share one PostgreSQL schema and one
experiments folder (on two hosts: the same files deployed to each). What they
must agree on comes only from the database and the files: a visitor's
variant (sticky through the database even after the weights change), the
events (the same event sent to both counts once), the results, and an edited
file, which both pick up within seconds.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from abconv.assignment import pick_by_weight
from abconv.experiments import parse_experiment
from abconv.store import normalise_url
from abconv.store.tables import CONVERSION
from tests.conftest import (
    POSTGRES_ENV,
    POSTGRES_URL,
    experiment_toml,
    postgres_schema,
    write_experiment,
)
from tests.test_concurrency import request, start_gunicorn, stop_gunicorn

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

VISITORS = [f"two-{i}" for i in range(120)]


@pytest.fixture
def shared_url() -> Iterator[str]:
    """One PostgreSQL schema for both servers."""
    if not POSTGRES_URL:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    yield from postgres_schema(POSTGRES_URL)


@pytest.fixture
def servers(shared_url: str, experiments_dir: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The base URLs of two servers (2 workers each) on the same database and folder."""
    first = start_gunicorn(shared_url, experiments_dir, tmp_path / "a.log", workers=2)
    try:
        second = start_gunicorn(shared_url, experiments_dir, tmp_path / "b.log", workers=2)
        try:
            yield first[0], second[0]
        finally:
            stop_gunicorn(second[1])
    finally:
        stop_gunicorn(first[1])


def variant_of(server: str, visitor: str) -> str:
    status, body = request(server, f"/api/assign?visitor={visitor}&experiment=shop")
    assert status == 200, body
    (assignment,) = body["assignments"]
    assert assignment["enrolled"], body
    return str(assignment["variant"])


def weights_seen(server: str, tries: int = 16) -> set[float]:
    """The guide weight in the definitions of ``tries`` parallel calls (spread over workers)."""

    def guide_weight(_: int) -> float:
        status, body = request(server, "/api/experiments/shop")
        assert status == 200, body
        return float(body["variants"][1]["weight"])

    with ThreadPoolExecutor(8) as pool:
        return set(pool.map(guide_weight, range(tries)))


def test_two_servers_share_variants_events_and_results(
    servers: tuple[str, str], experiments_dir: Path, shared_url: str
) -> None:
    a, b = servers
    rng = random.Random(13)

    # First exposures half through each server; the other server gives the same variant.
    first = {v: variant_of((a, b)[i % 2], v) for i, v in enumerate(VISITORS)}
    assert {v: variant_of((b, a)[i % 2], v) for i, v in enumerate(VISITORS)} == first
    assert set(first.values()) == {"trial", "guide"}

    # Edit the shared file: both servers pick up the new weights within seconds.
    edited = time.monotonic()
    write_experiment(experiments_dir, weight_guide=9)
    picked_up: dict[str, float] = {}
    while len(picked_up) < 2 and time.monotonic() - edited < 15:
        for server in (a, b):
            if server not in picked_up and weights_seen(server) == {9.0}:
                picked_up[server] = time.monotonic() - edited
        time.sleep(0.1)
    print(f"\ntwo servers: the edited file served by both after {max(picked_up.values()):.1f} s")
    assert len(picked_up) == 2, f"only {len(picked_up)} server(s) picked up the edited file"

    # Sticky through the database: the hash now says otherwise for many of these visitors.
    reweighted = parse_experiment(experiment_toml(weight_guide=9), "shop.toml")
    moved = [v for v in VISITORS if pick_by_weight("shop", v, reweighted.variants).key != first[v]]
    assert moved, "the new weights move no visitor: the test would not see a lost exposure"
    assert {v: variant_of((b, a)[i % 2], v) for i, v in enumerate(VISITORS)} == first
    assert {v: variant_of((a, b)[i % 2], v) for i, v in enumerate(VISITORS)} == first

    # Events to one server or the other or both at once (overlapping event ids).
    events = [
        {"visitor": v, "goal": "purchase", "value": 1 + n, "event_id": f"{v}-order-{n}"}
        for v in VISITORS[::2]
        for n in range(3)
    ]
    targets = {e["event_id"]: rng.choice([(a,), (b,), (a, b)]) for e in events}
    calls = [(server, e) for e in events for server in targets[e["event_id"]]]
    rng.shuffle(calls)
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda call: request(call[0], "/api/convert", call[1]), calls))
    assert {status for status, _ in replies} == {200}, replies
    first_replies = Counter(body["event_id"] for _, body in replies if not body["duplicate"])
    assert first_replies == Counter(e["event_id"] for e in events)  # one per event, not per call

    engine = sa.create_engine(normalise_url(shared_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(CONVERSION.c.visitor, CONVERSION.c.event_id)).all()
    finally:
        engine.dispose()
    assert Counter(map(tuple, rows)) == Counter((e["visitor"], e["event_id"]) for e in events)

    # Both servers give the same results, and they are the expected counts: of
    # phase 1, where every visitor was first exposed (the edit started phase 2).
    documents = [request(server, "/api/experiments/shop/results?phase=1") for server in (a, b)]
    assert [status for status, _ in documents] == [200, 200], documents
    assert documents[0][1] == documents[1][1]
    assert [p["number"] for p in documents[0][1]["phases"]] == [1, 2]
    purchase = documents[0][1]["goals"][0]
    for variant in purchase["variants"]:
        key = variant["key"]
        visitors = [v for v in VISITORS if first[v] == key]
        assert variant["visitors"] == len(visitors)
        assert variant["conversions"] == len({e["visitor"] for e in events} & set(visitors))
        value = sum(e["value"] for e in events if first[str(e["visitor"])] == key)
        assert variant["value"]["sum"] == pytest.approx(value)
    duplicates = len(calls) - len(events)
    print(
        f"two servers: {len(VISITORS)} visitors, {len(moved)} moved by the new weights kept "
        f"their variant on both; {len(calls)} conversion calls ({duplicates} to both servers) "
        f"stored {len(rows)} = {len(events)} events; results identical"
    )
