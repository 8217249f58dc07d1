"""Read experiment files (``experiments/*.toml``) and folders; no Flask, no database.

A file's problems are reported all at once, each with the file and, as far
as :mod:`abconv.experiments.toml_lines` can tell, the line; the rules themselves live in
:mod:`abconv.experiments.rules`.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from abconv.experiments import limits
from abconv.experiments.layers import allocate_layers
from abconv.experiments.model import Experiment, ExperimentFileError, Problem
from abconv.experiments.rules import Checker
from abconv.experiments.toml_lines import KeyLines

# A file with thousands of mistakes is listed up to here (the log, the
# dashboard and the terminal stay readable); fixing these shows the rest.
MAX_PROBLEMS = 20

_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")


def load_experiment_file(path: str | Path) -> Experiment:
    """Read one experiment file; raise :class:`ExperimentFileError` listing
    every problem it has (unreadable, too large or deep, not TOML, or
    breaking a rule), and nothing else.

    Whatever else goes wrong while reading it (a bug, a surprise of the
    file system) becomes a ``file: could not be read`` problem too, with the
    original exception as ``__cause__`` for the log: one file's failure must
    never reach another experiment or a request.
    """
    try:
        return parse_experiment(limits.decode(limits.read_bounded(path), path), path)
    except ExperimentFileError:
        raise
    except Exception as error:
        raise limits.unexpected(path, error) from error


def parse_experiment(text: str, path: str | Path) -> Experiment:
    """Validate the TOML ``text`` of the file ``path`` (whose name must match
    the key); raise :class:`ExperimentFileError` listing every problem."""
    limits.check_text_nesting(text, path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ExperimentFileError([_syntax_problem(str(path), text, error)]) from None
    except RecursionError:  # the text scan should have caught it; never let it out
        raise limits.problem(path, None, limits.too_deep()) from None
    lines = KeyLines(text)
    too_deep = limits.nesting_path(data)
    if too_deep is not None:
        raise limits.problem(path, lines.line_of(too_deep), limits.too_deep())
    checker = Checker(str(path), lines)
    experiment = checker.experiment(data, Path(path).stem)
    if experiment is None:
        # In file order; problems of the whole file (no line) first.
        found = sorted(checker.problems, key=lambda p: p.line or 0)
        if len(found) > MAX_PROBLEMS:
            more = len(found) - MAX_PROBLEMS
            found = [*found[:MAX_PROBLEMS], Problem(str(path), None, f"... and {more} more")]
        raise ExperimentFileError(found)
    return experiment


def experiment_file_signatures(directory: str | Path) -> dict[str, tuple[int, int]]:
    """``{file name: (mtime_ns, size)}`` of the experiment files in ``directory``.

    Experiment files are regular files (or links to them) named ``*.toml``,
    not hidden (editors' ``.#x.toml`` lock files). Raises :class:`OSError`
    when the folder cannot be listed.
    """
    signatures = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(".toml"):
                continue
            try:
                if entry.is_file():
                    stat = entry.stat()
                    signatures[entry.name] = (stat.st_mtime_ns, stat.st_size)
            except OSError:  # removed while we looked: it is simply not there
                continue
    return signatures


def check_directory(directory: str | Path) -> tuple[list[Experiment], list[Problem]]:
    """Load every experiment file of ``directory`` in name order; return the
    valid experiments and the problems of all the others, then those of
    layers whose files disagree (those experiments are returned too: a
    server serves them, without a share of their layer)."""
    try:
        names = sorted(experiment_file_signatures(directory))
    except OSError as error:
        reason = "not found" if isinstance(error, FileNotFoundError) else error.strerror
        return [], [Problem(str(directory), None, f"experiments folder: {reason}")]
    experiments: list[Experiment] = []
    problems: list[Problem] = []
    for name in names:
        path = Path(directory) / name
        try:
            experiments.append(load_experiment_file(path))
        except ExperimentFileError as error:
            if os.path.lexists(path):  # else removed since listed: not there
                problems.extend(error.problems)
    return experiments, problems + allocate_layers(experiments)[1]


def _syntax_problem(path: str, text: str, error: tomllib.TOMLDecodeError) -> Problem:
    message = str(error)
    position = _TOML_POSITION.search(message)
    if position is None:
        return Problem(path, None, f"not valid TOML: {message}")
    reason = message[: position.start()]
    if position.group(1) is None:  # at end of document
        return Problem(path, max(len(text.splitlines()), 1), f"not valid TOML: {reason}")
    line, column = int(position.group(1)), position.group(2)
    return Problem(path, line, f"not valid TOML: {reason} (column {column})")
