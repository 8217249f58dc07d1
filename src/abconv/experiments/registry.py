"""The registry: the current experiments of a folder, reloaded as files change."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from abconv.experiments import files as experiment_files
from abconv.experiments import limits
from abconv.experiments.layers import Layer, allocate_layers
from abconv.experiments.model import Experiment, ExperimentFileError, Problem
from abconv.vocabulary import Status

Signature = tuple[int, int]  # (st_mtime_ns, st_size)

# A file modified this recently may change again within the file system's
# timestamp granularity without its signature changing (Linux stamps files
# from a clock that ticks every few milliseconds; some file systems keep
# whole seconds), so such a file is read again on the next scan.
RACY_SECONDS = 2.0


@dataclass(frozen=True)
class _FileState:
    """What the registry knows of one file."""

    signature: Signature | None  # None: read it again on the next scan
    experiment: Experiment | None  # the last good version, if any
    problems: tuple[Problem, ...]  # of the current content; () when it is good


@dataclass(frozen=True)
class _Snapshot:
    """What readers see, published whole by each scan."""

    experiments: dict[str, Experiment]  # by key
    running: tuple[Experiment, ...]  # sorted by key
    problems: tuple[Problem, ...]  # of the folder, then of each file by name, then of layers
    layers: dict[str, Layer]  # by name


class ExperimentRegistry:
    """Holds the current experiments of a folder and notices added, changed
    and removed files.

    Meant for the hot path of every request: :meth:`all`, :meth:`get` and
    :meth:`running` look at the folder at most once per ``check_interval``
    seconds (one ``os.scandir`` plus a ``stat`` per file) and read again only
    files whose modification time or size changed. A file that becomes
    invalid keeps its last good version in service; a file invalid from the
    start is not served. Problems, added, changed and removed files are
    logged once per change, and :meth:`problems` lists the current ones (for
    the dashboard). Reading one file can fail in any way, even by a bug:
    that file's failure stays its own problem and never reaches another
    experiment or the caller. ``clock`` (seconds, monotonic) is injectable for
    tests; the file system's own clock decides :data:`RACY_SECONDS`.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        check_interval: float = 1.0,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory)
        self.check_interval = check_interval
        self.logger = logger or logging.getLogger(__name__)
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._files: dict[str, _FileState] = {}
        self._folder_problem: Problem | None = None
        # Replaced as a whole on each refresh, never changed in place, so
        # readers need no lock.
        self._snapshot = _Snapshot({}, (), (), {})

    def all(self) -> dict[str, Experiment]:
        """Every valid experiment by key (a copy; refreshed when due)."""
        return dict(self._current().experiments)

    def get(self, key: str) -> Experiment | None:
        """The experiment ``key``, or ``None`` when no valid file defines it."""
        return self._current().experiments.get(key)

    def running(self) -> list[Experiment]:
        """The experiments with ``status = "running"``, sorted by key."""
        return list(self._current().running)

    def layer(self, name: str) -> Layer:
        """The layer ``name`` as the served experiments share it (empty when
        none names it: then it admits nobody)."""
        return self._current().layers.get(name) or Layer(name)

    def problems(self) -> list[Problem]:
        """The problems of the files as they are now, by file name; a file
        listed here keeps its last good version in service, if it had one
        (an experiment whose ``path`` is the problem's). A folder that
        cannot be read is one problem too."""
        return list(self._current().problems)

    def refresh(self) -> None:
        """Look at the folder now, whatever the check interval says."""
        with self._lock:
            self._scan()

    def _current(self) -> _Snapshot:
        checked_at = self._checked_at
        if checked_at is None:
            with self._lock:  # the first look waits for the folder to be read
                if self._checked_at is None:
                    self._scan()
        elif self._clock() - checked_at >= self.check_interval:
            # Another thread already scanning? Serve what we have meanwhile.
            if self._lock.acquire(blocking=False):
                try:
                    if self._checked_at == checked_at:
                        self._scan()
                finally:
                    self._lock.release()
        return self._snapshot

    def _scan(self) -> None:
        started = self._clock()
        try:
            signatures = experiment_files.experiment_file_signatures(self.directory)
        except OSError as error:
            if self._folder_problem is None:
                self.logger.warning(
                    "experiments folder %s cannot be read (%s): serving no experiments",
                    self.directory,
                    error.strerror,
                )
            reason = "not found" if isinstance(error, FileNotFoundError) else error.strerror
            self._folder_problem = Problem(
                str(self.directory), None, f"experiments folder: {reason}"
            )
            self._files = {}
            self._publish(started)
            return
        self._folder_problem = None
        files = {}
        racy_before = time.time_ns() - int(RACY_SECONDS * 1e9)
        for name, signature in signatures.items():
            state = self._files.get(name)
            if state is None or state.signature != signature:
                state = self._read(name, state)
                if state is None:  # removed since listed
                    continue
            if signature[0] >= racy_before:
                state = _FileState(None, state.experiment, state.problems)
            else:
                state = _FileState(signature, state.experiment, state.problems)
            files[name] = state
        for name in self._files.keys() - files.keys():
            self.logger.info("experiment file %s removed", self.directory / name)
        self._files = files
        self._publish(started)

    def _read(self, name: str, old: _FileState | None) -> _FileState | None:
        """Load ``name`` again and log what changed; ``None`` when the file
        is gone. Never raises: whatever happens is this file's problem."""
        path = self.directory / name
        last_good = old.experiment if old is not None else None
        try:
            return self._load(path, old, last_good)
        except ExperimentFileError as error:
            if not os.path.lexists(path):
                return None
            problems = tuple(error.problems)
            cause = error.__cause__  # set for the unexpected only: log its traceback
        except Exception as error:  # e.g. while comparing or logging: still this file's
            problems = tuple(limits.unexpected(path, error).problems)
            cause = error
        if old is None or problems != old.problems:
            fate = "keeping its last good version" if last_good else "not served"
            listing = "\n".join(f"  {problem}" for problem in problems)
            self.logger.warning(
                "experiment file %s is invalid, %s:\n%s", path, fate, listing, exc_info=cause
            )
        return _FileState(None, last_good, problems)

    def _load(self, path: Path, old: _FileState | None, last_good: Experiment | None) -> _FileState:
        """Load ``path``, valid or not; log a loaded, reloaded or mended file.

        A file read again with the same content keeps serving the same
        :class:`Experiment` object: a new object means a changed definition,
        which the service checks against the stored phases (README, "Phases")."""
        experiment = experiment_files.load_experiment_file(path)
        if experiment != last_good:
            verb = "reloaded" if last_good else "loaded"
            self.logger.info("experiment %s %s from %s", experiment.key, verb, path)
        else:
            if old is not None and old.problems:
                self.logger.info("experiment file %s is valid again", path)
            experiment = last_good
        return _FileState(None, experiment, ())

    def _publish(self, started: float) -> None:
        """Serve the files' experiments; only then count the scan as done,
        so that no reader takes the empty start for the folder's content."""
        experiments = {
            state.experiment.key: state.experiment
            for state in self._files.values()
            if state.experiment is not None
        }
        running = sorted(
            (e for e in experiments.values() if e.status is Status.RUNNING), key=lambda e: e.key
        )
        problems = [p for _, state in sorted(self._files.items()) for p in state.problems]
        if self._folder_problem is not None:
            problems.insert(0, self._folder_problem)
        layers, layer_problems = allocate_layers(experiments.values())
        for problem in set(layer_problems) - set(self._snapshot.problems):
            self.logger.warning("experiment file %s", problem)
        problems.extend(layer_problems)
        self._snapshot = _Snapshot(experiments, tuple(running), tuple(problems), layers)
        self._checked_at = started
