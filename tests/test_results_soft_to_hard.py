"""``soft_to_hard``: figures against counts computed by hand, and the references of statsmodels."""

from __future__ import annotations

import datetime

import pytest
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from abconv.errors import AbconvError
from abconv.experiments import Goal
from abconv.results import results_document, stored_data_checked
from abconv.results.soft_to_hard import soft_to_hard
from abconv.store.counts import GoalCounts, PairCounts, ResultCounts
from abconv.vocabulary import GoalKind
from tests.results_counts import DAY, Conversion, Exposure, counts_from_events, experiment

NOW = datetime.datetime(2026, 11, 10, 12)


def pair_counts(**pairs: tuple[int, int, int]) -> ResultCounts:
    """10,000 visitors per variant; ``pairs``: variant -> (soft, hard after soft, hard without)."""
    return ResultCounts(
        visitors=dict.fromkeys(pairs, 10_000),
        goals={},
        days=[],
        pairs=[PairCounts("guide", "purchase", v, *figures) for v, figures in pairs.items()],
    )


def test_rates_intervals_and_test_against_statsmodels() -> None:
    counts = pair_counts(control=(380, 80, 290), B=(450, 70, 300))
    [entry] = soft_to_hard(experiment(), counts, 0.05)
    control, b = entry["variants"]
    assert (entry["soft"], entry["hard"]) == ("guide", "purchase")
    assert (control["key"], control["control"], b["key"], b["control"]) == (
        "control",
        True,
        "B",
        False,
    )
    # By hand: 80 of 380 with the guide bought; 290 of the other 9,620.
    assert (control["soft_visitors"], control["hard_after_soft"]) == (380, 80)
    assert (control["visitors_without_soft"], control["hard_without_soft"]) == (9620, 290)
    assert control["rate_after_soft"] == 80 / 380 and control["rate_without_soft"] == 290 / 9620
    assert b["visitors_without_soft"] == 9550 and b["rate_after_soft"] == 70 / 450
    # source: statsmodels proportion_confint(method="wilson")
    for row in (control, b):
        assert row["rate_after_soft_ci"] == pytest.approx(
            proportion_confint(row["hard_after_soft"], row["soft_visitors"], 0.05, "wilson"),
            rel=1e-12,
        )
        assert row["rate_without_soft_ci"] == pytest.approx(
            proportion_confint(
                row["hard_without_soft"], row["visitors_without_soft"], 0.05, "wilson"
            ),
            rel=1e-12,
        )
    # P(hard | soft) of B against the control: pooled two-proportion z-test.
    # source: statsmodels proportions_ztest (pooled variance, two-sided)
    _, reference = proportions_ztest([70, 80], [450, 380])
    assert control["vs_control"] is None
    assert b["vs_control"]["p_value"] == pytest.approx(reference, rel=1e-9)
    assert b["vs_control"]["abs_diff"] == pytest.approx(70 / 450 - 80 / 380)


def test_the_summary_names_the_control_s_figures_in_whole_percents() -> None:
    counts = pair_counts(control=(380, 80, 290), B=(450, 70, 300))
    [entry] = soft_to_hard(experiment(), counts, 0.05)
    assert entry["summary"] == "guide → purchase: 21 % of 380 vs 3 % of 9,620"


def test_no_soft_visitors_leave_rates_and_the_test_undefined() -> None:
    counts = pair_counts(control=(0, 0, 12), B=(0, 0, 15))
    [entry] = soft_to_hard(experiment(), counts, 0.05)
    control, b = entry["variants"]
    assert control["rate_after_soft"] is None and control["rate_after_soft_ci"] is None
    assert b["vs_control"] == {"abs_diff": None, "p_value": None}
    assert entry["summary"] == "guide → purchase: n/a of 0 vs 0 % of 10,000"


def test_missing_pairs_are_zeros_and_every_soft_hard_pair_appears() -> None:
    goals = (
        Goal("purchase", GoalKind.HARD, value=False, primary=True),
        Goal("guide", GoalKind.SOFT, value=False, primary=False),
        Goal("refund", GoalKind.HARD, value=False, primary=False),
        Goal("newsletter", GoalKind.SOFT, value=False, primary=False),
    )
    counts = ResultCounts({"control": 5, "B": 5}, {}, [], [])
    entries = soft_to_hard(experiment(goals), counts, 0.05)
    assert [(e["soft"], e["hard"]) for e in entries] == [
        ("guide", "purchase"),
        ("guide", "refund"),
        ("newsletter", "purchase"),
        ("newsletter", "refund"),
    ]
    assert all(v["soft_visitors"] == 0 for e in entries for v in e["variants"])


def test_figures_from_events_counted_by_hand() -> None:
    """Ten visitors: who read the guide, who bought, and in which order."""
    at = datetime.datetime.combine(DAY, datetime.time(9))
    later = at + datetime.timedelta(hours=2)
    exposures = [Exposure(f"c{i}", "control", at) for i in range(5)]
    exposures += [Exposure(f"b{i}", "B", at) for i in range(5)]
    conversions = [
        Conversion("c0", "guide", at),
        Conversion("c0", "purchase", later, 10.0),  # guide, then purchase
        Conversion("c1", "purchase", at, 5.0),  # purchase before the guide: not "after"
        Conversion("c1", "guide", later),
        Conversion("c2", "guide", at),  # guide only
        Conversion("c3", "purchase", at, 7.0),  # purchase without the guide
        Conversion("b0", "guide", at),
        Conversion("b0", "guide", later),  # a repeat
        Conversion("b0", "purchase", at, 3.0),  # at the same time as the first guide: after
        Conversion("b1", "purchase", later, 4.0),
        Conversion("b2", "purchase", later, 4.0),
    ]
    exp = experiment()
    counts = counts_from_events(exp, exposures, conversions)
    [entry] = results_document(exp, counts, NOW)["soft_to_hard"]
    control, b = entry["variants"]
    # control: c0, c1, c2 read the guide; only c0 bought after; c3 bought without it.
    assert (control["soft_visitors"], control["hard_after_soft"]) == (3, 1)
    assert (control["visitors_without_soft"], control["hard_without_soft"]) == (2, 1)
    # B: b0 read the guide and bought; b1 and b2 bought without it.
    assert (b["soft_visitors"], b["hard_after_soft"]) == (1, 1)
    assert (b["visitors_without_soft"], b["hard_without_soft"]) == (4, 2)
    assert entry["summary"] == "guide → purchase: 33 % of 3 vs 50 % of 2"


def test_counts_that_contradict_each_other_are_stored_data_out_of_range() -> None:
    counts = ResultCounts(
        {"control": 10, "B": 10},
        {},
        [],
        [PairCounts("guide", "purchase", "control", 11, 0, 0)],
    )
    with pytest.raises(AbconvError) as raised, stored_data_checked("shop"):
        results_document(experiment(), counts, NOW)
    assert (raised.value.code, raised.value.status) == ("stored_data_out_of_range", 409)


def test_a_soft_winner_that_loses_purchases_is_not_shipped_and_the_document_says_why() -> None:
    """More guide downloads, fewer purchases: the decision and its guardrail say so."""
    goals = (
        Goal("guide", GoalKind.SOFT, value=False, primary=True),
        Goal("purchase", GoalKind.HARD, value=False, primary=False),
    )
    n = 20_000
    counts = ResultCounts(
        visitors={"control": n, "B": n},
        goals={
            ("guide", "control"): GoalCounts(2000, 2000, 0.0, 0.0, 0.0, 0),
            ("guide", "B"): GoalCounts(2600, 2600, 0.0, 0.0, 0.0, 0),
            ("purchase", "control"): GoalCounts(600, 600, 0.0, 0.0, 0.0, 0),
            ("purchase", "B"): GoalCounts(450, 450, 0.0, 0.0, 0.0, 0),
        },
        days=[],
        pairs=[
            PairCounts("guide", "purchase", "control", 2000, 240, 360),
            PairCounts("guide", "purchase", "B", 2600, 150, 300),
        ],
    )
    document = results_document(experiment(goals), counts, NOW)
    decision = document["decision"]
    assert decision["status"] == "keep_running" and decision["winner"] is None
    assert decision["reason"] == (
        "'B' wins guide but is probably worse on purchase (hard goal): keep 'control'."
    )
    assert [(g["goal"], g["status"]) for g in decision["guardrails"]] == [("purchase", "failed")]
    # ... and soft → hard shows where the purchases went.
    [entry] = document["soft_to_hard"]
    b = entry["variants"][1]
    assert b["vs_control"]["abs_diff"] < 0 and b["vs_control"]["p_value"] < 0.001
