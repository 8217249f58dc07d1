"""A results document with every part section C of the issue-15 shapes adds
(``soft_to_hard``, ``timeline``, ``progress``), for the page tests: the
analysis makes the rest from counts, so it is a document the API could answer.
"""

from __future__ import annotations

from typing import Any

from abconv import analyze

VARIANTS = {"control": 10_000, "B": 10_050, "C": 9_980}
PURCHASES = {"control": 300, "B": 372, "C": 290}
GUIDES = {"control": 380, "B": 520, "C": 610}


def full_document(
    experiment: str = "shop", names: tuple[str, str, str] = ("purchase", "guide", "newsletter")
) -> dict[str, Any]:
    """Three variants (``control`` first); ``names``: the hard primary goal and two soft ones."""
    hard, soft, other = names
    keys = list(VARIANTS)
    document = analyze({
        "experiment": experiment, "control": "control", "method": "bayesian",
        "variants": [{"key": k, "weight": 1, "visitors": VARIANTS[k]} for k in keys],
        "goals": [
            {"key": hard, "kind": "hard", "primary": True, "value": False,
             "counts": {k: {"conversions": PURCHASES[k]} for k in keys}},
            {"key": soft, "kind": "soft", "primary": False, "value": False,
             "counts": {k: {"conversions": GUIDES[k]} for k in keys}},
            {"key": other, "kind": "soft", "primary": False, "value": False,
             "counts": {k: {"conversions": 0} for k in keys}},
        ],
    })  # fmt: skip
    document["soft_to_hard"] = [_pair(soft, hard, keys)]
    document["timeline"] = _timeline(hard, keys)
    document["progress"] = {
        "planned_visitors_per_variant": 53_000, "visitors_per_variant": 9_980,
        "fraction": 9_980 / 53_000, "days_running": 9, "days_left": 41,
    }  # fmt: skip
    document["phase"] = 1
    document["phases"] = [{
        "number": 1, "started_at": "2026-11-01T09:00:00Z",
        "definition": {"traffic": 1.0, "variants": [{"key": k, "weight": 1.0} for k in keys]},
    }]  # fmt: skip
    return document


def _pair(soft: str, hard: str, keys: list[str]) -> dict[str, Any]:
    variants = []
    for key in keys:
        after = round(GUIDES[key] * 0.21)
        without = PURCHASES[key] - after
        rest = VARIANTS[key] - GUIDES[key]
        variants.append({
            "key": key, "control": key == "control",
            "soft_visitors": GUIDES[key], "hard_after_soft": after,
            "rate_after_soft": after / GUIDES[key], "rate_after_soft_ci": [0.17, 0.25],
            "visitors_without_soft": rest, "hard_without_soft": without,
            "rate_without_soft": without / rest, "rate_without_soft_ci": [0.02, 0.04],
            "vs_control": None if key == "control" else {"abs_diff": 0.001, "p_value": 0.41},
        })  # fmt: skip
    return {
        "soft": soft, "hard": hard, "variants": variants,
        "summary": f"{soft} → {hard}: 21 % of 380 vs 2 % of 9,620",
    }  # fmt: skip


def _timeline(goal: str, keys: list[str]) -> dict[str, Any]:
    days = []
    for day in range(1, 10):
        share = day / 9
        variants = {
            k: {"visitors": round(VARIANTS[k] * share),
                "goals": {goal: {"converting": round(PURCHASES[k] * share),
                                 "rate": PURCHASES[k] / VARIANTS[k]}}}
            for k in keys
        }  # fmt: skip
        width = 0.5 / day**0.5
        lift = {
            k: {"rel_lift": 0.2 - 0.1 / day, "rel_lift_ci": [0.2 - 0.1 / day - width, 0.2 + width]}
            for k in keys[1:]
        }
        lift[keys[2]] = None if day == 1 else {"rel_lift": -0.02, "rel_lift_ci": [-0.3, 0.25]}
        days.append({"day": f"2026-11-{day:02d}", "variants": variants, "lift": lift})
    return {"goal": goal, "days": days}
