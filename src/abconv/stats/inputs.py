"""Validation of the ``abconv analyze`` input into frozen dataclasses.

The input is plain JSON data (see DESIGN.md, "Results document").  Every
problem raises ``ValueError`` with the path of the field, e.g.
``goals[0].counts.b.conversions: 120 exceeds visitors 100``.  Numbers must
be finite; booleans are not numbers; counts may be written as integral
floats (``100.0``).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypeVar

from abconv.analysis_settings import AnalysisSettings
from abconv.vocabulary import GoalKind, Method, allowed

E = TypeVar("E", bound=StrEnum)

MAX_COUNT = 10**15
"""Largest visitor or conversion count accepted (keeps every float finite)."""

MAX_VALUE = 1e100
"""Largest ``value_sum`` or ``value_sum_squares`` accepted (squares stay finite)."""

MAX_CUBES = 1e300
"""Largest ``value_sum_cubes`` accepted."""

MAX_LOOKS = 3660
"""Most daily ``looks`` accepted (ten years)."""

RELATIVE_TOLERANCE = 1e-9
"""Slack for rounding in ``value_sum_squares`` consistency checks."""


@dataclass(frozen=True)
class VariantInput:
    key: str
    weight: float
    visitors: int


@dataclass(frozen=True)
class GoalCounts:
    """One variant's counts for one goal; the value sums are ``None`` unless the goal has values."""

    conversions: int
    value_sum: float | None = None
    value_sum_squares: float | None = None
    value_sum_cubes: float | None = None
    # Per-visitor sums of conversion events (count goals; value goals' value per order):
    events: int | None = None  # Σ e
    events_sum_squares: float | None = None  # Σ e²
    value_events_sum: float | None = None  # Σ v·e (value goals)


@dataclass(frozen=True)
class GoalInput:
    """A goal; ``counts`` is aligned with :attr:`AnalysisInput.variants`."""

    key: str
    kind: GoalKind
    primary: bool
    has_value: bool
    counts: tuple[GoalCounts, ...]
    guard: bool = True
    count: bool = False  # analysed as conversion events per visitor too


@dataclass(frozen=True)
class Look:
    """Cumulative counts at the end of a UTC day, aligned with :attr:`AnalysisInput.variants`.

    ``conversions`` maps a goal to its converting visitors per variant
    (zeros for a goal the look leaves out).
    """

    day: datetime.date
    visitors: tuple[int, ...]
    conversions: dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class AnalysisInput:
    experiment: str
    settings: AnalysisSettings
    variants: tuple[VariantInput, ...]
    control: int
    goals: tuple[GoalInput, ...]
    looks: tuple[Look, ...] = ()

    @property
    def primary(self) -> GoalInput:
        return next(goal for goal in self.goals if goal.primary)


TOP_LEVEL_KEYS = frozenset(
    {"experiment", "control", "variants", "goals"}
    | {"method", "alpha", "chance_to_win", "max_expected_loss", "min_visitors", "mde", "power"}
    | {"guardrail_margin", "looks"}
)
VARIANT_KEYS = frozenset({"key", "weight", "visitors"})
GOAL_KEYS = frozenset({"key", "kind", "primary", "value", "count", "counts", "guard"})
COUNT_KEYS = frozenset(
    {"conversions", "value_sum", "value_sum_squares", "value_sum_cubes"}
    | {"events", "events_sum_squares", "value_events_sum"}
)
LOOK_KEYS = frozenset({"day", "visitors", "conversions"})


def parse_input(data: Any) -> AnalysisInput:
    """Validate ``data`` and return it as an :class:`AnalysisInput`.

    Raises ``ValueError`` naming the field for anything malformed.
    """
    root = _mapping(data, "input", TOP_LEVEL_KEYS)
    experiment = _string(root, "experiment", "")
    settings = _settings(root)
    variants = _variants(root.get("variants"))
    keys = [variant.key for variant in variants]
    control_key = root.get("control", keys[0])
    if control_key not in keys:
        raise ValueError(f"control: {control_key!r} is not a variant ({', '.join(keys)})")
    goals = _goals(root.get("goals"), variants)
    looks = _looks(root.get("looks", []), variants, goals)
    return AnalysisInput(experiment, settings, variants, keys.index(control_key), goals, looks)


def _settings(root: Mapping[str, Any]) -> AnalysisSettings:
    defaults = AnalysisSettings()
    method = _choice(root.get("method", defaults.method), "method", Method)
    alpha = _number(root.get("alpha", defaults.alpha), "alpha")
    _check_range(alpha, "alpha", 0.0 < alpha <= 0.5, "in (0, 0.5]")
    chance = _number(root.get("chance_to_win", defaults.chance_to_win), "chance_to_win")
    _check_range(chance, "chance_to_win", 0.5 <= chance < 1.0, "in [0.5, 1)")
    loss = _number(root.get("max_expected_loss", defaults.max_expected_loss), "max_expected_loss")
    _check_range(loss, "max_expected_loss", 0.0 < loss < 1.0, "in (0, 1)")
    min_visitors = _count(root.get("min_visitors", defaults.min_visitors), "min_visitors")
    mde = _number(root.get("mde", defaults.mde), "mde")
    _check_range(mde, "mde", 0.0 < mde <= 10.0, "in (0, 10]")
    power = _number(root.get("power", defaults.power), "power")
    _check_range(power, "power", 0.0 < power < 1.0, "in (0, 1)")
    margin = _number(root.get("guardrail_margin", defaults.guardrail_margin), "guardrail_margin")
    _check_range(margin, "guardrail_margin", 0.0 < margin < 1.0, "in (0, 1)")
    return AnalysisSettings(method, alpha, chance, loss, min_visitors, mde, power, margin)


def _variants(raw: Any) -> tuple[VariantInput, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("variants: must be a non-empty list")
    variants: list[VariantInput] = []
    for index, item in enumerate(raw):
        where = f"variants[{index}]"
        entry = _mapping(item, where, VARIANT_KEYS)
        key = _string(entry, "key", where + ".")
        if any(variant.key == key for variant in variants):
            raise ValueError(f"{where}.key: duplicate variant key {key!r}")
        weight = _number(entry.get("weight", 1), f"{where}.weight")
        _check_range(weight, f"{where}.weight", weight > 0.0, "> 0")
        visitors = _count(entry.get("visitors"), f"{where}.visitors")
        variants.append(VariantInput(key, weight, visitors))
    return tuple(variants)


def _goals(raw: Any, variants: tuple[VariantInput, ...]) -> tuple[GoalInput, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("goals: must be a non-empty list")
    goals: list[GoalInput] = []
    for index, item in enumerate(raw):
        goal = _goal(item, f"goals[{index}]", variants)
        if any(other.key == goal.key for other in goals):
            raise ValueError(f"goals[{index}].key: duplicate goal key {goal.key!r}")
        goals.append(goal)
    primaries = [goal.key for goal in goals if goal.primary]
    if not primaries and len(goals) == 1:
        only = goals[0]
        return (replace(only, primary=True),)
    if len(primaries) != 1:
        found = ", ".join(primaries) if primaries else "none"
        raise ValueError(f"goals: exactly one goal must have primary = true (found: {found})")
    return tuple(goals)


def _goal(item: Any, where: str, variants: tuple[VariantInput, ...]) -> GoalInput:
    entry = _mapping(item, where, GOAL_KEYS)
    key = _string(entry, "key", where + ".")
    kind = _choice(entry.get("kind", GoalKind.HARD), f"{where}.kind", GoalKind)
    primary = _flag(entry.get("primary", False), f"{where}.primary")
    has_value = _flag(entry.get("value", False), f"{where}.value")
    guard = _flag(entry.get("guard", True), f"{where}.guard")
    count = _flag(entry.get("count", False), f"{where}.count")
    if not guard and kind is GoalKind.SOFT:
        raise ValueError(f"{where}.guard: only hard goals guard; leave it out on soft goals")
    counts_raw = _mapping(entry.get("counts"), f"{where}.counts", None)
    known = {variant.key for variant in variants}
    unknown = sorted(set(counts_raw) - known)
    if unknown:
        raise ValueError(f"{where}.counts.{unknown[0]}: not a variant ({', '.join(sorted(known))})")
    counts = tuple(
        _with_events(
            _counts(
                counts_raw.get(variant.key), f"{where}.counts.{variant.key}", variant, has_value
            ),
            counts_raw[variant.key],
            f"{where}.counts.{variant.key}",
            count,
        )
        for variant in variants
    )
    return GoalInput(key, kind, primary, has_value, counts, guard, count)


def _counts(raw: Any, where: str, variant: VariantInput, has_value: bool) -> GoalCounts:
    if raw is None:
        raise ValueError(f"{where}: missing counts for variant {variant.key!r}")
    entry = _mapping(raw, where, COUNT_KEYS)
    conversions = _count(entry.get("conversions"), f"{where}.conversions")
    if conversions > variant.visitors:
        raise ValueError(f"{where}.conversions: {conversions} exceeds visitors {variant.visitors}")
    if not has_value:
        for field in ("value_sum", "value_sum_squares", "value_sum_cubes"):
            if field in entry:
                raise ValueError(f"{where}.{field}: given but the goal does not have value = true")
        return GoalCounts(conversions)
    total = _number(entry.get("value_sum"), f"{where}.value_sum")
    squares = _number(entry.get("value_sum_squares"), f"{where}.value_sum_squares")
    _check_range(total, f"{where}.value_sum", 0.0 <= total <= MAX_VALUE, "in [0, 1e100]")
    _check_range(
        squares, f"{where}.value_sum_squares", 0.0 <= squares <= MAX_VALUE, "in [0, 1e100]"
    )
    _check_value_consistency(where, conversions, total, squares)
    if "value_sum_cubes" not in entry:
        return GoalCounts(conversions, total, squares)
    cubes = _number(entry["value_sum_cubes"], f"{where}.value_sum_cubes")
    _check_range(cubes, f"{where}.value_sum_cubes", 0.0 <= cubes <= MAX_CUBES, "in [0, 1e300]")
    _check_cubes(where, conversions, squares, cubes)
    return GoalCounts(conversions, total, squares, cubes)


def _with_events(
    counts: GoalCounts, entry: Mapping[str, Any], where: str, count: bool
) -> GoalCounts:
    """``events`` and ``events_sum_squares``: required on count goals, optional on others
    (together); ``value_events_sum`` on value goals with them. Each converting visitor
    has a whole number of events >= 1."""
    if "events" not in entry and "events_sum_squares" not in entry:
        if count:
            raise ValueError(f"{where}.events: missing on a goal with count = true")
        if "value_events_sum" in entry:
            raise ValueError(f"{where}.value_events_sum: needs events and events_sum_squares")
        return counts
    events = _count(entry.get("events"), f"{where}.events")
    squares = _number(entry.get("events_sum_squares"), f"{where}.events_sum_squares")
    x = counts.conversions
    if (events == 0) != (x == 0) or events < x:
        raise ValueError(f"{where}.events: {events} is impossible for {x} converting visitors")
    highest = float(events) * events * (1.0 + RELATIVE_TOLERANCE)
    lowest = max(float(events), events * events / max(x, 1)) * (1.0 - RELATIVE_TOLERANCE)
    if not lowest <= squares <= highest:
        raise ValueError(
            f"{where}.events_sum_squares: {squares:g} is impossible for {events} events over "
            f"{x} converting visitors"
        )
    counts = replace(counts, events=events, events_sum_squares=squares)
    if "value_events_sum" not in entry:
        return counts
    if counts.value_sum is None or counts.value_sum_squares is None:
        raise ValueError(f"{where}.value_events_sum: given but the goal does not have value = true")
    cross = _number(entry["value_events_sum"], f"{where}.value_events_sum")
    _check_range(cross, f"{where}.value_events_sum", 0.0 <= cross <= MAX_CUBES, "in [0, 1e300]")
    bound = math.sqrt(counts.value_sum_squares * squares) * (1.0 + RELATIVE_TOLERANCE)
    if not counts.value_sum * (1.0 - RELATIVE_TOLERANCE) <= cross <= bound:
        raise ValueError(
            f"{where}.value_events_sum: {cross:g} is impossible for value_sum "
            f"{counts.value_sum:g} and these events (between value_sum and "
            "sqrt(value_sum_squares x events_sum_squares))"
        )
    return replace(counts, value_events_sum=cross)


def _check_cubes(where: str, conversions: int, squares: float, cubes: float) -> None:
    """Non-negative values: (Σv²)^{3/2} / sqrt(x) <= Σv³ <= (Σv²)^{3/2} (power means, Hölder)."""
    if conversions == 0:
        if cubes > 0.0:
            raise ValueError(f"{where}.value_sum_cubes: values without conversions")
        return
    highest = squares**1.5 * (1.0 + RELATIVE_TOLERANCE)
    lowest = squares**1.5 / math.sqrt(conversions) * (1.0 - RELATIVE_TOLERANCE)
    if not lowest <= cubes <= highest:
        raise ValueError(
            f"{where}.value_sum_cubes: {cubes} is impossible for value_sum_squares {squares} "
            f"over {conversions} conversions"
        )


def _looks(
    raw: Any, variants: tuple[VariantInput, ...], goals: tuple[GoalInput, ...]
) -> tuple[Look, ...]:
    """``looks``: cumulative end-of-day counts, days strictly ascending, counts never falling."""
    if not isinstance(raw, list):
        raise ValueError(f"looks: must be a list, got {_type_name(raw)}")
    if len(raw) > MAX_LOOKS:
        raise ValueError(f"looks: at most {MAX_LOOKS} days, got {len(raw)}")
    looks: list[Look] = []
    for index, item in enumerate(raw):
        look = _look(item, f"looks[{index}]", variants, goals)
        if looks:
            before = looks[-1]
            if look.day <= before.day:
                raise ValueError(f"looks[{index}].day: {look.day} is not after {before.day}")
            falling = any(
                a < b for a, b in zip(look.visitors, before.visitors, strict=True)
            ) or any(
                a < b
                for goal, counts in look.conversions.items()
                for a, b in zip(counts, before.conversions[goal], strict=True)
            )
            if falling:
                raise ValueError(f"looks[{index}]: counts are cumulative and cannot fall")
        looks.append(look)
    return tuple(looks)


def _look(
    item: Any, where: str, variants: tuple[VariantInput, ...], goals: tuple[GoalInput, ...]
) -> Look:
    entry = _mapping(item, where, LOOK_KEYS)
    day_raw = entry.get("day")
    try:
        day = datetime.date.fromisoformat(day_raw) if isinstance(day_raw, str) else None
    except ValueError:
        day = None
    if day is None:
        raise ValueError(f"{where}.day: must be a date as YYYY-MM-DD, got {day_raw!r}")
    keys = [variant.key for variant in variants]
    visitors_raw = _mapping(entry.get("visitors"), f"{where}.visitors", frozenset(keys))
    visitors = tuple(_count(visitors_raw.get(key, 0), f"{where}.visitors.{key}") for key in keys)
    conversions_raw = _mapping(
        entry.get("conversions", {}), f"{where}.conversions", frozenset(g.key for g in goals)
    )
    conversions: dict[str, tuple[int, ...]] = {}
    for goal in goals:
        counts_raw = _mapping(
            conversions_raw.get(goal.key, {}), f"{where}.conversions.{goal.key}", frozenset(keys)
        )
        counts = []
        for key, seen in zip(keys, visitors, strict=True):
            field = f"{where}.conversions.{goal.key}.{key}"
            count = _count(counts_raw.get(key, 0), field)
            if count > seen:
                raise ValueError(f"{field}: {count} exceeds visitors {seen}")
            counts.append(count)
        conversions[goal.key] = tuple(counts)
    return Look(day, visitors, conversions)


def _check_value_consistency(where: str, conversions: int, total: float, squares: float) -> None:
    """Values live only on converting visitors and are >= 0, so S²/x <= Σv² <= S²."""
    if conversions == 0:
        if total > 0.0 or squares > 0.0:
            raise ValueError(f"{where}.value_sum: values without conversions")
        return
    lowest = total * total / conversions * (1.0 - RELATIVE_TOLERANCE)
    highest = total * total * (1.0 + RELATIVE_TOLERANCE)
    if not lowest <= squares <= highest:
        raise ValueError(
            f"{where}.value_sum_squares: {squares} is impossible for value_sum {total} over "
            f"{conversions} conversions (must be between value_sum²/conversions and value_sum²)"
        )


def _mapping(raw: Any, where: str, keys: frozenset[str] | None) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: must be an object, got {_type_name(raw)}")
    if keys is not None:
        unknown = sorted(str(key) for key in raw if key not in keys)
        if unknown:
            names = ", ".join(sorted(keys))
            raise ValueError(f"{where}: unknown field {unknown[0]!r} (allowed: {names})")
    return raw


def _string(entry: Mapping[str, Any], field: str, prefix: str) -> str:
    value = entry.get(field)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{prefix}{field}: must be a non-empty string, got {value!r}")
    return value


def _number(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ValueError(f"{where}: must be a number, got {_type_name(raw)}")
    try:
        value = float(raw)
    except OverflowError:
        raise ValueError(f"{where}: too large, got {raw}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: must be finite, got {raw}")
    return value


def _count(raw: Any, where: str) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        value: float = raw
    else:
        value = _number(raw, where)
    if value < 0 or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"{where}: must be a whole number >= 0, got {raw}")
    if value > MAX_COUNT:
        raise ValueError(f"{where}: must be at most {MAX_COUNT:.0e}, got {raw}")
    return int(value)


def _flag(raw: Any, where: str) -> bool:
    if not isinstance(raw, bool):
        raise ValueError(f"{where}: must be true or false, got {raw!r}")
    return raw


def _choice(raw: Any, where: str, vocabulary: type[E]) -> E:
    try:
        return vocabulary(raw)
    except ValueError:
        raise ValueError(f"{where}: {raw!r} is not one of {allowed(vocabulary)}") from None


def _check_range(value: float, where: str, ok: bool, rule: str) -> None:
    if not ok:
        raise ValueError(f"{where}: {value:g} must be {rule}")


def _type_name(raw: Any) -> str:
    return "null" if raw is None else type(raw).__name__
