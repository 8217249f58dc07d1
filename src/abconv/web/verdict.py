"""The results in a marketer's words: which variant wins, by how much, how sure, what to do.

Pure: the results document (and the experiment's settings) in, sentences
out; no Flask. The decision itself is the analysis' (``decision.status``,
``decision.reason``): this module only says it plainly, in the view the
reader chose (Bayesian: chance to beat the control; frequentist: p-value).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from abconv.analysis_settings import AnalysisSettings
from abconv.vocabulary import Method

View = Literal["bayesian", "frequentist"]
VIEWS: dict[str, View] = {"bayesian": "bayesian", "frequentist": "frequentist"}  # ?view=
SOFT_WIN = 0.95  # chance to beat the control that makes a soft goal "more"
HARD_LOSS = 0.2  # at or below: the hard goal is "likely fewer"


# Beyond this, a count of days left reads as noise: the advice changes instead.
MANY_DAYS = 365


@dataclass(frozen=True)
class Verdict:
    tone: str  # "winner", "keep_running", "no_difference", "invalid": the badge's class
    badge: str  # "Ship guide", "Keep running", ...
    headline: str
    detail: str
    action: str


@dataclass(frozen=True)
class Leader:
    key: str
    control: bool
    lift: str  # "+23 %", "" for the control
    sure: str  # "96 % chance to beat trial" or "p = 0.08"


def default_view(method: Method) -> View:
    return "bayesian" if method is Method.BAYESIAN else "frequentist"


def percent(value: float | None, signed: bool = False, digits: int = 1) -> str:
    if value is None:
        return "–"
    text = f"{value * 100:+.{digits}f} %" if signed else f"{value * 100:.{digits}f} %"
    return text.replace("-", "−")


def interval(
    pair: Sequence[float | None] | None, signed: bool = False, digits: int = 1, word: str = "to"
) -> str:
    if not pair or pair[0] is None or pair[1] is None:
        return ""
    return f"{percent(pair[0], signed, digits)} {word} {percent(pair[1], signed, digits)}"


def amount(value: float | None, digits: int = 2, signed: bool = False) -> str:
    """A mean or a ratio of money or counts, thousands separated: ``"1,234.50"``;
    ``"–"`` when undefined (``None``, or a field the document lacks)."""
    if not isinstance(value, int | float):
        return "–"
    text = f"{value:+,.{digits}f}" if signed else f"{value:,.{digits}f}"
    return text.replace("-", "−")


def amount_interval(pair: Sequence[float | None] | None, digits: int = 2) -> str:
    if not pair or pair[0] is None or pair[1] is None:
        return ""
    return f"{amount(pair[0], digits)} to {amount(pair[1], digits)}"


def chance(probability: float | None) -> str:
    if probability is None:
        return "–"
    if probability >= 0.9995:
        return "> 99.9 %"
    if probability < 0.0005:
        return "< 0.1 %"
    if probability > 0.99 or probability < 0.01:
        return f"{probability * 100:.1f} %"
    return f"{probability * 100:.0f} %"


def p_value(value: float | None) -> str:
    if value is None:
        return "–"
    return "< 0.0001" if value < 0.0001 else f"{value:.2g}"


def primary_goal(document: dict[str, Any]) -> dict[str, Any]:
    return next(goal for goal in document["goals"] if goal["primary"])


def leader(goal: dict[str, Any], view: View, alpha: float = 0.05) -> Leader | None:
    """The variant with the highest rate on ``goal``; ``None`` without visitors."""
    variants = [v for v in goal["variants"] if v["visitors"] and v["rate"] is not None]
    if not variants:
        return None
    best = max(variants, key=lambda v: (v["rate"], v["control"]))
    control = next(v for v in goal["variants"] if v["control"])
    if best["control"]:
        return Leader(best["key"], True, "", "")
    return Leader(best["key"], False, percent(best["vs_control"]["rel_lift"], True, 0),
                  how_sure(best["vs_control"], control["key"], view, alpha))  # fmt: skip


def how_sure(versus: dict[str, Any], control: str, view: View, alpha: float = 0.05) -> str:
    """ "96 % chance to beat trial", or "p = 0.083, could be chance"."""
    if view == "bayesian":
        return f"{chance(versus.get('chance_to_beat_control'))} chance to beat {control}"
    given = versus.get("p_value")
    if given is None:
        return "p = –"
    meaning = "unlikely to be chance" if given < alpha else "could be chance"
    return f"p = {p_value(given)}, {meaning}"


def verdict(
    document: dict[str, Any], settings: AnalysisSettings, view: View, days_left: int | None
) -> Verdict:
    decision = document["decision"]
    goal = primary_goal(document)
    control = next(v for v in goal["variants"] if v["control"])
    status = decision["status"]
    if status == "winner":
        winner = next(v for v in goal["variants"] if v["key"] == decision["winner"])
        return Verdict(
            "winner", f"Ship {winner['key']}", f"{winner['key']} wins on {goal['key']}",
            _gain(goal["key"], winner, control["key"], view, settings.alpha),
            f"Show {winner['key']} to everyone: in the experiment file set "
            f'status = "concluded" and winner = "{winner["key"]}".',
        )  # fmt: skip
    if status == "invalid":
        return Verdict(
            "invalid", "Do not trust", "These results cannot be trusted",
            "The variants did not get the share of visitors they should have, so something "
            "other than the variants differs between them.",
            "Find out why (a redirect that loses visitors, a bot, a cache) before reading any "
            "figure below; then start the experiment again.",
        )  # fmt: skip
    best = leader(goal, view, settings.alpha)
    if status == "no_difference":
        return Verdict(
            "no_difference", "No difference", f"No variant changes {goal['key']} enough to matter",
            _spread(goal, control["key"], view),
            f"End the test and keep {control['key']}, or keep whichever variant is cheaper "
            "to run.",
        )  # fmt: skip
    wait = "Keep the test running"
    if days_left is not None and days_left > MANY_DAYS:
        wait += (
            ": at today's traffic the plan needs more than a year; send more traffic to the "
            "test or plan for a larger effect"
        )
    elif days_left is not None:
        wait += f": about {days_left} more day{'s' if days_left != 1 else ''} at today's traffic"
    if best is None:
        detail = "No visitors yet."
    elif best.control:
        detail = f"So far no variant does better than {control['key']} on {goal['key']}."
    else:
        leading = next(v for v in goal["variants"] if v["key"] == best.key)
        detail = "So far " + _gain(goal["key"], leading, control["key"], view, settings.alpha)
    return Verdict(
        "keep_running", "Keep running", "No winner yet", detail,
        wait + ". Stopping at the first good-looking day picks winners that are not there.",
    )  # fmt: skip


def _gain(goal: str, variant: dict[str, Any], control: str, view: View, alpha: float) -> str:
    versus = variant["vs_control"]
    lift = versus.get("rel_lift")
    if lift is None:
        return f"{variant['key']} leads on {goal}."
    better = "better" if lift >= 0 else "worse"
    band = interval(versus.get("rel_lift_ci"), signed=True, digits=0, word="and")
    within = f" (likely between {band})" if band else ""
    return (
        f"{variant['key']} converts {percent(abs(lift), digits=0)} {better} than {control} "
        f"on {goal}{within}; {how_sure(versus, control, view, alpha)}."
    )


def _spread(goal: dict[str, Any], control: str, view: View) -> str:
    bands = [
        f"between {interval(v['vs_control'].get('rel_lift_ci'), True, 0, 'and')} for {v['key']}"
        for v in goal["variants"]
        if v["vs_control"] and v["vs_control"].get("rel_lift_ci")
    ]
    if not bands:
        return f"The variants convert alike on {goal['key']}."
    return f"The lift over {control} is likely " + "; ".join(bands) + ": too small to matter."


def method_words(settings: AnalysisSettings) -> str:
    """The method and its thresholds, in one sentence."""
    if settings.method is Method.BAYESIAN:
        return (
            f"Bayesian: a variant ships when its chance to beat {'the control'} reaches "
            f"{chance(settings.chance_to_win)} and the rate it may cost is under "
            f"{percent(settings.max_expected_loss, digits=2)} (expected loss), with at least "
            f"{settings.min_visitors:,} visitors per variant."
        )
    kind = (
        "Sequential (safe to look every day)"
        if settings.method is Method.SEQUENTIAL
        else "Frequentist (fixed sample)"
    )
    return (
        f"{kind}: a variant ships when p < {settings.alpha:g}; the plan is sized to find a "
        f"{percent(settings.mde, digits=0)} lift {percent(settings.power, digits=0)} of the "
        f"time, with at least {settings.min_visitors:,} visitors per variant."
    )


def soft_over_hard(document: dict[str, Any]) -> list[str]:
    """ "guide: more guide-download, fewer purchase: not shipped." for each variant that
    wins a soft goal while a hard goal is likely worse."""
    soft = [g for g in document["goals"] if g["kind"] == "soft"]
    hard = [g for g in document["goals"] if g["kind"] == "hard"]
    winner = document["decision"].get("winner")
    sentences = []
    for variant in (v for v in document["goals"][0]["variants"] if not v["control"]):
        up = [g["key"] for g in soft if _chance(g, variant["key"]) >= SOFT_WIN]
        down = [g["key"] for g in hard if _chance(g, variant["key"]) <= HARD_LOSS]
        if up and down:
            shipped = "shipped anyway" if winner == variant["key"] else "not shipped"
            sentences.append(
                f"{variant['key']}: more {', '.join(up)}, fewer {', '.join(down)}: {shipped}."
            )
    return sentences


def _chance(goal: dict[str, Any], key: str) -> float:
    variant = next(v for v in goal["variants"] if v["key"] == key)
    value = (variant["vs_control"] or {}).get("chance_to_beat_control")
    return 0.5 if value is None else float(value)


def bounce_sentences(bounce: dict[str, Any] | None, view: View, alpha: float = 0.05) -> list[str]:
    """Per treatment, its bounce rate against the control's in one sentence, lower
    being better: "B: 42.0 % bounced vs 48.0 % on control: 6.0 points fewer (likely
    between 9.9 points fewer and 2.1 points fewer); 99 % chance of fewer bounces."."""
    if not bounce:
        return []
    control = next(v for v in bounce["variants"] if v["control"])
    sentences = []
    for variant in (v for v in bounce["variants"] if not v["control"]):
        versus = variant["vs_control"] or {}
        diff = versus.get("abs_diff")
        head = (
            f"{variant['key']}: {percent(variant['rate'])} bounced vs "
            f"{percent(control['rate'])} on {control['key']}"
        )
        if diff is None:
            sentences.append(f"{variant['key']}: not enough visitors yet to compare.")
            continue
        band = versus.get("abs_diff_ci")
        within = ""
        if band and band[0] is not None and band[1] is not None:
            within = f" (likely between {_points(band[0])} and {_points(band[1])})"
        if view == "bayesian":
            sure = f"{chance(versus.get('chance_lower'))} chance of fewer bounces"
        else:
            given = versus.get("p_value")
            meaning = (
                "unlikely to be chance"
                if given is not None and given < alpha
                else ("could be chance")
            )
            sure = f"p = {p_value(given)}, {meaning}"
        sentences.append(f"{head}: {_points(diff)}{within}; {sure}.")
    return sentences


def _points(diff: float) -> str:
    """A difference of bounce rates in percentage points: ``-0.061`` → ``"6.1 points fewer"``."""
    if round(diff * 100, 1) == 0:
        return "0.0 points"
    return f"{abs(diff) * 100:.1f} points {'fewer' if diff < 0 else 'more'}"
