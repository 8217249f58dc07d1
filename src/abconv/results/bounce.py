"""``bounce``: the visitors who left without doing anything, for ``engagement = true``.

A bounce is an exposed visitor with no ``engaged`` conversion, so the
bounce rate is 1 − the ``engaged`` rate, and lower is better. The rate's
interval is the Wilson interval of the bounces (the engine's
:func:`abconv.stats.frequentist.wilson_interval`); the comparison with the
control is the ``engaged`` goal's own, turned round: the difference and its
interval change sign, the p-value stays, and the chance that the bounce rate
is lower than the control's is the ``engaged`` goal's chance to beat it.
"""

from __future__ import annotations

from typing import Any

from abconv.experiments import Experiment
from abconv.experiments.rules import ENGAGED_GOAL
from abconv.stats.frequentist import Proportion, wilson_interval


def bounce(experiment: Experiment, document: dict[str, Any]) -> dict[str, Any] | None:
    """The bounce rate per variant from the document's ``engaged`` goal; ``None``
    without ``engagement = true``."""
    goal = next((g for g in document["goals"] if g["key"] == ENGAGED_GOAL), None)
    if not experiment.engagement or goal is None:
        return None
    alpha = float(document["alpha"])
    variants = [_variant(v, alpha) for v in goal["variants"]]
    control = next(v for v in variants if v["control"])
    for variant, engaged in zip(variants, goal["variants"], strict=True):
        if not variant["control"]:
            variant["vs_control"] = _versus(variant, control, engaged["vs_control"])
    return {"goal": ENGAGED_GOAL, "variants": variants}


def _variant(engaged: dict[str, Any], alpha: float) -> dict[str, Any]:
    visitors = int(engaged["visitors"])
    bounces = visitors - int(engaged["conversions"])
    share = Proportion(visitors, bounces)
    interval = wilson_interval(share, alpha)
    return {
        "key": engaged["key"],
        "control": engaged["control"],
        "visitors": visitors,
        "bounces": bounces,
        "rate": share.rate,
        "rate_ci": None if interval is None else list(interval),
        "vs_control": None,
    }


def _versus(
    variant: dict[str, Any], control: dict[str, Any], engaged: dict[str, Any]
) -> dict[str, Any]:
    """Bounce rate − the control's (negative is better), from the engaged goal's test."""
    rate, base = variant["rate"], control["rate"]
    band = engaged.get("abs_diff_ci")
    return {
        "abs_diff": None if rate is None or base is None else rate - base,
        "abs_diff_ci": None if band is None else [-band[1], -band[0]],
        "rel_diff": None if rate is None or not base else rate / base - 1,
        "p_value": engaged.get("p_value"),
        "chance_lower": engaged.get("chance_to_beat_control"),
    }
