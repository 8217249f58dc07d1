"""Mutual-exclusion layers: which share of a layer each experiment owns (pure).

Experiments that name the same ``layer`` split one hash of the visitor (see
:func:`abconv.assignment.in_layer_share`): each owns the range
``[start, start + traffic)`` of ``[0, 1)``, and the ranges are laid end to
end in ``layer_slot`` order (ties, which are errors, by key). A new
experiment given the next free slot therefore takes room after every
existing range and moves nobody; the service adds the rule that a visitor
with a stored exposure in one experiment of a layer is never enrolled in
another (README, "Layers").

Every experiment of a layer keeps its range whatever its status (a paused,
draft or concluded experiment's share is reserved, not handed to the
others), so pausing or resuming one never shifts another's range. An
experiment whose range would end past 1, or whose slot another experiment
already holds, is a problem of its file: it stays in the layer (its range
still counts for the later slots, so fixing it moves nobody) but admits no
new visitor until the files agree again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from abconv.experiments.model import Experiment, Problem

# Shares written as decimals (0.7 + 0.2 + 0.1) may sum to a hair over 1.
SUM_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Share:
    """The range ``[start, end)`` of a layer's hash that admits ``experiment``."""

    experiment: str
    start: float
    end: float


@dataclass(frozen=True)
class Layer:
    """The experiments of one layer and the shares of those that admit visitors.

    ``members`` are all its experiments in slot order, whatever their status
    and even when refused a share; ``shares`` only those with a valid range.
    """

    name: str
    members: tuple[str, ...] = ()
    shares: tuple[Share, ...] = ()

    @property
    def salt(self) -> str:
        """The salt of the layer's hash: the layer's name, so renaming a layer
        draws a new split; distinct from every experiment's own salts
        (``KEY:traffic``, ``KEY:variant``)."""
        return f"{self.name}:layer"

    def share(self, experiment: str) -> Share | None:
        """The range admitting ``experiment``; ``None`` when it has none."""
        return next((share for share in self.shares if share.experiment == experiment), None)


def allocate_layers(experiments: Iterable[Experiment]) -> tuple[dict[str, Layer], list[Problem]]:
    """Every layer named by ``experiments``, by name, and the problems of
    layers whose files disagree (shares past 1, a slot taken twice), each on
    the ``layer`` line of the file it refuses."""
    grouped: dict[str, list[Experiment]] = {}
    for experiment in experiments:
        if experiment.layer is not None:
            grouped.setdefault(experiment.layer, []).append(experiment)
    layers: dict[str, Layer] = {}
    problems: list[Problem] = []
    for name, members in sorted(grouped.items()):
        layer, found = _allocate(name, sorted(members, key=lambda e: (e.layer_slot or 0, e.key)))
        layers[name] = layer
        problems.extend(found)
    return layers, sorted(problems, key=lambda p: (p.path, p.line or 0))


def _allocate(name: str, members: list[Experiment]) -> tuple[Layer, list[Problem]]:
    shares: list[Share] = []
    problems: list[Problem] = []
    holders: dict[int | None, Experiment] = {}
    # Each range ends exactly where the next starts: no visitor is in two.
    bounds = [math.fsum(e.traffic for e in members[:index]) for index in range(len(members) + 1)]
    total = bounds[-1]
    listing = ", ".join(f'"{e.key}" {e.traffic:g} (slot {e.layer_slot})' for e in members)
    for index, experiment in enumerate(members):
        start, end = bounds[index], bounds[index + 1]
        holder = holders.setdefault(experiment.layer_slot, experiment)
        if holder is not experiment:
            problems.append(
                _problem(
                    experiment,
                    f'layer "{name}": layer_slot {experiment.layer_slot} is also '
                    f'"{holder.key}"\'s; "{experiment.key}" enrols no new visitor '
                    "until its slot is its own",
                )
            )
        elif end > 1 + SUM_TOLERANCE:
            problems.append(
                _problem(
                    experiment,
                    f'layer "{name}": shares sum to {total:g}, more than 1 ({listing}); '
                    f'"{experiment.key}" would end at {end:g}, so it enrols no new visitor '
                    "until the shares fit",
                )
            )
        else:
            shares.append(Share(experiment.key, start, min(end, 1.0)))
    return Layer(name, tuple(e.key for e in members), tuple(shares)), problems


def _problem(experiment: Experiment, message: str) -> Problem:
    return Problem(experiment.path, experiment.layer_line, message)
