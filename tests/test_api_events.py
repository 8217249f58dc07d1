"""/api/events: batches of exposures and conversions, all or nothing."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import assert_error


def counts(app: Flask) -> tuple[int, int]:
    store = app.extensions["abconv"].store
    return store.count_rows("exposure"), store.count_rows("conversion")


def test_a_batch_stores_exposures_then_their_conversions(app: Flask, client: FlaskClient) -> None:
    events = [
        {"type": "exposure", "visitor": "a", "experiment": "shop", "variant": "guide",
         "time": "2026-01-01T10:00:00Z"},
        {"type": "exposure", "visitor": "b", "experiment": "shop"},
        {"type": "conversion", "visitor": "a", "goal": "purchase", "value": 30,
         "event_id": "o-1", "time": "2026-01-01T10:05:00+00:00"},
        {"type": "conversion", "visitor": "b", "goal": "newsletter"},
    ]  # fmt: skip
    reply = client.post("/api/events", json={"events": events})
    assert reply.status_code == 200
    assert reply.get_json() == {
        "exposures": {"received": 2, "recorded": 2},
        "conversions": {"received": 2, "recorded": 2, "duplicates": 0},
    }
    assert counts(app) == (2, 2)
    assert app.extensions["abconv"].store.exposures_of("a", ["shop"])["shop"].variant == "guide"


def test_a_conversion_before_the_exposure_does_not_count(app: Flask, client: FlaskClient) -> None:
    events = [
        {"type": "exposure", "visitor": "a", "experiment": "shop", "time": 1_700_000_000},
        {"type": "conversion", "visitor": "a", "goal": "purchase", "time": 1_600_000_000},
    ]
    body = client.post("/api/events", json={"events": events}).get_json()
    assert body["conversions"]["recorded"] == 0 and counts(app) == (1, 0)


def test_a_resent_batch_changes_nothing(app: Flask, client: FlaskClient) -> None:
    events = [
        {"type": "exposure", "visitor": "a", "experiment": "shop"},
        {"type": "conversion", "visitor": "a", "goal": "purchase", "event_id": "o-1", "value": 5},
    ]
    client.post("/api/events", json={"events": events})
    again = client.post("/api/events", json={"events": events}).get_json()
    assert again["exposures"]["recorded"] == 0
    assert again["conversions"] == {"received": 1, "recorded": 0, "duplicates": 1}
    assert counts(app) == (1, 1)


def test_one_bad_event_rejects_the_whole_batch(app: Flask, client: FlaskClient) -> None:
    events = [
        {"type": "exposure", "visitor": "a", "experiment": "shop"},
        {"type": "conversion", "visitor": "a", "goal": "purchase", "value": -5},
        {"type": "exposure", "visitor": "b", "experiment": "nope"},
        {"type": "click", "visitor": "c"},
    ]
    error = assert_error(client.post("/api/events", json={"events": events}), 400, "invalid_events")
    assert error["message"].startswith("3 of 4 events are invalid; nothing was recorded")
    assert error["details"] == [
        "events[1].value must be a finite number from 0 to 1,000,000,000 (MAX_EVENT_VALUE), got -5",
        "events[2].experiment: no experiment 'nope'",
        'events[3].type must be "exposure" or "conversion"',
    ]
    assert counts(app) == (0, 0)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "bad_request"),
        ({"events": []}, "bad_request"),
        ({"events": "lots"}, "bad_request"),
        ({"events": [{"type": "exposure", "visitor": "a", "experiment": "shop"}] * 1001},
         "too_many_events"),
        ({"events": [5]}, "invalid_events"),
        ({"events": [{"type": "exposure", "visitor": "a", "experiment": "shop",
                      "variant": "nope"}]}, "invalid_events"),
    ],
)  # fmt: skip
def test_bad_batches_get_a_4xx(
    app: Flask, client: FlaskClient, body: dict[str, object], code: str
) -> None:
    assert_error(client.post("/api/events", json=body), 400, code)
    assert counts(app) == (0, 0)


def test_a_full_batch_of_1000_is_accepted(app: Flask, client: FlaskClient) -> None:
    events = [{"type": "exposure", "visitor": f"v{i}", "experiment": "shop"} for i in range(500)]
    events += [{"type": "conversion", "visitor": f"v{i}", "goal": "newsletter"} for i in range(500)]
    reply = client.post("/api/events", json={"events": events})
    assert reply.status_code == 200 and counts(app) == (500, 500)
