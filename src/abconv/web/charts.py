"""The geometry of the results page's charts, computed here and drawn by
``templates/macros/charts.html`` as SVG (no JavaScript, nothing fetched).

Pure: numbers in, coordinates out, no Flask. Every chart has one series per
variant, in the experiment's order, the control included (it is the
baseline: lift 0), so a reader, and the browser test, find each variant
once. Coordinates are in the SVG's own units (``WIDTH`` wide); the page
scales the whole drawing to the screen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from abconv.stats.bayesian import BetaPosterior

WIDTH = 480.0
LABEL_WIDTH = 130.0  # variant names left of the plot
RIGHT = WIDTH - 16.0
ROW = 48.0
FOREST_ROW = 56.0
TOP = 28.0
HEIGHT = 180.0
LIFT_LIMITS = (-1.0, 3.0)  # lifts past +300 % are drawn at the edge
DENSITY_POINTS = 120


@dataclass(frozen=True)
class Tick:
    at: float  # x on a horizontal axis, y on a vertical one
    label: str


@dataclass(frozen=True)
class Axis:
    """A value range mapped onto ``[start, end]`` in SVG units."""

    low: float
    high: float
    start: float
    end: float

    def at(self, value: float) -> float:
        clipped = min(max(value, self.low), self.high)
        return self.start + (clipped - self.low) / (self.high - self.low) * (self.end - self.start)

    def ticks(self, percent: bool = True, signed: bool = True) -> list[Tick]:
        step = nice_step((self.high - self.low) / 4)
        first = math.ceil(self.low / step - 1e-9) * step
        count = int(math.floor((self.high - first) / step + 1e-9)) + 1
        values = [first + i * step for i in range(count)]
        return [Tick(self.at(v), percent_label(v, signed, step)) for v in values]


def nice_step(rough: float) -> float:
    """The 1, 2 or 5 times a power of ten nearest above ``rough``."""
    if rough <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(rough))
    return next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= rough * 0.999)


def percent_label(value: float, signed: bool = True, step: float = 0.01) -> str:
    """``0.2 -> "+20 %"``, with as many decimals as ``step`` (the ticks' spacing) needs."""
    digits = 0 if step >= 0.0099 else 1 if step >= 0.00099 else 2
    text = f"{value * 100:+.{digits}f} %" if signed else f"{value * 100:.{digits}f} %"
    return "0 %" if abs(value) < 1e-12 else text.replace("-", "−")


@dataclass(frozen=True)
class ForestRow:
    variant: str
    index: int
    control: bool
    y: float
    x: float | None  # the lift's point; None when undefined
    low: float | None
    high: float | None
    label: str  # "+12 % (−3 % to +28 %)"


@dataclass(frozen=True)
class Forest:
    rows: list[ForestRow]
    zero: float
    ticks: list[Tick]
    height: float


def forest(variants: Sequence[dict[str, Any]]) -> Forest:
    """Each variant's relative lift over the control, with its interval.

    ``variants`` are the results document's variant entries of one goal.
    """
    values = [0.0, 0.05, -0.05]
    for variant in variants:
        versus = variant["vs_control"] or {}
        values += [v for v in [versus.get("rel_lift"), *(versus.get("rel_lift_ci") or [])] if v]
    low = max(min(values), LIFT_LIMITS[0])
    high = min(max(values), LIFT_LIMITS[1])
    pad = (high - low) * 0.08
    axis = Axis(max(low - pad, LIFT_LIMITS[0]), high + pad, 16.0, RIGHT)
    rows = []
    for index, variant in enumerate(variants):
        versus = variant["vs_control"] or {}
        lift, interval = versus.get("rel_lift"), versus.get("rel_lift_ci") or [None, None]
        y = TOP + FOREST_ROW * index + FOREST_ROW * 0.7  # the bar; its words above it
        if variant["control"]:
            rows.append(ForestRow(variant["key"], index, True, y, axis.at(0.0), None, None, ""))
            continue
        low_x = None if interval[0] is None else axis.at(interval[0])
        high_x = None if interval[1] is None else axis.at(interval[1])
        point = None if lift is None else axis.at(lift)
        label = lift_label(lift, interval)
        rows.append(ForestRow(variant["key"], index, False, y, point, low_x, high_x, label))
    return Forest(rows, axis.at(0.0), axis.ticks(), TOP + FOREST_ROW * len(variants) + 4)


def lift_label(lift: float | None, interval: Sequence[float | None]) -> str:
    if lift is None:
        return "n/a"
    text = percent_label(lift)
    if interval[0] is not None and interval[1] is not None:
        text += f" ({percent_label(interval[0])} to {percent_label(interval[1])})"
    return text


@dataclass(frozen=True)
class Curve:
    variant: str
    index: int
    control: bool
    line: str  # polyline points "x,y x,y ..."; empty without visitors
    area: str  # the same, closed along the axis
    peak_x: float


@dataclass(frozen=True)
class Densities:
    curves: list[Curve]
    ticks: list[Tick]
    baseline: float


def densities(variants: Sequence[dict[str, Any]]) -> Densities:
    """Each variant's posterior density of its conversion rate, Beta(1 + x, 1 + n − x).

    The rates axis spans the central 99.8 % of every posterior with visitors.
    """
    posteriors = [
        BetaPosterior.from_counts(v["visitors"], v["conversions"]) if v["visitors"] else None
        for v in variants
    ]
    shown = [p for p in posteriors if p is not None]
    baseline = TOP + HEIGHT
    if not shown:
        empty = [Curve(v["key"], i, v["control"], "", "", 0.0) for i, v in enumerate(variants)]
        return Densities(empty, [], baseline)
    low = min(float(stats.beta.ppf(0.001, p.a, p.b)) for p in shown)
    high = max(float(stats.beta.ppf(0.999, p.a, p.b)) for p in shown)
    if high - low < 1e-6:
        low, high = max(0.0, low - 0.01), min(1.0, high + 0.01)
    axis = Axis(low, high, LABEL_WIDTH / 4, RIGHT)
    grid = np.linspace(low, high, DENSITY_POINTS)
    heights = [stats.beta.pdf(grid, p.a, p.b) if p else None for p in posteriors]
    tallest = max(float(np.max(h)) for h in heights if h is not None)
    curves = []
    for index, (variant, height) in enumerate(zip(variants, heights, strict=True)):
        if height is None:
            curves.append(Curve(variant["key"], index, variant["control"], "", "", 0.0))
            continue
        ys = baseline - height / tallest * (HEIGHT - 8)
        xs = [axis.at(float(x)) for x in grid]
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
        area = f"{xs[0]:.1f},{baseline:.1f} {line} {xs[-1]:.1f},{baseline:.1f}"
        peak = xs[int(np.argmax(height))]
        curves.append(Curve(variant["key"], index, variant["control"], line, area, peak))
    return Densities(curves, axis.ticks(signed=False), baseline)


@dataclass(frozen=True)
class LiftLine:
    variant: str
    index: int
    control: bool
    line: str  # polyline of the cumulative lift
    band: str  # polygon of its interval
    last_label: str


@dataclass(frozen=True)
class Timeline:
    lines: list[LiftLine]
    zero: float
    ticks: list[Tick]
    days: list[Tick]  # x positions labelled with dates
    baseline: float


def timeline(document: dict[str, Any], variants: Sequence[dict[str, Any]]) -> Timeline | None:
    """The primary goal's cumulative lift of each variant over the control, per day.

    ``document`` is the results document's ``timeline``; ``None`` when it has no day.
    """
    days = document.get("days") or []
    if not days:
        return None
    values = [0.0, 0.05, -0.05]
    for day in days:
        for entry in (day.get("lift") or {}).values():
            if entry and entry.get("rel_lift") is not None:
                values.append(entry["rel_lift"])
                values += [v for v in entry.get("rel_lift_ci") or [] if v is not None]
    low, high = max(min(values), LIFT_LIMITS[0]), min(max(values), LIFT_LIMITS[1])
    y_axis = Axis(low, high, TOP + HEIGHT, TOP)
    x_axis = Axis(0.0, max(len(days) - 1, 1), LABEL_WIDTH / 2, RIGHT)
    lines = []
    for index, variant in enumerate(variants):
        if variant["control"]:
            zero_line = f"{x_axis.start:.1f},{y_axis.at(0):.1f} {x_axis.end:.1f},{y_axis.at(0):.1f}"
            lines.append(LiftLine(variant["key"], index, True, zero_line, "", "baseline"))
            continue
        points, lows, highs, last = [], [], [], "n/a"
        for i, day in enumerate(days):
            entry = (day.get("lift") or {}).get(variant["key"])
            if not entry or entry.get("rel_lift") is None:
                continue
            x = x_axis.at(i)
            points.append(f"{x:.1f},{y_axis.at(entry['rel_lift']):.1f}")
            last = percent_label(entry["rel_lift"])
            interval = entry.get("rel_lift_ci")
            if interval and interval[0] is not None and interval[1] is not None:
                lows.append(f"{x:.1f},{y_axis.at(interval[0]):.1f}")
                highs.append(f"{x:.1f},{y_axis.at(interval[1]):.1f}")
        band = " ".join(lows + highs[::-1])
        lines.append(LiftLine(variant["key"], index, False, " ".join(points), band, last))
    day_ticks = [Tick(x_axis.at(i), days[i]["day"][5:]) for i in _spread(len(days), 5)]
    return Timeline(lines, y_axis.at(0.0), y_axis.ticks(), day_ticks, TOP + HEIGHT)


def _spread(count: int, most: int) -> list[int]:
    if count <= most:
        return list(range(count))
    return sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})


@dataclass(frozen=True)
class FunnelBar:
    variant: str
    index: int
    control: bool
    y: float
    after_width: float
    without_width: float
    after_label: str
    without_label: str


@dataclass(frozen=True)
class Funnel:
    soft: str
    hard: str
    summary: str
    bars: list[FunnelBar]
    height: float
    verdicts: list[str]


def funnel(pair: dict[str, Any]) -> Funnel:
    """One soft→hard pair: per variant, the hard goal's rate after the soft one and without it."""
    rates = [
        r
        for v in pair["variants"]
        for r in (v.get("rate_after_soft"), v.get("rate_without_soft"))
        if r is not None
    ]
    axis = Axis(0.0, max([*rates, 0.01]) * 1.1, LABEL_WIDTH, RIGHT - 130)
    bars, row = [], ROW * 1.25
    for index, variant in enumerate(pair["variants"]):
        y = TOP + row * index
        after, without = variant.get("rate_after_soft"), variant.get("rate_without_soft")
        bars.append(
            FunnelBar(
                variant["key"],
                index,
                bool(variant["control"]),
                y,
                axis.at(after or 0.0) - axis.start,
                axis.at(without or 0.0) - axis.start,
                _share(after, variant["soft_visitors"]),
                _share(without, variant["visitors_without_soft"]),
            )
        )
    verdicts = [_funnel_verdict(pair, v) for v in pair["variants"] if v.get("vs_control")]
    return Funnel(
        pair["soft"], pair["hard"], pair.get("summary", ""), bars, TOP + row * len(bars), verdicts
    )


def _share(rate: float | None, visitors: int) -> str:
    return f"– of {visitors:,}" if rate is None else f"{rate * 100:.1f} % of {visitors:,}"


def _funnel_verdict(pair: dict[str, Any], variant: dict[str, Any]) -> str:
    versus = variant["vs_control"]
    diff, p_value = versus.get("abs_diff"), versus.get("p_value")
    if diff is None or p_value is None:
        return f"{variant['key']}: too few visitors to compare yet."
    way = "more" if diff > 0 else "less"
    sure = "a real difference" if p_value < 0.05 else "could be chance"
    return (
        f"{variant['key']}: after {pair['soft']}, {abs(diff) * 100:.1f} points {way} likely to "
        f"{pair['hard']} than the control (p = {p_value:.2g}, {sure})."
    )
