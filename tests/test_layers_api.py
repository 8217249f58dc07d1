"""Layers through the HTTP API, with stored exposures: one experiment per visitor, always."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from abconv.assignment import in_layer_share
from tests.test_layers import write_layered

LAYERED = ("hero", "button", "footer")
VISITORS = [f"v{i}" for i in range(200)]


def put(app: Flask, folder: Path, key: str, slot: int, traffic: float, **fields: object) -> None:
    """Write a layered experiment file and have the server read it now."""
    path = write_layered(folder, key, slot, traffic, **fields)
    stamp = path.stat().st_mtime_ns + 1_000_000_000  # a change the registry sees
    os.utime(path, ns=(stamp, stamp))
    app.extensions["abconv"].experiments.refresh()


def enrolled(client: FlaskClient, visitor: str, experiment: str | None = None) -> dict[str, str]:
    """{experiment: variant} of the layer's experiments that count ``visitor``."""
    query = f"/api/assign?visitor={visitor}" + (f"&experiment={experiment}" if experiment else "")
    reply = client.get(query)
    assert reply.status_code == 200, reply.get_data(as_text=True)
    return {
        a["experiment"]: a["variant"]
        for a in reply.get_json()["assignments"]
        if a["enrolled"] and a["experiment"] in LAYERED
    }


def stored(app: Flask, visitor: str) -> dict[str, str]:
    exposures = app.extensions["abconv"].store.exposures_of(visitor, list(LAYERED))
    return {key: exposure.variant for key, exposure in exposures.items()}


def test_no_visitor_is_enrolled_in_two_experiments_of_a_layer(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    put(app, experiments_dir, "hero", 1, 0.4)
    put(app, experiments_dir, "button", 2, 0.4)
    layer = app.extensions["abconv"].experiments.layer("homepage")
    seen = {"hero": 0, "button": 0, "none": 0}
    for visitor in VISITORS:
        everything = enrolled(client, visitor)  # every running experiment at once
        assert len(everything) <= 1
        one_by_one = {**enrolled(client, visitor, "hero"), **enrolled(client, visitor, "button")}
        assert one_by_one == everything == stored(app, visitor)
        expected = [key for key in ("hero", "button") if in_layer_share(layer, key, visitor)]
        assert list(everything) == expected
        seen[expected[0] if expected else "none"] += 1
    assert min(seen.values()) > 0, seen


def test_a_visitor_left_out_by_the_layer_gets_the_control_unrecorded(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    put(app, experiments_dir, "hero", 1, 0.5)
    put(app, experiments_dir, "button", 2, 0.5)
    layer = app.extensions["abconv"].experiments.layer("homepage")
    visitor = next(v for v in VISITORS if in_layer_share(layer, "button", v))
    reply = client.get(f"/api/assign?visitor={visitor}&experiment=hero").get_json()
    # The same shape as for a visitor outside traffic: the control, not enrolled.
    assert reply == {
        "visitor": visitor,
        "assignments": [
            {
                "experiment": "hero",
                "variant": "trial",
                "kind": "cta",
                "enrolled": False,
                "content": {"text": "Start free trial", "href": "/signup"},
            }
        ],
    }
    assert stored(app, visitor) == {}


@pytest.mark.parametrize("slot", [3, 0], ids=["next-free-slot", "inserted-before-all"])
def test_adding_an_experiment_to_a_layer_moves_no_enrolled_visitor(
    app: Flask, client: FlaskClient, experiments_dir: Path, slot: int
) -> None:
    put(app, experiments_dir, "hero", 1, 0.4)
    put(app, experiments_dir, "button", 2, 0.3)
    before = {visitor: enrolled(client, visitor) for visitor in VISITORS}
    if slot == 0:  # room before the others: shift them up a slot, so every range moves
        put(app, experiments_dir, "hero", 2, 0.4)
        put(app, experiments_dir, "button", 3, 0.3)
    put(app, experiments_dir, "footer", max(slot, 1), 0.3)
    joined = 0
    for visitor in [*VISITORS, *reversed(VISITORS)]:  # twice: answers keep
        now = enrolled(client, visitor)
        assert len(now) <= 1 and now == stored(app, visitor)
        if before[visitor]:
            assert now == before[visitor], visitor  # same experiment, same variant
        elif "footer" in now:
            joined += 1
    newcomers = [enrolled(client, f"new-{i}") for i in range(100)]
    assert any("footer" in found for found in newcomers)
    # At the next free slot the newcomer takes the free room, where earlier
    # visitors were in nothing; inserted first, its range was all taken.
    assert (joined > 0) if slot == 3 else (joined == 0)


def test_a_slot_swap_keeps_every_enrolled_visitor_where_they_are(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    put(app, experiments_dir, "hero", 1, 0.5)
    put(app, experiments_dir, "button", 2, 0.5)
    before = {visitor: enrolled(client, visitor) for visitor in VISITORS}
    assert all(len(found) == 1 for found in before.values())  # the layer is full
    put(app, experiments_dir, "hero", 2, 0.5)
    put(app, experiments_dir, "button", 1, 0.5)
    layer = app.extensions["abconv"].experiments.layer("homepage")
    # Most of them now hash into the other experiment's share, and stay put.
    moved = [v for v in VISITORS if not in_layer_share(layer, next(iter(before[v])), v)]
    assert len(moved) > 50
    for visitor in VISITORS:
        assert enrolled(client, visitor) == before[visitor] == stored(app, visitor)
    # New visitors follow the new ranges.
    for visitor in (f"new-{i}" for i in range(50)):
        [key] = enrolled(client, visitor)
        assert in_layer_share(layer, key, visitor)


def test_an_experiment_past_the_layer_is_served_but_enrols_nobody(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    put(app, experiments_dir, "hero", 1, 0.8)
    put(app, experiments_dir, "button", 2, 0.3)
    definition = client.get("/api/experiments/button").get_json()
    assert (definition["layer"], definition["layer_slot"], definition["traffic"]) == (
        "homepage",
        2,
        0.3,
    )
    assert not any("button" in enrolled(client, visitor, "button") for visitor in VISITORS)
    assert any("hero" in enrolled(client, visitor, "hero") for visitor in VISITORS)
    problems = app.extensions["abconv"].experiments.problems()
    assert [Path(p.path).name for p in problems] == ["button.toml"]


def test_batch_exposures_without_a_variant_follow_the_layer(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    put(app, experiments_dir, "hero", 1, 0.5)
    put(app, experiments_dir, "button", 2, 0.5)
    layer = app.extensions["abconv"].experiments.layer("homepage")
    events = [{"type": "exposure", "experiment": "hero", "visitor": v} for v in VISITORS]
    body = client.post("/api/events", json={"events": events}).get_json()
    inside = [v for v in VISITORS if in_layer_share(layer, "hero", v)]
    assert body["exposures"]["recorded"] == len(inside)
    assert all(stored(app, v) == {} for v in VISITORS if v not in inside)
