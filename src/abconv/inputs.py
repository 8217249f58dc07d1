"""Checking what callers send: visitor ids, keys, values, times, events.

Every check raises :class:`AbconvError` with a message that names the field,
so the same rules serve the query string, JSON bodies and batch events.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from abconv.errors import AbconvError

IDENTIFIER = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")  # visitor ids and event ids
IDENTIFIER_RULE = "1-128 characters of A-Z a-z 0-9 _ . : -"
KEY = re.compile(r"[a-z0-9_\-]{1,64}")
MAX_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class EventInput:
    """A conversion as a caller reports it (``/api/convert`` or a batch)."""

    visitor: str
    goal: str
    value: float | None = None
    event_id: str | None = None
    experiment: str | None = None
    time: datetime | None = None  # naive UTC; None: now


def require_visitor(value: Any, field: str = "visitor") -> str:
    if value is None or value == "":
        raise AbconvError("missing_visitor", f"{field} is required ({IDENTIFIER_RULE})")
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        shown = value[:40] + "..." if isinstance(value, str) and len(value) > 40 else value
        raise AbconvError("bad_visitor", f"{field} must be {IDENTIFIER_RULE}, got {shown!r}")
    return value


def require_experiment_key(value: Any, field: str = "experiment") -> str:
    return _require_key(value, field, "unknown_experiment", 404)


def require_variant_key(value: Any, field: str = "variant") -> str:
    return _require_key(value, field, "unknown_variant", 400)


def require_goal_key(value: Any, field: str = "goal") -> str:
    return _require_key(value, field, "unknown_goal", 400)


def _require_key(value: Any, field: str, code: str, status: int) -> str:
    if value is None or value == "":
        raise AbconvError("bad_request", f"{field} is required")
    if not isinstance(value, str):
        raise AbconvError("bad_request", f"{field} must be a string, got {value!r}")
    if not KEY.fullmatch(value):
        raise AbconvError(code, f"{field}: no such key {value[:70]!r}", status)
    return value


def optional_value(value: Any, field: str = "value") -> float | None:
    """A money value: a finite number >= 0, or None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AbconvError("bad_value", f"{field} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise AbconvError("bad_value", f"{field} must be a finite number >= 0, got {value!r}")
    return float(value)


def optional_event_id(value: Any, field: str = "event_id") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise AbconvError("bad_event_id", f"{field} must be {IDENTIFIER_RULE}, got {value!r}")
    return value


def optional_time(value: Any, field: str = "time") -> datetime | None:
    """ISO 8601 (an offset, or UTC when none) or Unix seconds; never in the future."""
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            raise TypeError
    except (TypeError, ValueError, OverflowError, OSError):
        raise AbconvError(
            "bad_time", f"{field} must be ISO 8601 or Unix seconds, got {value!r}"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    if moment > datetime.now(UTC).replace(tzinfo=None) + MAX_CLOCK_SKEW:
        raise AbconvError("bad_time", f"{field} is in the future: {value!r}")
    return moment


def conversion_input(body: Any, prefix: str = "") -> EventInput:
    """An :class:`EventInput` from a JSON object; ``prefix`` names it in errors."""
    require_object(body, prefix or "body")
    return EventInput(
        visitor=require_visitor(body.get("visitor"), prefix + "visitor"),
        goal=require_goal_key(body.get("goal"), prefix + "goal"),
        value=optional_value(body.get("value"), prefix + "value"),
        event_id=optional_event_id(body.get("event_id"), prefix + "event_id"),
        experiment=(
            None
            if body.get("experiment") is None
            else require_experiment_key(body.get("experiment"), prefix + "experiment")
        ),
        time=optional_time(body.get("time"), prefix + "time"),
    )


def require_object(body: Any, name: str = "body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise AbconvError("bad_json", f"{name} must be a JSON object")
    return body
