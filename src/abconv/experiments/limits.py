"""The bounds that keep one hostile experiment file from hurting the server.

An experiment file is read on every change by every worker, on the request
path. Without bounds, a 500-level nested array makes ``tomllib`` raise
``RecursionError``, a 100,000-part dotted key makes it take minutes and
gigabytes, and a 10 MB file would be sent with every assignment. So before
anything else looks at a file, it must:

- be a regular file inside the folder (a symlink may point only within it),
- be at most :data:`MAX_FILE_BYTES` long (read without loading more),
- be UTF-8 text,
- nest arrays, tables and dotted keys at most :data:`MAX_NESTING` levels,
  checked on the raw text before ``tomllib`` sees it and again, without
  recursion, on the parsed data (where headers and dotted keys add up).

The depth of a variant's ``content`` has its own, tighter rule in
:mod:`abconv.experiments.rules` (:data:`MAX_CONTENT_DEPTH`). Each breach
is an :class:`ExperimentFileError` naming the file and, when known, the line.
No Flask, no database.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from pathlib import Path
from typing import Any

from abconv.experiments.model import ExperimentFileError, Problem

MAX_FILE_BYTES = 256 * 1024
MAX_NESTING = 32  # arrays, tables and dotted-key parts; a sane file needs about 6
MAX_CONTENT_DEPTH = 10  # a variant's content table counts 1, each table or array inside it 1 more

# What the nesting scan must tell apart in raw TOML: strings and comments
# (whose brackets and dots mean nothing), dots (dotted keys nest tables),
# brackets and braces, and the characters after which a dotted key is over.
# Possessive quantifiers keep the scan linear on any input.
_TOKENS = re.compile(
    r"""
    (?P<string>
        \"{3} (?: [^"\\] | \\. | \"{1,2}(?!\") )*+ (?: \"{3,5} | \Z )
      | '{3} (?: [^'] | '{1,2}(?!') )*+ (?: '{3,5} | \Z )
      | " (?: [^"\\\n] | \\[^\n] )*+ "?
      | ' [^'\n]*+ '?
    )
    | (?P<comment> \# [^\n]*+ )
    | (?P<dot> \. )
    | (?P<open> [\[{] )
    | (?P<close> [\]}] )
    | (?P<end> [=,\n] )
    """,
    re.VERBOSE | re.DOTALL,
)


def problem(path: str | Path, line: int | None, message: str) -> ExperimentFileError:
    """The error for one problem of the file itself (its messages start with ``file:``)."""
    return ExperimentFileError([Problem(str(path), line, f"file: {message}")])


def unexpected(path: str | Path, error: Exception) -> ExperimentFileError:
    """The error for whatever else went wrong reading the file (a bug, a
    surprise of the file system); raise it ``from error`` for the log."""
    reason = f"{type(error).__name__}: {error}"
    if len(reason) > 200:
        reason = reason[:197] + "..."
    return problem(path, None, f"could not be read: {reason}")


def read_bounded(path: str | Path) -> bytes:
    """The bytes of the experiment file ``path``, within the rules above.

    A symlink is followed only to a file inside the folder of ``path``;
    anything but a regular file (a FIFO would block, a device never ends)
    is refused after opening, so a file swapped meanwhile cannot slip by;
    at most ``MAX_FILE_BYTES + 1`` bytes are ever read.
    """
    real = os.path.realpath(path)
    folder = os.path.realpath(Path(path).parent)
    if not Path(real).is_relative_to(folder):
        raise problem(path, None, f"symlink to {real} points outside the folder")
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise problem(path, None, f"cannot read: {error.strerror}") from None
    with os.fdopen(fd, "rb") as stream:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise problem(path, None, "not a regular file")
        size = status.st_size
        data = b"" if size > MAX_FILE_BYTES else stream.read(MAX_FILE_BYTES + 1)
    if size > MAX_FILE_BYTES or len(data) > MAX_FILE_BYTES:  # or it grew while read
        shown = max(size, len(data))
        raise problem(path, None, f"too large ({shown} bytes, limit {MAX_FILE_BYTES} bytes)")
    return data


def decode(data: bytes, path: str | Path) -> str:
    """``data`` as UTF-8 text (a byte order mark is dropped); a bad byte is
    reported with its line."""
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        byte = data[error.start]
        raise problem(path, line, f"not UTF-8 text (byte 0x{byte:02x})") from None


def check_text_nesting(text: str, path: str | Path) -> None:
    """Refuse TOML text nesting deeper than :data:`MAX_NESTING` before it is
    parsed: open brackets and braces, plus the dots of the dotted key being
    read (``a.b.c = 1`` nests three tables). A dot in a number
    (``x = 1.5``) counts once too, which costs nothing at this limit."""
    depth = dots = 0
    for token in _TOKENS.finditer(text):
        kind = token.lastgroup
        if kind == "open":
            depth += 1
            dots = 0
        elif kind == "close":
            depth = max(depth - 1, 0)
            dots = 0
        elif kind == "dot":
            dots += 1
        elif kind == "end":
            dots = 0
        if depth + dots > MAX_NESTING:
            line = text.count("\n", 0, token.start()) + 1
            raise problem(path, line, too_deep())


def nesting_path(data: dict[str, Any]) -> tuple[str | int, ...] | None:
    """Where parsed ``data`` first nests deeper than :data:`MAX_NESTING`
    (the path to it, e.g. ``("a", "b", 0, ...)``), else ``None``. Iterative:
    the point is to never recurse on data of unknown depth."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), data)]
    while stack:
        where, value = stack.pop()
        if len(where) > MAX_NESTING:
            return where
        if isinstance(value, dict):
            stack.extend(((*where, key), item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend(((*where, index), item) for index, item in enumerate(value))
    return None


def too_deep() -> str:
    return f"nested too deeply (more than {MAX_NESTING} levels of arrays, tables and dotted keys)"
