"""The rules of experiment files, checked on parsed TOML (no Flask, no database).

:class:`Checker` turns the data of one file into an :class:`Experiment` or
collects every problem it has, each placed on a line by
:mod:`abconv.experiments.toml_lines`. the README (section "Experiment files") states the rules for
people; keep the two together.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import PurePosixPath
from typing import Any

from abconv.experiments.limits import MAX_CONTENT_DEPTH
from abconv.experiments.model import (
    ANALYSIS_DEFAULTS,
    AnalysisSettings,
    Experiment,
    Goal,
    Variant,
)
from abconv.experiments.toml_fields import FieldChecker, Table, shorten, typed
from abconv.vocabulary import ExperimentKind, GoalKind, Method, Status

MAX_KEY_LENGTH = 64
ENGAGED_GOAL = "engaged"  # the goal ``engagement = true`` adds (README, "Engagement")
EXPERIMENT_KEY = re.compile(r"[a-z0-9-]+")
ITEM_KEY = re.compile(r"[a-z0-9_-]+")  # variant and goal keys
TOP_LEVEL_FIELDS = (
    "key", "name", "hypothesis", "status", "kind", "traffic",
    "control", "winner", "variants", "goals", "analysis", "layer", "layer_slot",
    "engagement", "fallback",
)  # fmt: skip
VARIANT_FIELDS = ("key", "weight", "content", "template", "url")
GOAL_FIELDS = ("key", "kind", "value", "count", "primary", "max_value", "cap", "guard")
# The variant field each kind needs, and the fields it may have at all.
KIND_FIELD = {
    ExperimentKind.CTA: "content",
    ExperimentKind.PAGE: "template",
    ExperimentKind.REDIRECT: "url",
}
KIND_ALLOWS = {
    ExperimentKind.CTA: {"content"},
    ExperimentKind.PAGE: {"template", "content"},
    ExperimentKind.REDIRECT: {"url"},
}
KIND_EXAMPLE = {
    ExperimentKind.CTA: '{ text = "Start free trial", href = "/signup" }',
    ExperimentKind.PAGE: '"landing/pricing-a.html"',
    ExperimentKind.REDIRECT: '"https://example.com/a"',
}


def _depth(value: Any) -> int:
    """How many tables and arrays deep ``value`` goes (a scalar is 0).

    Recursive, so only for data whose depth :mod:`abconv.experiments.limits`
    has already bounded."""
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _quoted(names: list[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


class Checker(FieldChecker):
    """Reads one parsed file into an :class:`Experiment`, collecting problems."""

    # -- the experiment -------------------------------------------------

    def experiment(self, data: dict[str, Any], file_stem: str) -> Experiment | None:
        top = Table(data, (), "")
        self.unknown_fields(top, TOP_LEVEL_FIELDS)
        key = self.key(top, EXPERIMENT_KEY, "lowercase letters, digits and -")
        if key is not None and key != file_stem:
            self.problem(
                ("key",), f'key "{key}" must be "{file_stem}", the file name without .toml'
            )
        name = self.text(top, "name", required=True, blank=False)
        hypothesis = self.text(top, "hypothesis", default="")
        status = self.choice(top, "status", Status, Status.DRAFT)
        kind = self.choice(top, "kind", ExperimentKind, ExperimentKind.CTA)
        traffic = self.ranged(top, "traffic", 1.0, lambda x: 0 < x <= 1, "> 0 and <= 1")
        variants = self.variants(data, kind)
        goals = self.goals(data)
        engagement = self.flag(top, "engagement", False)
        if engagement:
            goals.append(self.engaged_goal(goals))
        analysis = self.analysis(data)
        control, winner = self.control_and_winner(top, variants, status)
        fallback = self.named_variant(top, "fallback", variants)
        layer, layer_slot = self.layer(top)
        if (
            self.problems or key is None or name is None or hypothesis is None
            or status is None or kind is None or traffic is None or control is None
            or analysis is None or engagement is None
        ):  # fmt: skip
            return None
        return Experiment(
            key=key, name=name, hypothesis=hypothesis, status=status, kind=kind,
            traffic=traffic, control=control, winner=winner, variants=tuple(variants),
            goals=tuple(goals), analysis=analysis, path=self.path, layer=layer,
            layer_slot=layer_slot, layer_line=self.lines.line_of(("layer",)) if layer else None,
            engagement=engagement, fallback=fallback,
        )  # fmt: skip

    def engaged_goal(self, goals: list[Goal]) -> Goal:
        """The built-in soft goal of ``engagement = true``, reported by the snippet."""
        if any(goal.key == ENGAGED_GOAL for goal in goals):
            self.problem(
                ("engagement",),
                f'engagement = true adds the goal "{ENGAGED_GOAL}" itself: '
                f"remove the [[goals]] table of that key",
            )
        return Goal(ENGAGED_GOAL, GoalKind.SOFT, value=False, primary=False)

    def control_and_winner(
        self, top: Table, variants: list[Variant], status: Status | None
    ) -> tuple[str | None, str | None]:
        keys = [variant.key for variant in variants]
        control = self.named_variant(top, "control", variants)
        winner = self.named_variant(top, "winner", variants)
        if status is Status.CONCLUDED and winner is None and "winner" not in top.data:
            self.problem(("status",), 'status = "concluded" needs winner = "VARIANT"')
        if status not in (None, Status.CONCLUDED) and "winner" in top.data:
            self.problem(
                ("winner",), f'winner is only allowed with status = "concluded", not "{status}"'
            )
        return (control if control is not None else keys[0] if keys else None), winner

    def named_variant(self, top: Table, field: str, variants: list[Variant]) -> str | None:
        """A top-level field that names one of the file's variants."""
        keys = [variant.key for variant in variants]
        named = self.text(top, field)
        if named is not None and keys and named not in keys:
            self.problem((field,), f'{field} "{shorten(named)}" names no variant ({_quoted(keys)})')
        return named

    def layer(self, top: Table) -> tuple[str | None, int | None]:
        """``layer`` and ``layer_slot``: both or neither (README, "Layers")."""
        layer = self.text(top, "layer")
        if layer is not None and (
            not EXPERIMENT_KEY.fullmatch(layer) or len(layer) > MAX_KEY_LENGTH
        ):
            self.problem(
                ("layer",),
                f"layer must be 1 to {MAX_KEY_LENGTH} lowercase letters, digits and -, "
                f'got "{shorten(layer)}"',
            )
            layer = None
        slot = self.integer(top, "layer_slot", 0) if "layer_slot" in top.data else None
        if slot is not None and slot < 1:
            self.problem(("layer_slot",), f"layer_slot must be a whole number >= 1, got {slot}")
            slot = None
        if "layer" in top.data and "layer_slot" not in top.data:
            self.problem(
                ("layer",),
                "layer needs layer_slot = N, the order of this experiment's share in "
                "the layer (the next free slot for a new experiment)",
            )
        if "layer_slot" in top.data and "layer" not in top.data:
            self.problem(("layer_slot",), 'layer_slot needs layer = "NAME"')
        return layer, slot

    # -- variants and goals ---------------------------------------------

    def items(self, data: dict[str, Any], field: str, least: int) -> list[Table]:
        """The tables of the array ``field`` (``[[variants]]``, ``[[goals]]``)."""
        if field not in data:
            self.problem((), f"missing required field '{field}' (add [[{field}]] tables)")
            return []
        items = data[field]
        if not isinstance(items, list):
            self.problem((field,), f"{field} must be an array of tables, got {typed(items)}")
            return []
        if len(items) < least:
            what = "at least two variants (the control and a challenger)" if least > 1 else "a goal"
            self.problem((field,), f"an experiment needs {what}, got {len(items)}")
        tables = []
        singular = field.removesuffix("s")
        for index, item in enumerate(items):
            label = f"{singular} #{index + 1}: "
            if not isinstance(item, dict):
                self.problem((field, index), f"{label}must be a table, got {typed(item)}")
                continue
            key = item.get("key")
            if isinstance(key, str):
                label = f'{singular} "{shorten(key)}": '
            tables.append(Table(item, (field, index), label))
        return tables

    def variants(self, data: dict[str, Any], kind: ExperimentKind | None) -> list[Variant]:
        variants = []
        seen: dict[str, str] = {}
        for table in self.items(data, "variants", least=2):
            self.unknown_fields(table, VARIANT_FIELDS)
            key = self.key(table, ITEM_KEY, "lowercase letters, digits, _ and -")
            self.unique(table, key, seen, "variant")
            weight = self.ranged(table, "weight", 1, lambda x: x > 0, "> 0")
            content = self.content(table)
            template = self.template(table)
            url = self.url(table)
            if kind is not None:
                self.kind_fields(table, kind)
            if key is not None and weight is not None:
                variants.append(Variant(key, weight, content, template, url))
        return variants

    def kind_fields(self, table: Table, kind: ExperimentKind) -> None:
        needed = KIND_FIELD[kind]
        if needed not in table.data:
            example = KIND_EXAMPLE[kind]
            self.problem(table.where, f'{table.label}kind = "{kind}" needs {needed} = {example}')
        for field in ("content", "template", "url"):
            if field in table.data and field not in KIND_ALLOWS[kind]:
                self.problem(
                    table.at(field), f'{table.label}{field} is not used by kind = "{kind}"'
                )

    def goals(self, data: dict[str, Any]) -> list[Goal]:
        tables = self.items(data, "goals", least=1)
        primaries = [
            index for index, table in enumerate(tables) if self.flag(table, "primary", False)
        ]
        if len(tables) == 1 and "primary" not in tables[0].data:
            primaries = [0]  # a single goal is the primary one
        if tables and not primaries:
            self.problem(("goals",), "no primary goal: mark exactly one goal with primary = true")
        if len(primaries) > 1:
            keys = [shorten(str(tables[index].data.get("key"))) for index in primaries]
            self.problem(
                tables[primaries[1]].at("primary"),
                f"only one goal may be primary, got {_quoted(keys)}",
            )
        goals = []
        seen: dict[str, str] = {}
        for index, table in enumerate(tables):
            self.unknown_fields(table, GOAL_FIELDS)
            key = self.key(table, ITEM_KEY, "lowercase letters, digits, _ and -")
            self.unique(table, key, seen, "goal")
            kind = self.choice(table, "kind", GoalKind, None)
            value = self.flag(table, "value", False)
            max_value = self.value_limit(table, "max_value", value)
            cap = self.value_limit(table, "cap", value)
            guard = self.guard(table, kind)
            count = self.flag(table, "count", False)
            if (
                key is not None and kind is not None and value is not None
                and guard is not None and count is not None
            ):  # fmt: skip
                goals.append(
                    Goal(key, kind, value, index in primaries, max_value, cap, guard, count)
                )
        return goals

    def guard(self, table: Table, kind: GoalKind | None) -> bool | None:
        """``guard``: optional, on hard goals only; ``false`` lets a soft winner ship
        without this goal's non-inferiority (for goals too rare to prove it)."""
        guard = self.flag(table, "guard", True)
        if "guard" in table.data and kind is GoalKind.SOFT:
            self.problem(table.at("guard"), f"{table.label}guard is only for hard goals")
            return None
        return guard

    def value_limit(self, table: Table, field: str, value: bool | None) -> float | None:
        """``max_value`` or ``cap``: optional, a finite number > 0, on value goals only."""
        if field not in table.data:
            return None
        limit = self.ranged(table, field, 0, lambda x: x > 0, "> 0")
        if value is False:
            self.problem(table.at(field), f"{table.label}{field} needs value = true")
            return None
        return limit

    def unique(self, table: Table, key: str | None, seen: dict[str, str], what: str) -> None:
        if key is None:
            return
        if key in seen:
            self.problem(table.at("key"), f'duplicate {what} key "{key}" (also {seen[key]})')
        else:
            seen[key] = f"{what} #{int(table.where[-1]) + 1}"

    # -- fields of variants ---------------------------------------------

    def content(self, table: Table) -> dict[str, Any] | None:
        if "content" not in table.data:
            return None
        content = table.data["content"]
        if not isinstance(content, dict):
            self.problem(
                table.at("content"), f"{table.label}content must be a table, got {typed(content)}"
            )
            return None
        depth = _depth(content)
        if depth > MAX_CONTENT_DEPTH:
            self.problem(
                table.at("content"),
                f"{table.label}content is nested {depth} levels deep, "
                f"the limit is {MAX_CONTENT_DEPTH} (tables and arrays, content itself included)",
            )
            return None
        self.json_data(table, content, ("content",))
        return content

    def json_data(self, table: Table, value: Any, path: tuple[str | int, ...]) -> None:
        """Content is served as JSON: no dates, no inf or nan."""
        if isinstance(value, dict):
            for name, item in value.items():
                self.json_data(table, item, (*path, name))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.json_data(table, item, (*path, index))
        elif isinstance(value, datetime | date | time) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            name = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
            self.problem(
                (*table.where, *path),
                f"{table.label}{name[1:]} must be text, a finite number, a boolean, "
                f"an array or a table (content is sent as JSON), got {typed(value)}",
            )

    def template(self, table: Table) -> str | None:
        template = self.text(table, "template")
        if template is None:
            return None
        parts = PurePosixPath(template).parts
        if (
            template.startswith("/") or "\\" in template or ".." in parts
            or not template.endswith(".html")
        ):  # fmt: skip
            self.problem(
                table.at("template"),
                f"{table.label}template must be a path under templates/ ending in .html, "
                f'without ".." (e.g. "landing/pricing-a.html"), got "{shorten(template)}"',
            )
            return None
        return template

    def url(self, table: Table) -> str | None:
        url = self.text(table, "url")
        if url is None:
            return None
        absolute = url.startswith(("http://", "https://")) and len(url.split("//", 1)[1]) > 0
        local = url.startswith("/") and not url.startswith("//")
        if not (absolute or local) or any(char.isspace() for char in url):
            self.problem(
                table.at("url"),
                f'{table.label}url must start with "http://", "https://" or a single "/" '
                f'and contain no spaces, got "{shorten(url)}"',
            )
            return None
        return url

    # -- the analysis table ---------------------------------------------

    def analysis(self, data: dict[str, Any]) -> AnalysisSettings | None:
        settings = data.get("analysis", {})
        if not isinstance(settings, dict):
            self.problem(("analysis",), f"analysis must be a table, got {typed(settings)}")
            return None
        table = Table(settings, ("analysis",), "analysis.")
        self.unknown_fields(table, tuple(ANALYSIS_DEFAULTS))
        method = self.choice(table, "method", Method, ANALYSIS_DEFAULTS["method"])
        alpha = self.setting(table, "alpha", lambda x: 0 < x < 1, "> 0 and < 1")
        chance_to_win = self.setting(
            table, "chance_to_win", lambda x: 0.5 <= x < 1, ">= 0.5 and < 1"
        )
        max_expected_loss = self.setting(table, "max_expected_loss", lambda x: x >= 0, ">= 0")
        margin = self.setting(table, "guardrail_margin", lambda x: 0 < x < 1, "> 0 and < 1")
        mde = self.setting(table, "mde", lambda x: x > 0, "> 0")
        power = self.setting(table, "power", lambda x: 0 < x < 1, "> 0 and < 1")
        min_visitors = self.integer(table, "min_visitors", ANALYSIS_DEFAULTS["min_visitors"])
        if min_visitors is not None and min_visitors < 0:
            self.problem(
                table.at("min_visitors"),
                f"analysis.min_visitors must be >= 0, got {min_visitors}",
            )
            min_visitors = None
        if (
            method is None or alpha is None or chance_to_win is None or max_expected_loss is None
            or mde is None or power is None or min_visitors is None or margin is None
        ):  # fmt: skip
            return None
        return AnalysisSettings(
            method, alpha, chance_to_win, max_expected_loss, min_visitors, mde, power, margin
        )

    def setting(
        self, table: Table, field: str, valid: Callable[[float], bool], rule: str
    ) -> float | None:
        return self.ranged(table, field, ANALYSIS_DEFAULTS[field], valid, rule)

    # -- keys -----------------------------------------------------------

    def key(self, table: Table, pattern: re.Pattern[str], chars: str) -> str | None:
        key = self.text(table, "key", required=True)
        if key is None:
            return None
        if not pattern.fullmatch(key) or len(key) > MAX_KEY_LENGTH:
            self.problem(
                table.at("key"),
                f'{table.label}key must be 1 to {MAX_KEY_LENGTH} {chars}, got "{shorten(key)}"',
            )
            return None
        return key
