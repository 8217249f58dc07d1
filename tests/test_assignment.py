"""Assignment: deterministic, two independent hashes, weights, bots, statuses."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

from abconv.assignment import Reason, assign, in_traffic, is_bot, pick_by_weight, unit_hash
from abconv.experiments import allocate_layers
from abconv.experiments.files import parse_experiment
from abconv.experiments.model import Experiment, Variant
from abconv.vocabulary import Status
from tests.conftest import experiment_toml

PINNED = json.loads((Path(__file__).parent / "assignment_cases.json").read_text())
CASES = PINNED["cases"]
LAYER_CASES = PINNED["layer_cases"]
WEIGHTED = [Variant("a", 1, None, None, None), Variant("b", 2, None, None, None),
            Variant("c", 1, None, None, None)]  # fmt: skip


def shop(**fields: object) -> Experiment:
    return parse_experiment(experiment_toml(**fields), "shop.toml")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['experiment']}/{c['visitor'][:10]}")
def test_hashes_match_the_pinned_cases(case: dict[str, object]) -> None:
    experiment, visitor = str(case["experiment"]), str(case["visitor"])
    assert unit_hash(f"{experiment}:traffic", visitor) == pytest.approx(case["traffic_hash"])
    assert unit_hash(f"{experiment}:variant", visitor) == pytest.approx(case["variant_hash"])
    assert pick_by_weight(experiment, visitor, WEIGHTED).key == case["variant_1_2_1"]


@pytest.mark.parametrize("case", LAYER_CASES, ids=lambda c: f"{c['layer']}/{c['visitor'][:10]}")
def test_layer_hashes_match_the_pinned_cases(case: dict[str, object]) -> None:
    from tests.test_layers import layered

    layer_name, visitor = str(case["layer"]), str(case["visitor"])
    assert unit_hash(f"{layer_name}:layer", visitor) == pytest.approx(case["layer_hash"])
    experiments = [
        layered("hero", 1, 0.5, layer=layer_name),
        layered("signup", 2, 0.3, layer=layer_name),
    ]
    layer = allocate_layers(experiments)[0][layer_name]
    enrolled = [e.key for e in experiments if assign(e, visitor, layer=layer).record]
    assert enrolled == ([case["experiment_50_30"]] if case["experiment_50_30"] else [])


def test_a_fresh_process_gives_the_same_variants() -> None:
    visitors = [f"v{i}" for i in range(200)]
    here = [pick_by_weight("shop", v, WEIGHTED).key for v in visitors]
    script = (
        "import json, sys\n"
        "from abconv.assignment import pick_by_weight\n"
        "from tests.test_assignment import WEIGHTED\n"
        "print(json.dumps([pick_by_weight('shop', f'v{i}', WEIGHTED).key for i in range(200)]))\n"
    )
    env_hashseed = {"PYTHONHASHSEED": "12345"}  # hash() randomisation must not matter
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True,
        cwd=Path(__file__).parents[1], env={**_environ(), **env_hashseed},
    )  # fmt: skip
    assert json.loads(out.stdout) == here


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def test_100k_visitors_split_by_weight() -> None:
    counts = {"a": 0, "b": 0, "c": 0}
    for i in range(100_000):
        counts[pick_by_weight("split-test", f"visitor-{i}", WEIGHTED).key] += 1
    expected = [25_000, 50_000, 25_000]
    # Chi-square goodness of fit; p > 0.001 fails falsely one run in a thousand.
    assert stats.chisquare(list(counts.values()), expected).pvalue > 0.001


def test_traffic_share_is_respected() -> None:
    included = sum(in_traffic("shop", f"v{i}", 0.3) for i in range(20_000))
    # Binomial(20000, 0.3): sd ≈ 64.8; 3.29 sd is a 0.1 % false failure rate.
    assert abs(included - 6_000) < 3.29 * 64.8


def test_raising_traffic_never_moves_an_included_visitor() -> None:
    low, high = shop(traffic=0.2), shop(traffic=0.9)
    for i in range(5_000):
        before = assign(low, f"v{i}")
        if before.reason is Reason.ASSIGNED:
            after = assign(high, f"v{i}")
            assert after.reason is Reason.ASSIGNED
            assert after.variant.key == before.variant.key


def test_traffic_and_variant_hashes_are_independent() -> None:
    # Among visitors inside a 50 % traffic share, variants still split 1:1.
    experiment = shop(traffic=0.5)
    inside = [assign(experiment, f"v{i}") for i in range(20_000)]
    picked = [a.variant.key for a in inside if a.reason is Reason.ASSIGNED]
    trial = picked.count("trial")
    assert stats.binomtest(trial, len(picked), 0.5).pvalue > 0.001


@pytest.mark.parametrize(
    "user_agent",
    [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0)",
        "facebookexternalhit/1.1",
        "Mozilla/5.0 HeadlessChrome/120.0",
        "Mozilla/5.0 (compatible; AhrefsBot/7.0)",
    ],
)
def test_bots_are_recognised(user_agent: str) -> None:
    assert is_bot(user_agent)


@pytest.mark.parametrize(
    "user_agent",
    [
        None,
        "",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0 Safari/537.36",
        "curl/8.5.0",
    ],
)
def test_people_and_server_side_callers_are_not_bots(user_agent: str | None) -> None:
    assert not is_bot(user_agent)


def test_bots_get_content_but_are_not_recorded() -> None:
    decision = assign(shop(), "crawler-1", bot=True)
    assert decision.reason is Reason.BOT and not decision.record


def test_force_serves_the_variant_without_recording() -> None:
    decision = assign(shop(), "qa", force="guide")
    assert decision.variant.key == "guide" and not decision.record


def test_force_of_an_unknown_variant_is_an_error() -> None:
    with pytest.raises(ValueError, match="no variant 'nope'"):
        assign(shop(), "qa", force="nope")


def test_paused_serves_the_control_and_records_nothing() -> None:
    experiment = dataclasses.replace(shop(), status=Status.PAUSED)
    decisions = [assign(experiment, f"v{i}") for i in range(50)]
    assert {d.variant.key for d in decisions} == {"trial"}
    assert not any(d.record for d in decisions)


def test_concluded_serves_the_winner_to_everyone() -> None:
    experiment = dataclasses.replace(shop(), status=Status.CONCLUDED, winner="guide")
    decisions = [assign(experiment, f"v{i}") for i in range(50)]
    assert {d.variant.key for d in decisions} == {"guide"}
    assert not any(d.record for d in decisions)


def test_a_small_weight_gets_its_small_share() -> None:
    variants = [Variant("big", 99, None, None, None), Variant("small", 1, None, None, None)]
    picked = [pick_by_weight("w", f"v{i}", variants).key for i in range(20_000)]
    assert 100 < picked.count("small") < 300  # expected 200, sd ≈ 14
