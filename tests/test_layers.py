"""Layers: shares laid out by slot, one experiment per visitor, stable when one is added."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from scipy import stats

from abconv.assignment import Reason, assign, in_layer_share, unit_hash
from abconv.cli import cli
from abconv.experiments import (
    Experiment,
    ExperimentFileError,
    ExperimentRegistry,
    Layer,
    allocate_layers,
    check_directory,
)
from abconv.experiments.files import parse_experiment
from abconv.vocabulary import Status
from tests.conftest import experiment_toml

IDS = [f"visitor-{i}" for i in range(100_000)]


def layered_toml(
    key: str, slot: int, traffic: float, layer: str = "homepage", **fields: object
) -> str:
    """The shop experiment of ``tests/conftest.py`` as ``key``, in ``layer`` at ``slot``."""
    lines = f'layer = "{layer}"\nlayer_slot = {slot}\n\n[[variants]]'
    return experiment_toml(key, traffic=traffic, **fields).replace("[[variants]]", lines, 1)


def layered(key: str, slot: int, traffic: float, **fields: object) -> Experiment:
    return parse_experiment(layered_toml(key, slot, traffic, **fields), f"{key}.toml")


def write_layered(folder: Path, key: str, slot: int, traffic: float, **fields: object) -> Path:
    path = folder / f"{key}.toml"
    path.write_text(layered_toml(key, slot, traffic, **fields))
    return path


def where(experiments: list[Experiment], visitor: str) -> list[tuple[str, str]]:
    """(experiment, variant) of each experiment of the layer that enrols ``visitor``."""
    layers, _ = allocate_layers(experiments)
    found = []
    for experiment in experiments:
        assert experiment.layer is not None
        decision = assign(experiment, visitor, layer=layers[experiment.layer])
        if decision.record:
            found.append((experiment.key, decision.variant.key))
    return found


# -- shares --------------------------------------------------------------------


def test_shares_are_laid_end_to_end_in_slot_order() -> None:
    # Slots decide the order, not keys or file order.
    layers, problems = allocate_layers(
        [layered("zeta", 1, 0.2), layered("alpha", 3, 0.1), layered("mid", 2, 0.5)]
    )
    assert problems == []
    layer = layers["homepage"]
    assert layer.members == ("zeta", "mid", "alpha")
    assert [(s.experiment, s.start, s.end) for s in layer.shares] == [
        ("zeta", 0.0, 0.2),
        ("mid", 0.2, 0.7),
        ("alpha", 0.7, pytest.approx(0.8)),
    ]
    # Each range ends exactly where the next starts: no gap, no overlap.
    assert all(a.end == b.start for a, b in zip(layer.shares, layer.shares[1:], strict=False))


def test_shares_within_z_3_29_of_their_targets_over_100k_ids_and_nobody_in_two() -> None:
    experiments = [layered("hero", 1, 0.2), layered("button", 2, 0.5), layered("footer", 3, 0.1)]
    counts: Counter[str] = Counter()
    for visitor in IDS:
        found = where(experiments, visitor)
        assert len(found) <= 1, (visitor, found)
        counts[found[0][0] if found else "none"] += 1
    n = len(IDS)
    for key, target in {"hero": 0.2, "button": 0.5, "footer": 0.1, "none": 0.2}.items():
        # Binomial(n, target): |z| > 3.29 happens one run in a thousand by chance.
        z = (counts[key] - n * target) / math.sqrt(n * target * (1 - target))
        assert abs(z) < 3.29, (key, counts[key], z)


def test_variants_still_split_by_weight_inside_a_share() -> None:
    experiments = [layered("hero", 1, 0.5), layered("button", 2, 0.5)]
    picked = [found for v in IDS[:20_000] for found in where(experiments, v)]
    hero = [variant for key, variant in picked if key == "hero"]
    assert len(picked) == 20_000  # the shares fill the layer: everybody is in one
    # The layer hash and the variant hash are independent: 1:1 inside hero's share.
    assert stats.binomtest(hero.count("trial"), len(hero), 0.5).pvalue > 0.001


def test_the_layer_hash_is_its_own_salt_not_the_traffic_hash() -> None:
    layer = Layer("homepage")
    assert layer.salt == "homepage:layer"
    visitors = IDS[:2000]
    own = [unit_hash("homepage:layer", v) for v in visitors]
    traffic = [unit_hash("hero:traffic", v) for v in visitors]
    assert stats.pearsonr(own, traffic).pvalue > 0.001  # unrelated numbers


def test_adding_an_experiment_at_the_next_slot_moves_no_enrolled_visitor() -> None:
    before = [layered("hero", 1, 0.4), layered("button", 2, 0.3)]
    after = [*before, layered("footer", 3, 0.3)]
    joined = 0
    for visitor in IDS[:20_000]:
        was, now = where(before, visitor), where(after, visitor)
        if was:
            assert now == was, visitor
        elif now:
            joined += 1
            assert now[0][0] == "footer"  # the newcomer takes only the free room
    assert joined > 0


def test_a_paused_draft_or_concluded_experiment_keeps_its_share() -> None:
    running = [layered("hero", 1, 0.4), layered("button", 2, 0.3), layered("footer", 3, 0.3)]
    for status in (Status.PAUSED, Status.DRAFT, Status.CONCLUDED):
        fields = {"status": str(status)}
        if status is Status.CONCLUDED:
            # a concluded file names its winner; the shop template has none
            stopped = dataclasses.replace(running[1], status=status, winner="guide")
        else:
            stopped = layered("button", 2, 0.3, **fields)
        layers, _ = allocate_layers([running[0], stopped, running[2]])
        layer = layers["homepage"]
        assert layer.share("footer") == allocate_layers(running)[0]["homepage"].share("footer")
        for visitor in IDS[:3000]:
            if in_layer_share(layer, "button", visitor):  # button's visitors stay out of the others
                assert assign(running[0], visitor, layer=layer).reason is Reason.LAYER
                assert assign(running[2], visitor, layer=layer).reason is Reason.LAYER
                assert not assign(stopped, visitor, layer=layer).record


def test_an_experiment_in_a_layer_needs_its_layer() -> None:
    with pytest.raises(ValueError, match="needs its layer 'homepage'"):
        assign(layered("hero", 1, 0.5), "alice")
    with pytest.raises(ValueError, match="needs its layer 'homepage'"):
        assign(layered("hero", 1, 0.5), "alice", layer=Layer("other"))


def test_a_layer_that_does_not_know_the_experiment_admits_nobody() -> None:
    hero = layered("hero", 1, 1.0)
    assert {assign(hero, v, layer=Layer("homepage")).reason for v in IDS[:200]} == {Reason.LAYER}


def test_force_and_bots_behave_as_outside_a_layer() -> None:
    hero = layered("hero", 1, 1.0)
    layer = allocate_layers([hero])[0]["homepage"]
    assert assign(hero, "qa", force="guide", layer=layer).reason is Reason.FORCED
    assert assign(hero, "crawler", bot=True, layer=layer).reason is Reason.BOT


# -- problems across files ---------------------------------------------------------


def test_shares_past_1_refuse_the_experiments_that_end_past_it() -> None:
    hero, button, footer = layered("hero", 1, 0.8), layered("button", 2, 0.3), layered("f", 3, 0.1)
    layers, problems = allocate_layers([hero, button, footer])
    layer = layers["homepage"]
    # hero fits; button would end at 1.1; footer, after it, too (fixing button moves nobody).
    assert [s.experiment for s in layer.shares] == ["hero"]
    assert layer.members == ("hero", "button", "f")
    assert [(p.path, p.line) for p in problems] == [("button.toml", 8), ("f.toml", 8)]
    assert problems[0].message == (
        'layer "homepage": shares sum to 1.2, more than 1 ("hero" 0.8 (slot 1), '
        '"button" 0.3 (slot 2), "f" 0.1 (slot 3)); "button" would end at 1.1, '
        "so it enrols no new visitor until the shares fit"
    )
    assert not any(assign(button, v, layer=layer).record for v in IDS[:2000])


def test_shares_summing_to_exactly_1_in_decimals_fit() -> None:
    experiments = [layered("a", 1, 0.7), layered("b", 2, 0.2), layered("c", 3, 0.1)]
    layers, problems = allocate_layers(experiments)
    assert problems == [] and layers["homepage"].shares[-1].end == 1.0


def test_a_slot_taken_twice_refuses_the_later_key() -> None:
    layers, problems = allocate_layers([layered("b", 1, 0.3), layered("a", 1, 0.3)])
    assert [s.experiment for s in layers["homepage"].shares] == ["a"]
    assert [str(p) for p in problems] == [
        'b.toml:8: layer "homepage": layer_slot 1 is also "a"\'s; '
        '"b" enrols no new visitor until its slot is its own'
    ]


def test_layers_are_separate() -> None:
    layers, problems = allocate_layers(
        [layered("a", 1, 0.8), layered("b", 1, 0.8, layer="checkout")]
    )
    assert problems == [] and set(layers) == {"homepage", "checkout"}


def test_abconv_check_refuses_shares_past_1_with_file_and_line(tmp_path: Path) -> None:
    write_layered(tmp_path, "hero", 1, 0.8)
    write_layered(tmp_path, "button", 2, 0.3)
    result = CliRunner().invoke(cli, ["check", str(tmp_path)])
    assert result.exit_code == 1
    line = f'{tmp_path / "button.toml"}:8: layer "homepage": shares sum to 1.1, more than 1'
    assert line in result.output
    assert '"hero" 0.8 (slot 1), "button" 0.3 (slot 2)' in result.output
    assert "1 problem(s)" in result.output


def test_check_directory_returns_the_refused_experiments_with_the_problems(tmp_path: Path) -> None:
    write_layered(tmp_path, "hero", 1, 0.8)
    write_layered(tmp_path, "button", 2, 0.3)
    experiments, problems = check_directory(tmp_path)
    assert [e.key for e in experiments] == ["button", "hero"]
    assert [Path(p.path).name for p in problems] == ["button.toml"]


def test_the_registry_serves_a_refused_experiment_without_a_share(tmp_path: Path) -> None:
    write_layered(tmp_path, "hero", 1, 0.8)
    write_layered(tmp_path, "button", 2, 0.3)
    registry = ExperimentRegistry(tmp_path)
    assert registry.get("button") is not None
    assert registry.layer("homepage").share("button") is None
    assert registry.layer("homepage").share("hero") is not None
    assert [Path(p.path).name for p in registry.problems()] == ["button.toml"]
    assert registry.layer("nowhere") == Layer("nowhere")


# -- rules of one file -------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('layer = "homepage"', "layer needs layer_slot = N"),
        ("layer_slot = 2", 'layer_slot needs layer = "NAME"'),
        ('layer = "homepage"\nlayer_slot = 0', "layer_slot must be a whole number >= 1, got 0"),
        ('layer = "homepage"\nlayer_slot = 1.5', "layer_slot must be a whole number, got 1.5"),
        ('layer = "Home Page"\nlayer_slot = 1', "layer must be 1 to 64 lowercase letters"),
        ("layer = 3\nlayer_slot = 1", "layer must be a string, got 3 (a number)"),
    ],
)
def test_layer_fields_are_checked(lines: str, message: str) -> None:
    text = experiment_toml("hero").replace("[[variants]]", f"{lines}\n\n[[variants]]", 1)
    with pytest.raises(ExperimentFileError) as error:
        parse_experiment(text, "hero.toml")
    assert any(message in p.message and p.line is not None for p in error.value.problems), [
        str(p) for p in error.value.problems
    ]


def test_the_definition_names_its_layer() -> None:
    assert layered("hero", 2, 0.5).to_dict()["layer"] == "homepage"
    assert layered("hero", 2, 0.5).to_dict()["layer_slot"] == 2
    plain = parse_experiment(experiment_toml("hero"), "hero.toml").to_dict()
    assert plain["layer"] is None and plain["layer_slot"] is None


def test_the_registry_logs_a_layer_problem_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_layered(tmp_path, "hero", 1, 0.8)
    write_layered(tmp_path, "button", 2, 0.3)
    registry = ExperimentRegistry(tmp_path)
    with caplog.at_level("WARNING"):
        registry.refresh()
        registry.refresh()
    logged = [r.getMessage() for r in caplog.records if "shares sum to 1.1" in r.getMessage()]
    assert len(logged) == 1 and "button.toml:8" in logged[0]
