"""``abconv simulate``: synthetic visitors sent through the real HTTP routes.

Each visitor is assigned by ``/api/assign`` and converts through
``/api/convert``, exactly as a site would, so what the simulation stores is
what real traffic would store. The funnel is realistic enough to show the
soft → hard insight: a visitor who reached a soft goal is several times as
likely to reach a hard one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import Flask
from flask.testing import FlaskClient

from abconv.errors import AbconvError
from abconv.experiments import Experiment
from abconv.vocabulary import GoalKind, Status


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


def simulate_traffic(experiment_key: str, visitors: int, model: TrafficModel) -> str:
    """Send ``visitors`` synthetic visitors; return a short summary for people."""
    from abconv import create_app

    app = create_app()
    app.config["ACCESS_LOG"] = False  # a line per synthetic request would drown the summary
    try:
        return _run(app, experiment_key, visitors, model)
    finally:
        app.extensions["abconv"].store.dispose()


def _run(app: Flask, experiment_key: str, visitors: int, model: TrafficModel) -> str:
    experiment = app.extensions["abconv"].experiments.get(experiment_key)
    if experiment is None:
        raise AbconvError("unknown_experiment", f"no experiment {experiment_key!r}")
    if experiment.status is not Status.RUNNING:
        raise AbconvError(
            "not_running", f"{experiment_key!r} is {experiment.status}: only running ones record"
        )
    rng = np.random.default_rng(model.seed)
    seen: Counter[str] = Counter()
    converted: Counter[tuple[str, str]] = Counter()
    with app.test_client() as client:
        for number in range(visitors):
            visitor = f"sim-{model.seed}-{number}"
            variant = _assign(client, experiment, visitor)
            if variant is None:  # outside the experiment's traffic share
                continue
            seen[variant] += 1
            for event in _visit(experiment, variant, model, rng):
                # The event id makes a re-run with the same seed change nothing.
                event["event_id"] = f"{visitor}-{event['goal']}"
                _convert(client, visitor, experiment.key, event)
                converted[variant, event["goal"]] += 1
    return _summary(experiment, seen, converted)


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


def _assign(client: FlaskClient, experiment: Experiment, visitor: str) -> str | None:
    """The visitor's variant, or None when they are not in the experiment."""
    reply = client.get(
        "/api/assign",
        query_string={"visitor": visitor, "experiment": experiment.key},
        headers={"User-Agent": "abconv-simulate"},
    )
    _raise_for(reply.status_code, reply.get_json())
    assignment = reply.get_json()["assignments"][0]
    return str(assignment["variant"]) if assignment["enrolled"] else None


def _convert(client: FlaskClient, visitor: str, experiment: str, event: dict[str, Any]) -> None:
    reply = client.post(
        "/api/convert", json={"visitor": visitor, "experiment": experiment, **event}
    )
    _raise_for(reply.status_code, reply.get_json())


def _raise_for(status: int, body: Any) -> None:
    if status != 200:
        error = (body or {}).get("error", {})
        raise AbconvError(error.get("code", "simulate_failed"), error.get("message", str(status)))


def _summary(
    experiment: Experiment, seen: Counter[str], converted: Counter[tuple[str, str]]
) -> str:
    lines = [f"Simulated {sum(seen.values())} visitors of {experiment.key!r}:"]
    for variant in experiment.variants:
        n = seen[variant.key]
        counts = [(goal.key, converted[variant.key, goal.key]) for goal in experiment.goals]
        parts = [f"{goal} {x} ({x / n:.1%})" if n else f"{goal} 0" for goal, x in counts]
        lines.append(f"  {variant.key}: {n} visitors; " + ", ".join(parts))
    return "\n".join(lines)
