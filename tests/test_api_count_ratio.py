"""Count and ratio metrics end to end: events in through the HTTP API, the results
document out, its figures equal to those computed here from the raw events
(scipy's Welch test on the per-visitor event counts; the delta method's
closed form on the per-visitor capped values and orders), on SQLite and
PostgreSQL."""

from __future__ import annotations

import math
import os
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from scipy import stats

from tests.conftest import experiment_toml

CAP = 150.0
VARIANTS = ("trial", "guide")


def count_goals(experiments_dir: Path) -> None:
    """purchase: a value goal with ``count = true`` and a cap; newsletter: a soft count goal."""
    path = experiments_dir / "shop.toml"
    text = experiment_toml().replace(
        "primary = true\n", f"primary = true\ncount = true\ncap = {CAP:g}\n"
    )
    path.write_text(text.replace('kind = "soft"\n', 'kind = "soft"\ncount = true\n'))
    stamp = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def send(client: FlaskClient) -> tuple[dict[str, str], list[tuple[str, str, float | None]]]:
    """300 visitors; some buy several times (values 5 to 90), some sign up again and
    again; half the purchases through ``/api/convert``, the rest in one batch."""
    rng = random.Random(18)
    variant_of = {f"v{i}": rng.choice(VARIANTS) for i in range(300)}
    exposures = [
        {"type": "exposure", "visitor": v, "experiment": "shop", "variant": variant}
        for v, variant in variant_of.items()
    ]
    assert client.post("/api/events", json={"events": exposures}).status_code == 200
    conversions: list[tuple[str, str, float | None]] = []
    for visitor, variant in variant_of.items():
        buys = 0.25 if variant == "trial" else 0.35
        while rng.random() < buys:
            conversions.append((visitor, "purchase", float(rng.choice([5, 20, 45, 90]))))
        while rng.random() < 0.3:
            conversions.append((visitor, "newsletter", None))
    batch = []
    for i, (visitor, goal, value) in enumerate(conversions):
        body: dict[str, Any] = {"visitor": visitor, "goal": goal}
        if value is not None:
            body["value"] = value
        if goal == "purchase" and i % 2:
            reply = client.post("/api/convert", json=body)
            assert reply.status_code == 200 and reply.get_json()["duplicate"] is False
        else:
            batch.append({"type": "conversion", **body})
    assert client.post("/api/events", json={"events": batch}).status_code == 200
    return variant_of, conversions


def per_visitor(
    variant_of: dict[str, str], conversions: list[tuple[str, str, float | None]], goal: str
) -> dict[str, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
    """Variant → (capped total value, events) of every exposed visitor (0 and 0 without)."""
    totals: dict[str, float] = defaultdict(float)
    events: dict[str, int] = defaultdict(int)
    for visitor, g, value in conversions:
        if g == goal:
            totals[visitor] += value or 0.0
            events[visitor] += 1
    arrays = {}
    for variant in VARIANTS:
        mine = [v for v, x in variant_of.items() if x == variant]
        value = np.array([min(totals[v], CAP) for v in mine])
        arrays[variant] = (value, np.array([float(events[v]) for v in mine]))
    return arrays


def delta(value: np.ndarray[Any, Any], d: np.ndarray[Any, Any]) -> tuple[float, float]:
    """Ratio Σ value / Σ d and its delta-method variance, in closed form on the arrays."""
    ratio = float(value.sum() / d.sum())
    return ratio, float(np.var(value - ratio * d, ddof=1) / (len(value) * d.mean() ** 2))


def test_count_and_ratio_metrics_equal_those_of_the_raw_events(
    app: Flask, client: FlaskClient, experiments_dir: Path
) -> None:
    count_goals(experiments_dir)
    variant_of, conversions = send(client)
    document = client.get("/api/experiments/shop/results").get_json()
    assert app.extensions["abconv"].experiment("shop").goal("purchase").count is True
    goals = {goal["key"]: goal for goal in document["goals"]}
    z = stats.norm.ppf(1 - document["alpha"] / 2)
    for key in ("purchase", "newsletter"):
        assert goals[key]["count"] is True
        arrays = per_visitor(variant_of, conversions, key)
        trial, guide = goals[key]["variants"]
        for shown in (trial, guide):
            events = arrays[shown["key"]][1]
            assert shown["count"]["events"] == events.sum() > 0
            assert shown["count"]["per_visitor"] == pytest.approx(events.mean(), rel=1e-12)
        welch = stats.ttest_ind(arrays["guide"][1], arrays["trial"][1], equal_var=False)
        assert guide["vs_control"]["count"]["p_value"] == pytest.approx(welch.pvalue, rel=1e-7)
        assert trial["vs_control"] is None
    trial, guide = goals["purchase"]["variants"]
    arrays = per_visitor(variant_of, conversions, "purchase")
    assert sum(v["value"]["capped_visitors"] for v in (trial, guide)) > 0  # the cap cut some
    ratios: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)
    for shown in (trial, guide):
        value, events = arrays[shown["key"]]
        for name, d in (("per_order", events), ("per_converting_visitor", (events > 0) * 1.0)):
            ratio, variance = ratios[name][shown["key"]] = delta(value, d)
            half = z * math.sqrt(variance)
            assert shown["value"][name]["ratio"] == pytest.approx(ratio, rel=1e-9)
            assert shown["value"][name]["ci"] == pytest.approx([ratio - half, ratio + half])
    for name, by_variant in ratios.items():
        (r_t, v_t), (r_g, v_g) = by_variant["trial"], by_variant["guide"]
        compared = guide["vs_control"]["value"][name]
        assert compared["diff"] == pytest.approx(r_g - r_t, rel=1e-9)
        p_value = 2 * stats.norm.sf(abs(r_g - r_t) / math.sqrt(v_t + v_g))
        assert compared["p_value"] == pytest.approx(p_value, rel=1e-7)
        assert compared["rel_lift"] == pytest.approx(r_g / r_t - 1, rel=1e-9)
    assert goals["newsletter"]["variants"][0]["value"] is None  # no values: no ratios
    csv_text = client.get("/api/experiments/shop/results.csv").get_data(as_text=True)
    assert "per_order_p_value" in csv_text.splitlines()[0]


def test_the_results_page_shows_the_metrics_beside_the_rate(
    client: FlaskClient, experiments_dir: Path
) -> None:
    """The page's metric cells carry the document's figures, formatted."""
    count_goals(experiments_dir)
    send(client)
    document = client.get("/api/experiments/shop/results").get_json()
    reply = client.get("/experiments/shop")
    assert reply.status_code == 200
    page = reply.get_data(as_text=True)
    purchase, newsletter = document["goals"]
    assert page.count("<th>Conversions per visitor</th>") == 2  # both goals count
    assert page.count("<th>Value per order</th>") == 1  # only purchase has values
    guide = purchase["variants"][1]
    per_order = guide["value"]["per_order"]
    assert f"{per_order['ratio']:,.2f}<br>" in page
    low, high = per_order["ci"]
    assert f"{low:,.2f} to {high:,.2f}" in page
    lift = guide["vs_control"]["value"]["per_order"]["rel_lift"]
    assert f"{lift * 100:+.1f} %".replace("-", "−") in page
    count = newsletter["variants"][0]["count"]
    assert f"{count['per_visitor']:,.3f}<br>" in page
    assert page.index('data-metric="count"') > page.index('data-label="Rate"')
