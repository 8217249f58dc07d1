"""Pages for people: the dashboard and each experiment's results.

A route reads the results document (:mod:`abconv.results`), the same one
``/api/experiments/KEY/results`` answers, and hands it to a template with
the plain words (:mod:`abconv.web.verdict`) and the charts' geometry
(:mod:`abconv.web.charts`). ``soft_to_hard``, ``bounce``, ``timeline`` and
``progress`` are drawn when the document has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, render_template, request

from abconv.errors import AbconvError
from abconv.experiments import Experiment, ExperimentRegistry, phases
from abconv.experiments.layers import SUM_TOLERANCE, Layer
from abconv.results.excluded import REASONS
from abconv.web import charts, verdict
from abconv.web.api import results_of, services
from abconv.web.auth import admin_required

bp = Blueprint("pages", __name__)
SAFE_LINK_STARTS = ("https://", "http://", "/")


@dataclass(frozen=True)
class LayerPart:
    """A slice of a layer's visitors on the results page: an experiment's
    share (``key`` None: the visitors in none of them)."""

    key: str | None
    share: float
    shown: bool  # the experiment whose page this is


@dataclass(frozen=True)
class Row:
    """One experiment on the dashboard; ``problem`` when its results cannot be read."""

    experiment: Experiment
    visitors: int
    days_running: int | None
    leader: verdict.Leader | None
    verdict: verdict.Verdict | None
    problem: str | None


@bp.get("/")
@admin_required
def dashboard() -> str:
    registry = services().experiments
    rows = [_row(experiment) for experiment in registry.all().values()]
    return render_template("pages/dashboard.html", rows=rows, broken=broken_files(registry))


def _row(experiment: Experiment) -> Row:
    try:
        document = results_of(experiment.key)
    except AbconvError as error:
        return Row(experiment, 0, None, None, None, error.message)
    view = verdict.default_view(experiment.analysis.method)
    progress = document.get("progress") or {}
    goal = verdict.primary_goal(document)
    return Row(
        experiment,
        sum(v["visitors"] for v in goal["variants"]),
        progress.get("days_running"),
        verdict.leader(goal, view, experiment.analysis.alpha),
        verdict.verdict(document, experiment.analysis, view, progress.get("days_left")),
        None,
    )


@bp.get("/experiments/<key>")
@admin_required
def results(key: str) -> str:
    experiment = services().experiment(key)
    document = results_of(key, request.args.get("phase"))
    view = verdict.VIEWS.get(request.args.get("view", ""))
    if view is None:
        view = verdict.default_view(experiment.analysis.method)
    progress = document.get("progress")
    layer = services().experiments.layer(experiment.layer) if experiment.layer else None
    goals = sorted(document["goals"], key=lambda g: (g["kind"] != "hard", not g["primary"]))
    return render_template(
        "pages/results.html",
        experiment=experiment,
        file=Path(experiment.path).name,
        document=document,
        view=view,
        verdict=verdict.verdict(
            document, experiment.analysis, view, (progress or {}).get("days_left")
        ),
        method=verdict.method_words(experiment.analysis),
        warnings=verdict.soft_over_hard(document),
        progress=progress,
        many_days=verdict.MANY_DAYS,
        goals=[
            (goal, charts.forest(goal["variants"]), charts.densities(goal["variants"]))
            for goal in goals
        ],  # fmt: skip
        timeline=_timeline(document),
        phases=[(p, phases.summary(p["definition"])) for p in document["phases"]],
        funnels=[charts.funnel(pair) for pair in document.get("soft_to_hard") or []],
        bounce=(bounce := document.get("bounce")),
        bounce_sentences=verdict.bounce_sentences(bounce, view, experiment.analysis.alpha),
        variants=[(v, safe_link(v.url)) for v in experiment.variants],
        excluded=[
            (reason, requests, REASONS[reason])
            for reason, requests in (document.get("excluded") or {}).items()
        ],
        layer=layer,
        layer_parts=layer and layer_parts(layer, key),
    )


def layer_parts(layer: Layer, shown: str) -> list[LayerPart]:
    """How ``layer``'s visitors are split, in slot order, with the free rest
    last; an experiment refused a share (its file disagrees) gets 0."""
    ranges = {share.experiment: share.end - share.start for share in layer.shares}
    parts = [LayerPart(key, ranges.get(key, 0.0), key == shown) for key in layer.members]
    free = 1.0 - sum(ranges.values())
    if free > SUM_TOLERANCE:
        parts.append(LayerPart(None, free, False))
    return parts


def _timeline(document: dict[str, Any]) -> charts.Timeline | None:
    if not document.get("timeline"):
        return None
    goal = next(
        (g for g in document["goals"] if g["key"] == document["timeline"].get("goal")),
        verdict.primary_goal(document),
    )
    return charts.timeline(document["timeline"], goal["variants"])


def safe_link(url: str | None) -> str | None:
    """``url`` when a link to it can only open a page (no ``javascript:``), else ``None``."""
    if url and url.startswith(SAFE_LINK_STARTS) and not url.startswith("//"):
        return url
    return None


@bp.app_template_filter("percent")
def _percent(value: float | None, signed: bool = False, digits: int = 1) -> str:
    return verdict.percent(value, signed, digits)


@bp.app_template_filter("interval")
def _interval(pair: list[float | None] | None, signed: bool = False) -> str:
    return verdict.interval(pair, signed)


@bp.app_template_filter("amount")
def _amount(value: float | None, digits: int = 2, signed: bool = False) -> str:
    return verdict.amount(value, digits, signed)


@bp.app_template_filter("amount_interval")
def _amount_interval(pair: list[float | None] | None, digits: int = 2) -> str:
    return verdict.amount_interval(pair, digits)


@bp.app_template_filter("chance")
def _chance(value: float | None) -> str:
    return verdict.chance(value)


@bp.app_template_filter("p_value")
def _p_value(value: float | None) -> str:
    return verdict.p_value(value)


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
