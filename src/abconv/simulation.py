"""``abconv simulate``: synthetic visitors sent through the real HTTP routes.

Each visitor is assigned by ``/api/assign`` and converts through
``/api/convert``, exactly as a site would, so what the simulation stores is
what real traffic would store. The routes are called in-process (a test
client of an app built from this environment, writing into its database)
or, with ``--url``, on a running server over HTTP, so that its results page
fills. The funnel is realistic enough to show the soft → hard insight: a
visitor who reached a soft goal is several times as likely to reach a hard
one.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from abconv.errors import AbconvError
from abconv.experiments import Experiment
from abconv.vocabulary import GoalKind, Status

USER_AGENT = "abconv-simulate"
# (method, path, query, JSON body) -> (status, JSON reply)
Call = Callable[[str, str, dict[str, str], dict[str, Any] | None], tuple[int, Any]]


@dataclass(frozen=True)
class TrafficModel:
    seed: int = 1
    base_rate: float = 0.05  # hard goals, control, visitors without a soft conversion
    lift: float = 0.2  # relative, each further variant over the one before (hard goals)
    soft_rate: float = 0.15
    soft_to_hard: float = 3.0  # a soft conversion multiplies the chance of a hard one
    mean_order_value: float = 80.0

    def hard_rate(self, variant_index: int, had_soft: bool) -> float:
        rate = self.base_rate * (1 + self.lift) ** variant_index
        return min(1.0, rate * (self.soft_to_hard if had_soft else 1.0))


@dataclass
class Tally:
    """What was sent, and what the server said it recorded."""

    visitors: int = 0
    enrolled: Counter[str] = field(default_factory=Counter)  # by variant
    events_sent: int = 0
    events_recorded: int = 0
    events_duplicate: int = 0  # already stored by an earlier run with this seed
    converted: Counter[tuple[str, str]] = field(default_factory=Counter)  # (variant, goal)


def simulate_traffic(
    experiment_key: str,
    visitors: int,
    model: TrafficModel,
    progress: Callable[[Iterable[int]], Iterable[int]] = lambda numbers: numbers,
) -> str:
    """Send ``visitors`` synthetic visitors in-process; return a summary for people."""
    from abconv import create_app

    app = create_app()
    app.config["ACCESS_LOG"] = False  # a line per synthetic request would drown the summary
    services = app.extensions["abconv"]
    try:
        experiment = _running(services.experiments.get(experiment_key), experiment_key)
        with app.test_client() as client:

            def call(method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
                reply = client.open(
                    path, method=method, query_string=query, json=body,
                    headers={"User-Agent": USER_AGENT},
                )  # fmt: skip
                return reply.status_code, reply.get_json(silent=True)

            tally = run(call, experiment, visitors, model, progress)
        where = "in-process, into the database of this environment"
    finally:
        services.store.dispose()
    return summary(experiment, tally, where)


def simulate_over_http(
    base_url: str,
    experiment_key: str,
    visitors: int,
    model: TrafficModel,
    password: str | None,
    progress: Callable[[Iterable[int]], Iterable[int]] = lambda numbers: numbers,
) -> str:
    """The same traffic sent to the server at ``base_url`` through its public API.

    The experiment's definition (its variants and goals) is read from the
    admin route ``/api/experiments/KEY``, hence ``password``.
    """
    base = base_url.rstrip("/")

    def call(method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
        if password:
            headers["Authorization"] = f"Bearer {password}"
        url = base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as error:
            try:
                return error.code, json.loads(error.read() or b"null")
            except ValueError:
                return error.code, None
        except (OSError, ValueError) as error:
            raise AbconvError("simulate_failed", f"{base} did not answer: {error}") from None

    status, definition = call("GET", f"/api/experiments/{experiment_key}", {}, None)
    _raise_for(status, definition)
    experiment = _running(_from_definition(definition), experiment_key)
    tally = run(call, experiment, visitors, model, progress)
    return summary(experiment, tally, f"over HTTP, to {base}")


def run(
    call: Call,
    experiment: Experiment,
    visitors: int,
    model: TrafficModel,
    progress: Callable[[Iterable[int]], Iterable[int]],
) -> Tally:
    rng = np.random.default_rng(model.seed)
    tally = Tally()
    for number in progress(range(visitors)):
        visitor = f"sim-{model.seed}-{number}"
        tally.visitors += 1
        status, reply = call(
            "GET", "/api/assign", {"visitor": visitor, "experiment": experiment.key}, None
        )
        _raise_for(status, reply)
        assignment = reply["assignments"][0]
        if not assignment["enrolled"]:  # outside the traffic share: the control, unrecorded
            continue
        variant = str(assignment["variant"])
        tally.enrolled[variant] += 1
        for event in _visit(experiment, variant, model, rng):
            # The event id makes a re-run with the same seed change nothing.
            body = {"visitor": visitor, "experiment": experiment.key,
                    "event_id": f"{visitor}-{event['goal']}", **event}  # fmt: skip
            status, reply = call("POST", "/api/convert", {}, body)
            _raise_for(status, reply)
            tally.events_sent += 1
            tally.events_recorded += bool(reply["recorded"]) and not reply["duplicate"]
            tally.events_duplicate += bool(reply["duplicate"])
            tally.converted[variant, event["goal"]] += 1
    return tally


def _visit(
    experiment: Experiment, variant: str, model: TrafficModel, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """The conversions one visitor makes: soft goals first, then hard ones."""
    index = [v.key for v in experiment.variants].index(variant)
    events: list[dict[str, Any]] = []
    had_soft = False
    for goal in (g for g in experiment.goals if g.kind is GoalKind.SOFT):
        if rng.random() < model.soft_rate:
            had_soft = True
            events.append({"goal": goal.key})
    for goal in (g for g in experiment.goals if g.kind is GoalKind.HARD):
        if rng.random() < model.hard_rate(index, had_soft):
            event: dict[str, Any] = {"goal": goal.key}
            if goal.value:
                event["value"] = round(float(rng.lognormal(np.log(model.mean_order_value), 0.5)), 2)
            events.append(event)
    return events


def _running(experiment: Experiment | None, key: str) -> Experiment:
    if experiment is None:
        raise AbconvError("unknown_experiment", f"no experiment {key!r}")
    if experiment.status is not Status.RUNNING:
        raise AbconvError(
            "not_running", f"{key!r} is {experiment.status}: only running ones record"
        )
    return experiment


def _from_definition(data: dict[str, Any]) -> Experiment:
    """The parts of ``GET /api/experiments/KEY`` a simulation needs, as an Experiment."""
    from abconv.analysis_settings import AnalysisSettings
    from abconv.experiments import Goal, Variant
    from abconv.vocabulary import ExperimentKind, Method

    settings = dict(data["analysis"])
    settings["method"] = Method(settings["method"])
    return Experiment(
        key=data["key"], name=data["name"], hypothesis=data["hypothesis"],
        status=Status(data["status"]), kind=ExperimentKind(data["kind"]),
        traffic=data["traffic"], control=data["control"], winner=data["winner"],
        variants=tuple(Variant(**v) for v in data["variants"]),
        goals=tuple(Goal(**{**g, "kind": GoalKind(g["kind"])}) for g in data["goals"]),
        analysis=AnalysisSettings(**settings), path=data["file"],
        engagement=bool(data.get("engagement", False)),
    )  # fmt: skip


def _raise_for(status: int, body: Any) -> None:
    if status != 200:
        error = (body or {}).get("error", {}) if isinstance(body, dict) else {}
        raise AbconvError(
            error.get("code", "simulate_failed"), error.get("message", f"HTTP status {status}")
        )


def summary(experiment: Experiment, tally: Tally, where: str) -> str:
    """Sent against recorded: every visitor sent, those the experiment took in
    (its ``traffic`` share), every conversion event and what the server stored."""
    took_part = sum(tally.enrolled.values())
    lines = [
        f"Simulated {tally.visitors} visitors of {experiment.key!r} ({where}):",
        f"  {took_part} took part (traffic {experiment.traffic:g}); "
        f"{tally.visitors - took_part} saw the control unrecorded",
        f"  {tally.events_sent} conversion events sent: {tally.events_recorded} recorded, "
        f"{tally.events_duplicate} already stored (same seed as an earlier run)",
    ]
    for variant in experiment.variants:
        n = tally.enrolled[variant.key]
        counts = [(goal.key, tally.converted[variant.key, goal.key]) for goal in experiment.goals]
        parts = [f"{goal} {x} ({x / n:.1%})" if n else f"{goal} 0" for goal, x in counts]
        lines.append(f"  {variant.key}: {n} visitors; " + ", ".join(parts))
    return "\n".join(lines)
