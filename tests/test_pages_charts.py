"""The charts' geometry (abconv.web.charts): pure numbers, checked against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from abconv.web import charts


def variant(key: str, visitors: int, conversions: int, lift: tuple[float, ...] = ()) -> dict:
    versus = None
    if lift:
        versus = {"rel_lift": lift[0], "rel_lift_ci": [lift[1], lift[2]]}
    return {"key": key, "control": not lift, "visitors": visitors, "conversions": conversions,
            "vs_control": versus}  # fmt: skip


def rate_at(curve: charts.Curve, x: float, low: float, high: float) -> float:
    """The rate an x of the density chart stands for (its axis spans [low, high])."""
    return low + (x - charts.LABEL_WIDTH / 4) / (charts.RIGHT - charts.LABEL_WIDTH / 4) * (
        high - low
    )


def test_each_density_peaks_at_its_posterior_mode() -> None:
    variants = [variant("a", 1000, 50), variant("b", 1000, 80, (0.6, 0.1, 1.2))]
    drawn = charts.densities(variants)
    # The axis spans the central 99.8 % of both posteriors: Beta(1 + x, 1 + n - x).
    low = stats.beta.ppf(0.001, 51, 951)
    high = stats.beta.ppf(0.999, 81, 921)
    for curve, mode in zip(drawn.curves, (50 / 1000, 80 / 1000), strict=True):
        step = (high - low) / (charts.DENSITY_POINTS - 1)  # the grid's resolution
        assert rate_at(curve, curve.peak_x, low, high) == pytest.approx(mode, abs=step)
    # The narrower posterior, whose density is higher, reaches the top of the chart.
    tops = [min(float(p.split(",")[1]) for p in c.line.split()) for c in drawn.curves]
    heights = [stats.beta.pdf(50 / 1000, 51, 951), stats.beta.pdf(80 / 1000, 81, 921)]
    assert np.argmin(tops) == np.argmax(heights)


def test_a_variant_without_visitors_keeps_its_series_and_draws_nothing() -> None:
    drawn = charts.densities([variant("a", 0, 0), variant("b", 100, 5, (0.1, -0.2, 0.4))])
    assert [c.variant for c in drawn.curves] == ["a", "b"]
    assert drawn.curves[0].line == "" and drawn.curves[1].line
    empty = charts.densities([variant("a", 0, 0), variant("b", 0, 0, (0.0, 0.0, 0.0))])
    assert [c.line for c in empty.curves] == ["", ""] and empty.ticks == []


def test_the_forest_plot_puts_each_lift_on_one_axis() -> None:
    drawn = charts.forest([variant("a", 100, 5), variant("b", 100, 7, (0.4, -0.1, 0.9))])
    control, b = drawn.rows
    assert control.x == drawn.zero and control.low is None
    assert b.low is not None and b.high is not None and b.x is not None
    assert b.low < drawn.zero < b.x < b.high
    # Linear: the 0 → 0.4 distance is 0.4 / 0.1 times the -0.1 → 0 one.
    assert (b.x - drawn.zero) == pytest.approx(4 * (drawn.zero - b.low))
    assert b.label == "+40 % (−10 % to +90 %)"
    assert "0 %" in [tick.label for tick in drawn.ticks]


def test_huge_lifts_are_drawn_at_the_edge() -> None:
    drawn = charts.forest([variant("a", 10, 1), variant("b", 10, 9, (8.0, 1.0, 40.0))])
    assert drawn.rows[1].high == pytest.approx(charts.RIGHT)


@pytest.mark.parametrize(
    ("rough", "step"), [(0.03, 0.05), (0.1, 0.1), (0.26, 0.5), (0.0004, 0.0005), (7, 10)]
)
def test_ticks_are_one_two_or_five_times_a_power_of_ten(rough: float, step: float) -> None:
    assert charts.nice_step(rough) == pytest.approx(step)


def test_tick_labels_carry_the_decimals_their_spacing_needs() -> None:
    assert charts.percent_label(0.2) == "+20 %"
    assert charts.percent_label(-0.05) == "−5 %"
    assert charts.percent_label(0.0025, signed=False, step=0.0005) == "0.25 %"
    assert charts.percent_label(0.0) == "0 %"


def test_the_timeline_skips_days_without_a_lift() -> None:
    document = {"goal": "purchase", "days": [
        {"day": "2026-11-01", "lift": {"b": None}},
        {"day": "2026-11-02", "lift": {"b": {"rel_lift": 0.1, "rel_lift_ci": [-0.2, 0.4]}}},
        {"day": "2026-11-03", "lift": {"b": {"rel_lift": 0.12, "rel_lift_ci": [-0.1, 0.3]}}},
    ]}  # fmt: skip
    drawn = charts.timeline(document, [variant("a", 1, 0), variant("b", 1, 0, (0, 0, 0))])
    assert drawn is not None
    control, b = drawn.lines
    assert control.control and len(control.line.split()) == 2  # the 0 % line
    assert len(b.line.split()) == 2 and len(b.band.split()) == 4 and b.last_label == "+12 %"
    assert [tick.label for tick in drawn.days] == ["11-01", "11-02", "11-03"]
    assert charts.timeline({"goal": "purchase", "days": []}, []) is None


def test_the_funnel_scales_both_rates_alike() -> None:
    pair = {"soft": "guide", "hard": "purchase", "summary": "s", "variants": [
        {"key": "a", "control": True, "soft_visitors": 100, "rate_after_soft": 0.2,
         "visitors_without_soft": 900, "rate_without_soft": 0.05, "vs_control": None},
        {"key": "b", "control": False, "soft_visitors": 0, "rate_after_soft": None,
         "visitors_without_soft": 1000, "rate_without_soft": 0.04,
         "vs_control": {"abs_diff": None, "p_value": None}},
    ]}  # fmt: skip
    drawn = charts.funnel(pair)
    a, b = drawn.bars
    assert a.after_width == pytest.approx(4 * a.without_width)
    assert b.after_width == 0 and b.after_label == "– of 0"
    assert a.after_label == "20.0 % of 100" and b.without_label == "4.0 % of 1,000"
    assert drawn.verdicts == ["b: too few visitors to compare yet."]
