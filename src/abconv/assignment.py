"""Which variant a visitor sees: hashing, traffic, weights, bots (pure).

Two independent hashes per (experiment, visitor): one, salted ``traffic``,
decides whether the visitor enters at all; the other, salted ``variant``,
picks the variant by weight. Changing ``traffic`` therefore never moves an
included visitor to another variant. Hashes are SHA-256 based, so every
process on every host agrees (never Python's ``hash()``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from abconv.experiments import Experiment, Variant
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
) -> Assignment:
    """Decide a visitor's variant without looking at storage.

    Stickiness (a recorded exposure wins over this decision) is the caller's
    job, since only the caller knows what was recorded. ``force`` must name a
    variant of the experiment (``ValueError`` otherwise).
    """
    control = _variant(experiment, experiment.control)
    if force is not None:
        return Assignment(_variant(experiment, force), Reason.FORCED)
    if experiment.status is Status.CONCLUDED and experiment.winner:
        return Assignment(_variant(experiment, experiment.winner), Reason.CONCLUDED)
    if experiment.status is not Status.RUNNING:
        return Assignment(control, Reason.NOT_RUNNING)
    if not in_traffic(experiment.key, visitor, experiment.traffic):
        return Assignment(control, Reason.EXCLUDED)
    chosen = pick_by_weight(experiment.key, visitor, experiment.variants)
    return Assignment(chosen, Reason.BOT if bot else Reason.ASSIGNED)


def _variant(experiment: Experiment, key: str) -> Variant:
    variant = experiment.variant(key)
    if variant is None:
        raise ValueError(f"experiment {experiment.key!r} has no variant {key!r}")
    return variant
