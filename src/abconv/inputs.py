"""Checking what callers send: visitor ids, keys, values, times, events.

Every check raises :class:`AbconvError` with a message that names the field,
so the same rules serve the query string, JSON bodies and batch events.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from abconv.errors import AbconvError
from abconv.experiments import Experiment

IDENTIFIER = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")  # visitor ids and event ids
IDENTIFIER_RULE = "1-128 characters of A-Z a-z 0-9 _ . : -"
KEY = re.compile(r"[a-z0-9_\-]{1,64}")
MAX_CLOCK_SKEW = timedelta(minutes=5)
EARLIEST_TIME = datetime(2000, 1, 1)  # naive UTC; older times are typos or epoch zeros
MAX_JSON_DEPTH = 32  # arrays and objects inside each other; our bodies need 3
MAX_EVENT_VALUE = 1e9
"""The largest value one event may carry, whatever its goal: a bound that keeps
sums and squares of stored values far inside what the analysis accepts."""


_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxlong, _SHORT.maxother = 60, 40, 60


def shown(value: Any) -> str:
    """A caller's value as quoted in a message: short, whatever was sent (a
    400-digit number, a nested list, a long string)."""
    return _SHORT.repr(value)


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
        raise AbconvError("bad_visitor", f"{field} must be {IDENTIFIER_RULE}, got {shown(value)}")
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
        raise AbconvError("bad_request", f"{field} must be a string, got {shown(value)}")
    if not KEY.fullmatch(value):
        raise AbconvError(code, f"{field}: no such key {shown(value)}", status)
    return value


def optional_value(value: Any, field: str = "value") -> float | None:
    """A money value: a finite number from 0 to :data:`MAX_EVENT_VALUE`, or None.

    Compared before any conversion to float: a JSON integer of 400 digits is
    a Python ``int`` that ``float()`` cannot hold.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AbconvError("bad_value", f"{field} must be a number, got {shown(value)}")
    if (isinstance(value, float) and not math.isfinite(value)) or not (
        0 <= value <= MAX_EVENT_VALUE
    ):
        raise AbconvError(
            "bad_value",
            f"{field} must be a finite number from 0 to {MAX_EVENT_VALUE:,.0f} "
            f"(MAX_EVENT_VALUE), got {shown(value)}",
        )
    return float(value) + 0.0  # + 0.0: -0.0 becomes 0.0


def optional_event_id(value: Any, field: str = "event_id") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise AbconvError("bad_event_id", f"{field} must be {IDENTIFIER_RULE}, got {shown(value)}")
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
            "bad_time", f"{field} must be ISO 8601 or Unix seconds, got {shown(value)}"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    if moment > datetime.now(UTC).replace(tzinfo=None) + MAX_CLOCK_SKEW:
        raise AbconvError("bad_time", f"{field} is in the future: {shown(value)}")
    if moment < EARLIEST_TIME:
        raise AbconvError(
            "bad_time", f"{field} is before {EARLIEST_TIME.year}-01-01 (UTC): {shown(value)}"
        )
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


def check_goal_value(
    event: EventInput, experiments: Sequence[Experiment], field: str = "value"
) -> None:
    """Refuse a value that none of ``experiments`` would keep, or one above the
    ``max_value`` of the goal in any of them.

    ``experiments`` are those that would count the event (or, when none runs,
    those that define its goal), so that the answer tells the caller what the
    files say about this goal.
    """
    if event.value is None:
        return
    goals = [(e.key, goal) for e in experiments if (goal := e.goal(event.goal)) and goal.value]
    if not goals:
        raise AbconvError(
            "bad_value",
            f"{field}: goal {event.goal!r} takes no value (no value = true in its "
            "experiment files); send it without value",
        )
    for key, goal in goals:
        if goal.max_value is not None and event.value > goal.max_value:
            raise AbconvError(
                "bad_value",
                f"{field} {event.value:g} is above the max_value {goal.max_value:g} "
                f"of goal {goal.key!r} (experiment {key!r})",
            )


def require_shallow(data: Any, limit: int = MAX_JSON_DEPTH) -> Any:
    """``data`` when its arrays and objects nest at most ``limit`` deep.

    Walked level by level, not recursively, so no depth of nesting can
    exhaust the stack here or in code that later prints the value.
    """
    level = [data]
    for _ in range(limit + 1):
        containers = [item for item in level if isinstance(item, dict | list)]
        if not containers:
            return data
        level = [
            child
            for item in containers
            for child in (item.values() if isinstance(item, dict) else item)
        ]
    raise json_too_deep(limit)


def json_too_deep(limit: int = MAX_JSON_DEPTH) -> AbconvError:
    return AbconvError("bad_json", f"the body nests arrays and objects over {limit} deep")


def require_object(body: Any, name: str = "body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise AbconvError("bad_json", f"{name} must be a JSON object")
    return body


MAX_EXPERIMENTS_A_REQUEST = 50


def experiment_list(value: Any, field: str = "experiments") -> list[str] | None:
    """Several experiment keys: ``"a,b"`` in a query string, or a JSON list of keys.

    ``None`` when not given. Duplicates are dropped, order kept. A key that
    is well formed but names no experiment is the caller's to skip.
    """
    if value is None or value == "":
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise AbconvError("bad_request", f"{field} must be keys separated by commas, or a list")
    keys = list(dict.fromkeys(item.strip() for item in items if item.strip()))
    if not keys or len(keys) > MAX_EXPERIMENTS_A_REQUEST:
        raise AbconvError(
            "bad_request",
            f"{field} must name 1 to {MAX_EXPERIMENTS_A_REQUEST} experiments, got {len(keys)}",
        )
    for key in keys:
        if not KEY.fullmatch(key):
            raise AbconvError("bad_request", f"{field}: {shown(key)} is not an experiment key")
    return keys
