"""Line numbers for the keys of a TOML document, for error messages.

``tomllib`` returns plain values without positions, so this scans the raw
text for table headers (``[analysis]``, ``[[variants]]``) and ``key =``
lines. It is best effort and never fails: a key it cannot place (e.g. inside
an inline table) falls back to the nearest enclosing place it knows, so a
message points at the 2nd ``[[variants]]`` header or the ``variants = [``
line instead of nowhere.

Locations are tuples of table names, array indices (0-based, in file order)
and keys, as in the parsed data: ``("variants", 1, "weight")``.
"""

from __future__ import annotations

import re

Location = tuple[str | int, ...]

_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED_KEY = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_DOTTED_KEY})\s*\]\]")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_DOTTED_KEY})\s*\]")
_ASSIGNMENT = re.compile(rf"\s*({_DOTTED_KEY})\s*=")
_SEGMENT = re.compile(_KEY)
_MULTILINE_QUOTES = ('"""', "'''")
_STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'[^']*'""")


def _segments(dotted: str) -> list[str]:
    return [segment.strip("\"'") for segment in _SEGMENT.findall(dotted)]


class KeyLines:
    """Where each table and key of one TOML text starts (1-based lines)."""

    def __init__(self, text: str) -> None:
        self._lines: dict[Location, int] = {}
        self._array_index: dict[Location, int] = {}
        self._table: Location = ()
        # A multi-line array being read: its location, next index, bracket depth.
        self._array: tuple[Location, int, int] | None = None
        open_quote: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if open_quote is not None:
                if open_quote in line:
                    open_quote = None
                continue
            if self._array is not None:
                self._array = self._read_array_line(self._array, number, line)
                continue
            self._read_line(number, line)
            open_quote = _opens_multiline_string(line)

    def line_of(self, location: Location) -> int | None:
        """The line of ``location``, else of its nearest known parent, else ``None``."""
        for end in range(len(location), 0, -1):
            line = self._lines.get(location[:end])
            if line is not None:
                return line
        return None

    def _read_line(self, number: int, line: str) -> None:
        if match := _ARRAY_HEADER.match(line):
            *parents, name = _segments(match.group(1))
            array = (*self._resolve(parents), name)
            index = self._array_index.get(array, -1) + 1
            self._array_index[array] = index
            self._table = (*array, index)
            self._lines.setdefault(array, number)
            self._lines[self._table] = number
        elif match := _TABLE_HEADER.match(line):
            self._table = self._resolve(_segments(match.group(1)))
            self._lines.setdefault(self._table, number)
        elif match := _ASSIGNMENT.match(line):
            segments = _segments(match.group(1))
            for end in range(1, len(segments) + 1):
                self._lines.setdefault((*self._table, *segments[:end]), number)
            value = line[match.end() :].lstrip()
            if value.startswith("[") and _bracket_depth(value) > 0:
                self._array = ((*self._table, *segments), 0, _bracket_depth(value))

    def _read_array_line(
        self, state: tuple[Location, int, int], number: int, line: str
    ) -> tuple[Location, int, int] | None:
        """Inline tables that start a line of a multi-line array are its items
        (``variants = [`` then ``{ key = "a", ... },`` lines); returns the
        array's new state, ``None`` once it is closed."""
        array, index, depth = state
        if line.lstrip().startswith("{"):
            self._lines.setdefault((*array, index), number)
            index += 1
        depth += _bracket_depth(line)
        return (array, index, depth) if depth > 0 else None

    def _resolve(self, segments: list[str]) -> Location:
        """The location of a header path, with the current index of every
        array of tables it passes through (``[variants.content]`` after the
        2nd ``[[variants]]`` is ``("variants", 1, "content")``)."""
        location: Location = ()
        for segment in segments:
            location = (*location, segment)
            if location in self._array_index:
                location = (*location, self._array_index[location])
        return location


def _bracket_depth(text: str) -> int:
    """How many more ``[`` than ``]`` ``text`` has outside strings and comments."""
    code = _STRING.sub("", text).split("#", 1)[0]
    return code.count("[") - code.count("]")


def _opens_multiline_string(line: str) -> str | None:
    """The quote of a multi-line string that starts on ``line`` and does not
    end there, so the lines up to its end are skipped."""
    for quote in _MULTILINE_QUOTES:
        if line.count(quote) % 2 == 1:
            return quote
    return None
