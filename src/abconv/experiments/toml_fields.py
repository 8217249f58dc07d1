"""Typed fields of parsed TOML tables, with problems collected instead of raised.

:class:`FieldChecker` reads one field at a time (a string, a number in a
range, a choice from a vocabulary, ...) and, when the value is missing or
of the wrong kind, records a :class:`Problem` placed on its line by
:mod:`abconv.experiments.toml_lines` and returns ``None``, so that a file's problems can
all be reported at once. Messages read "<label><field> must be <rule>, got
<value>", where a table's label names it ("", "analysis.", 'variant "a": ').
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any, TypeVar

from abconv.experiments.model import Problem
from abconv.experiments.toml_lines import KeyLines, Location
from abconv.vocabulary import allowed

_Choice = TypeVar("_Choice", bound=StrEnum)


def shorten(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters: a message quotes what the file
    says, but a 200 KB key must not become a 200 KB message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def typed(value: Any) -> str:
    """A value and its TOML type, for "must be ..., got ..." messages."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        return f'"{shorten(value)}" (a string)'
    if isinstance(value, int | float):
        return f"{value} (a number)"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime | date | time):
        return f"{value.isoformat()} (a date/time)"
    return type(value).__name__


@dataclass(frozen=True)
class Table:
    """A table being checked: its data, where it is, and how messages name it."""

    data: dict[str, Any]
    where: Location
    label: str  # prefix of field names in messages: "", "analysis.", 'variant "a": '

    def at(self, field: str) -> Location:
        return (*self.where, field)


class FieldChecker:
    """Reads the fields of the tables of one file, collecting problems."""

    def __init__(self, path: str, lines: KeyLines) -> None:
        self.path = path
        self.lines = lines
        self.problems: list[Problem] = []

    def problem(self, where: Location, message: str) -> None:
        self.problems.append(Problem(self.path, self.lines.line_of(where), message))

    def unknown_fields(self, table: Table, known: tuple[str, ...]) -> None:
        for field in table.data:
            if field in known:
                continue
            close = difflib.get_close_matches(field, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)}"
            if table.label.endswith("."):  # "analysis.": name the field by its path
                message = f"unknown field '{table.label}{shorten(field)}'"
            else:
                message = f"{table.label}unknown field '{shorten(field)}'"
            self.problem(table.at(field), f"{message} ({hint})")

    def missing(self, table: Table, field: str) -> None:
        self.problem(table.where, f"{table.label}missing required field '{field}'")

    def wrong_type(self, table: Table, field: str, expected: str) -> None:
        got = typed(table.data[field])
        self.problem(table.at(field), f"{table.label}{field} must be {expected}, got {got}")

    def text(
        self, table: Table, field: str, *, required: bool = False,
        default: str | None = None, blank: bool = True,
    ) -> str | None:  # fmt: skip
        if field not in table.data:
            if required:
                self.missing(table, field)
            return default
        value = table.data[field]
        if not isinstance(value, str):
            self.wrong_type(table, field, "a string")
            return None
        if not blank and not value.strip():
            self.problem(table.at(field), f"{table.label}{field} must not be empty")
            return None
        return value

    def number(self, table: Table, field: str, default: float) -> float | None:
        value = table.data.get(field, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.wrong_type(table, field, "a number")
            return None
        if not math.isfinite(value):
            self.wrong_type(table, field, "a finite number")
            return None
        return float(value)

    def ranged(
        self, table: Table, field: str, default: float,
        valid: Callable[[float], bool], rule: str,
    ) -> float | None:  # fmt: skip
        """A number that must satisfy ``valid``, described by ``rule`` ("> 0")."""
        number = self.number(table, field, default)
        if number is not None and not valid(number):
            raw = table.data.get(field, default)
            self.problem(table.at(field), f"{table.label}{field} must be {rule}, got {raw}")
            return None
        return number

    def integer(self, table: Table, field: str, default: int) -> int | None:
        value = table.data.get(field, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.wrong_type(table, field, "a whole number")
            return None
        return value

    def flag(self, table: Table, field: str, default: bool | None) -> bool | None:
        value = table.data.get(field, default)
        if value is not None and not isinstance(value, bool):
            self.wrong_type(table, field, "true or false")
            return None
        return value

    def choice(
        self, table: Table, field: str, vocabulary: type[_Choice], default: _Choice | None
    ) -> _Choice | None:
        if field not in table.data:
            if default is None:
                self.missing(table, field)
            return default
        value = table.data[field]
        if not isinstance(value, str):
            self.wrong_type(table, field, allowed(vocabulary))
            return None
        try:
            return vocabulary(value)
        except ValueError:
            self.wrong_type(table, field, allowed(vocabulary))
            return None
