"""Event ids belong to their visitor: a duplicate shows only the visitor's own
rows, and another visitor reusing an id records an event of their own."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient


def expose(client: FlaskClient, visitor: str) -> str:
    reply = client.get(f"/api/assign?visitor={visitor}&experiment=shop").get_json()
    return str(reply["assignments"][0]["variant"])


def convert(client: FlaskClient, visitor: str, value: float, event_id: str) -> dict[str, object]:
    event = {"visitor": visitor, "goal": "purchase", "value": value, "event_id": event_id}
    reply = client.post("/api/convert", json=event)
    assert reply.status_code == 200, reply.get_data(as_text=True)
    return reply.get_json()  # type: ignore[no-any-return]


def stored(app: Flask) -> list[tuple[str, str, float, str]]:
    """Every stored conversion as (visitor, variant, value, event_id)."""
    store = app.extensions["abconv"].store
    rows = store.conversions_with_event("alice", "order-1001")
    rows += store.conversions_with_event("mallory", "order-1001")
    return sorted((r.visitor, r.variant, r.value, r.event_id) for r in rows)


def test_another_visitors_event_id_records_their_own_event(app: Flask, client: FlaskClient) -> None:
    alice_variant = expose(client, "alice")
    mallory_variant = expose(client, "mallory")
    convert(client, "alice", 49.9, "order-1001")

    mallory = convert(client, "mallory", 7, "order-1001")

    assert mallory["duplicate"] is False
    assert mallory["recorded"] == [
        {"experiment": "shop", "variant": mallory_variant, "kind": "hard", "value": 7}
    ]
    assert stored(app) == [
        ("alice", alice_variant, 49.9, "order-1001"),
        ("mallory", mallory_variant, 7, "order-1001"),
    ]


def test_a_duplicate_shows_only_the_visitors_own_rows(app: Flask, client: FlaskClient) -> None:
    alice_variant = expose(client, "alice")
    mallory_variant = expose(client, "mallory")
    convert(client, "alice", 49.9, "order-1001")
    convert(client, "mallory", 7, "order-1001")

    again = convert(client, "mallory", 1000, "order-1001")

    assert again["duplicate"] is True
    assert again["recorded"] == [
        {"experiment": "shop", "variant": mallory_variant, "kind": "hard", "value": 7}
    ]
    alice_again = convert(client, "alice", 1, "order-1001")
    assert alice_again["recorded"] == [
        {"experiment": "shop", "variant": alice_variant, "kind": "hard", "value": 49.9}
    ]
    assert app.extensions["abconv"].store.count_rows("conversion") == 2


def test_an_unexposed_visitor_reusing_an_id_learns_nothing(app: Flask, client: FlaskClient) -> None:
    expose(client, "alice")
    convert(client, "alice", 49.9, "order-1001")

    mallory = convert(client, "mallory", 7, "order-1001")

    assert mallory == {
        "visitor": "mallory",
        "goal": "purchase",
        "event_id": "order-1001",
        "duplicate": False,
        "recorded": [],
    }
    assert app.extensions["abconv"].store.count_rows("conversion") == 1


def test_a_batch_scopes_event_ids_per_visitor(app: Flask, client: FlaskClient) -> None:
    events = [
        {"type": "exposure", "visitor": "alice", "experiment": "shop"},
        {"type": "exposure", "visitor": "mallory", "experiment": "shop"},
        {"type": "conversion", "visitor": "alice", "goal": "purchase", "event_id": "o-1"},
        {"type": "conversion", "visitor": "mallory", "goal": "purchase", "event_id": "o-1"},
        {"type": "conversion", "visitor": "mallory", "goal": "purchase", "event_id": "o-1"},
    ]
    body = client.post("/api/events", json={"events": events}).get_json()
    assert body["conversions"] == {"received": 3, "recorded": 2, "duplicates": 1}
