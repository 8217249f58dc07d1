"""Pages for people: the dashboard."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, render_template

from abconv.experiments import ExperimentRegistry
from abconv.web.api import services
from abconv.web.auth import admin_required

bp = Blueprint("pages", __name__)


@bp.get("/")
@admin_required
def dashboard() -> str:
    store, registry = services().store, services().experiments
    rows = [
        (experiment, store.visitors_by_variant(experiment.key))
        for experiment in registry.all().values()
    ]
    return render_template("pages/dashboard.html", rows=rows, broken=broken_files(registry))


def broken_files(registry: ExperimentRegistry) -> list[tuple[str, str, list[str]]]:
    """Each file that failed to load: its name, what visitors get meanwhile,
    and its problems as ``file:line: message`` (names only: the server's
    folders are nobody's business)."""
    served = {Path(experiment.path).name for experiment in registry.all().values()}
    files: dict[str, list[str]] = {}
    for problem in registry.problems():
        name = Path(problem.path).name
        where = name if problem.line is None else f"{name}:{problem.line}"
        files.setdefault(name, []).append(f"{where}: {problem.message}")
    return [(name, _fate(registry, name, served), lines) for name, lines in files.items()]


def _fate(registry: ExperimentRegistry, name: str, served: set[str]) -> str:
    if name == registry.directory.name and name not in served:
        return "No experiment runs until the folder can be read."
    if name in served:
        return "Visitors still get the last version of this experiment that loaded."
    return "Not served: this file has never loaded without problems."
