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

from abconv.experiments.model import Experiment, ExperimentFileError, Problem
from abconv.experiments.rules import Checker
from abconv.experiments.toml_lines import KeyLines

_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")


def load_experiment_file(path: str | Path) -> Experiment:
    """Read one experiment file; raise :class:`ExperimentFileError` listing
    every problem it has (unreadable, not TOML, or breaking a rule)."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as error:
        problem = Problem(str(path), None, f"cannot read: {error.strerror}")
        raise ExperimentFileError([problem]) from None
    except UnicodeDecodeError:
        raise ExperimentFileError([Problem(str(path), None, "not UTF-8 text")]) from None
    return parse_experiment(text, path)


def parse_experiment(text: str, path: str | Path) -> Experiment:
    """Validate the TOML ``text`` of the file ``path`` (whose name must match
    the key); raise :class:`ExperimentFileError` listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ExperimentFileError([_syntax_problem(str(path), text, error)]) from None
    checker = Checker(str(path), KeyLines(text))
    experiment = checker.experiment(data, Path(path).stem)
    if experiment is None:
        # In file order; problems of the whole file (no line) first.
        raise ExperimentFileError(sorted(checker.problems, key=lambda p: p.line or 0))
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
    valid experiments and the problems of all the others."""
    try:
        names = sorted(experiment_file_signatures(directory))
    except OSError as error:
        reason = "not found" if isinstance(error, FileNotFoundError) else error.strerror
        return [], [Problem(str(directory), None, f"experiments folder: {reason}")]
    experiments: list[Experiment] = []
    problems: list[Problem] = []
    for name in names:
        try:
            experiments.append(load_experiment_file(Path(directory) / name))
        except ExperimentFileError as error:
            problems.extend(error.problems)
    return experiments, problems


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
