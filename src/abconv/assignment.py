"""Which variant a visitor sees: hashing, traffic, weights, bots (pure).

Two independent hashes per (experiment, visitor): one, salted ``traffic``,
decides whether the visitor enters at all; the other, salted ``variant``,
picks the variant by weight. Changing ``traffic`` therefore never moves an
included visitor to another variant. Hashes are SHA-256 based, so every
process on every host agrees (never Python's ``hash()``).

An experiment in a layer (README, "Layers") takes part through a third hash,
salted by the layer (:attr:`Layer.salt`), shared by the layer's experiments:
the visitor is in the one experiment whose share holds that number, or in
none. Its ``traffic`` is its share of the layer, so the ``traffic`` hash is
not used for it; the variant hash is, as for every experiment.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from abconv.experiments import Experiment, Layer, Variant
from abconv.vocabulary import Status

# Crawlers and monitors only: server-side sites call the API with curl or an
# HTTP library on behalf of real visitors, so those are not bots.
_BOT_USER_AGENT = re.compile(
    r"bot\b|bot/|crawler|spider|slurp|bingpreview|facebookexternalhit|embedly|"
    r"headlesschrome|lighthouse|pingdom|uptimerobot|statuscake|prerender",
    re.IGNORECASE,
)


class Reason(StrEnum):
    """Why a visitor got the variant they got; only ``ASSIGNED`` is recorded."""

    ASSIGNED = "assigned"
    EXCLUDED = "excluded"  # outside ``traffic``: control content, not recorded
    FORCED = "forced"
    BOT = "bot"
    NOT_RUNNING = "not_running"  # draft or paused: control content
    CONCLUDED = "concluded"  # everyone gets the winner
    # In a layer whose hash gives the visitor to another experiment (or none),
    # or enrolled in another experiment of the layer: control, not recorded.
    LAYER = "layer"


@dataclass(frozen=True)
class Assignment:
    variant: Variant
    reason: Reason

    @property
    def record(self) -> bool:
        return self.reason is Reason.ASSIGNED


def unit_hash(salt: str, visitor: str) -> float:
    """A uniform number in [0, 1) from ``salt`` and ``visitor``, stable everywhere."""
    digest = hashlib.sha256(f"{salt}\x1f{visitor}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def in_traffic(experiment_key: str, visitor: str, traffic: float) -> bool:
    return unit_hash(f"{experiment_key}:traffic", visitor) < traffic


def in_layer_share(layer: Layer, experiment_key: str, visitor: str) -> bool:
    """Whether the layer's hash puts ``visitor`` in ``experiment_key``'s share.

    The shares of a layer do not overlap, so this holds for at most one of
    its experiments."""
    share = layer.share(experiment_key)
    return share is not None and share.start <= unit_hash(layer.salt, visitor) < share.end


def outside_layer(experiment: Experiment) -> Assignment:
    """What a visitor the layer keeps out of ``experiment`` gets: the control."""
    return Assignment(_variant(experiment, experiment.control), Reason.LAYER)


def pick_by_weight(experiment_key: str, visitor: str, variants: Sequence[Variant]) -> Variant:
    """The variant whose cumulative-weight slot holds the visitor's variant hash."""
    if not variants:
        raise ValueError("an experiment needs at least one variant")
    point = unit_hash(f"{experiment_key}:variant", visitor) * sum(v.weight for v in variants)
    cumulative = 0.0
    for variant in variants:
        cumulative += variant.weight
        if point < cumulative:
            return variant
    return variants[-1]  # floating-point edge: point == total


def is_bot(user_agent: str | None) -> bool:
    return bool(user_agent) and _BOT_USER_AGENT.search(user_agent or "") is not None


def assign(
    experiment: Experiment,
    visitor: str,
    *,
    force: str | None = None,
    bot: bool = False,
    layer: Layer | None = None,
) -> Assignment:
    """Decide a visitor's variant without looking at storage.

    Stickiness (a recorded exposure wins over this decision) is the caller's
    job, since only the caller knows what was recorded. ``force`` must name a
    variant of the experiment (``ValueError`` otherwise). ``layer`` is the
    experiment's layer, required when it has one (``ValueError`` otherwise).
    """
    control = _variant(experiment, experiment.control)
    if force is not None:
        return Assignment(_variant(experiment, force), Reason.FORCED)
    if experiment.status is Status.CONCLUDED and experiment.winner:
        return Assignment(_variant(experiment, experiment.winner), Reason.CONCLUDED)
    if experiment.status is not Status.RUNNING:
        return Assignment(control, Reason.NOT_RUNNING)
    if experiment.layer is not None:
        if layer is None or layer.name != experiment.layer:
            raise ValueError(f"experiment {experiment.key!r} needs its layer {experiment.layer!r}")
        if not in_layer_share(layer, experiment.key, visitor):
            return Assignment(control, Reason.LAYER)
    elif not in_traffic(experiment.key, visitor, experiment.traffic):
        return Assignment(control, Reason.EXCLUDED)
    chosen = pick_by_weight(experiment.key, visitor, experiment.variants)
    return Assignment(chosen, Reason.BOT if bot else Reason.ASSIGNED)


def _variant(experiment: Experiment, key: str) -> Variant:
    variant = experiment.variant(key)
    if variant is None:
        raise ValueError(f"experiment {experiment.key!r} has no variant {key!r}")
    return variant
