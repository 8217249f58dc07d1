"""Phases: what in a file starts one, and an experiment as a past phase ran it.

A phase is a stretch of a running experiment's life with one *definition*:
its traffic and its variants with their weights (README, "Phases"). Only a
change of those starts a new phase; copy, goals and analysis settings do
not. Pure: the store keeps the phases, the service decides when to ask.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from abconv.experiments.model import Experiment, Variant

Definition = dict[str, Any]  # {"traffic": t, "variants": [{"key": k, "weight": w}, ...]}


def definition(experiment: Experiment) -> Definition:
    """The part of ``experiment`` a phase is defined by, as JSON-able data."""
    return {
        "traffic": experiment.traffic,
        "variants": [{"key": v.key, "weight": v.weight} for v in experiment.variants],
    }


def changes(old: Definition, new: Definition) -> list[str]:
    """What differs from ``old`` to ``new``, in words ("weights 50/50 -> 70/30");
    empty when a phase would not change."""
    said = []
    old_keys = [v["key"] for v in old["variants"]]
    new_keys = [v["key"] for v in new["variants"]]
    if old_keys != new_keys:
        said.append(f"variants {', '.join(old_keys)} -> {', '.join(new_keys)}")
    elif _shares(old) != _shares(new):
        said.append(f"weights {_shares(old)} -> {_shares(new)}")
    if float(old["traffic"]) != float(new["traffic"]):
        said.append(f"traffic {old['traffic']:g} -> {new['traffic']:g}")
    return said


def _shares(phase: Definition) -> str:
    """The weights as percentages of their sum, "50/50"."""
    weights = [float(v["weight"]) for v in phase["variants"]]
    total = sum(weights)
    return "/".join(f"{round(100 * w / total, 1):g}" for w in weights)


def as_in_phase(experiment: Experiment, phase: Definition) -> Experiment:
    """``experiment`` with the traffic, variants and weights of ``phase``, so
    that a past phase's results (and its SRM check) use what it ran with.
    A variant dropped since keeps its key and weight and has no content."""
    variants = tuple(
        replace(current, weight=float(v["weight"]))
        if (current := experiment.variant(v["key"])) is not None
        else Variant(v["key"], float(v["weight"]), None, None, None)
        for v in phase["variants"]
    )
    keys = {v.key for v in variants}
    control = experiment.control if experiment.control in keys else variants[0].key
    return replace(
        experiment,
        traffic=float(phase["traffic"]),
        variants=variants,
        control=control,
        winner=experiment.winner if experiment.winner in keys else None,
        fallback=experiment.fallback if experiment.fallback in keys else None,
    )


def edit_warning(experiment: Experiment, latest: int, ran_with: Definition) -> str | None:
    """What ``abconv check`` says of a file whose definition differs from the
    latest stored phase (number ``latest``, ``ran_with``); None when it does not."""
    said = changes(ran_with, definition(experiment))
    if not said:
        return None
    name = experiment.path.rsplit("/", 1)[-1]
    return f"{name}: {', '.join(said)} starts phase {latest + 1} when loaded"


def summary(phase: Definition | None) -> str:
    """A phase's definition in words: "trial 70 % · guide 30 % · traffic 100 %"."""
    if phase is None:
        return "as the file was before phases were recorded"
    shares = _shares(phase).split("/")
    arms = [f"{v['key']} {share} %" for v, share in zip(phase["variants"], shares, strict=True)]
    return " · ".join([*arms, f"traffic {round(100 * float(phase['traffic']), 1):g} %"])
