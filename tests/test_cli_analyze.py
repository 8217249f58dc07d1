"""``abconv analyze FILE|-``: prints the results document, or ``error: ...`` and exit 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from scipy import stats

from abconv.cli import cli
from tests.test_stats_analysis import shop
from tests.test_stats_bayesian import beta_quadrature

COUNTS = {**shop(), "mde": 0.3}
"""A 30 % plan needs about 4,600 visitors per variant (Fleiss, alpha / 2 for two treatment
arms), fewer than the arms have, so the Bayesian rule may already decide."""


def counts_of_purchase() -> list[dict[str, Any]]:
    """The variants of COUNTS with their purchase counts (the primary goal)."""
    purchase = COUNTS["goals"][0]["counts"]
    return [{**v, "counts": purchase[v["key"]]} for v in COUNTS["variants"]]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_valid_file_prints_the_document(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "counts.json"
    path.write_text(json.dumps(COUNTS))
    result = runner.invoke(cli, ["analyze", str(path)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["experiment"] == "homepage-cta"
    # The data implies a winner, by the Bayesian rule with the default settings: every arm
    # is past min_visitors (100), the split matches the weights (scipy chisquare p = 0.95),
    # and guide (310/5020 against 250/5000 and 240/4990) is best with a chance above
    # chance_to_win (0.95) and an expected loss below max_expected_loss (0.001), both
    # computed here by scipy's quadrature, independently of abconv.stats.
    arms = [(v["visitors"], v["counts"]["conversions"]) for v in counts_of_purchase()]
    _, best, loss = beta_quadrature(arms)
    assert best[1] > 0.95 and loss[1] < 0.001 and stats.chisquare([5000, 5020, 4990]).pvalue > 0.9
    assert document["decision"]["status"] == "winner"
    assert document["decision"]["winner"] == "guide"
    assert [v["key"] for v in document["goals"][0]["variants"]] == ["trial", "guide", "video"]


def test_stdin(runner: CliRunner) -> None:
    result = runner.invoke(
        cli, ["analyze", "-"], input=json.dumps({**COUNTS, "method": "sequential"})
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["method"] == "sequential"


def test_invalid_input_exits_1_with_the_reason(runner: CliRunner) -> None:
    bad = json.loads(json.dumps(COUNTS))
    bad["goals"][0]["counts"]["guide"]["conversions"] = 6000
    result = runner.invoke(cli, ["analyze", "-"], input=json.dumps(bad))
    assert result.exit_code == 1
    assert "error: goals[0].counts.guide.conversions: 6000 exceeds visitors 5020" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("text", ["{not json", "", "[1, 2", "NaN"])
def test_not_json(runner: CliRunner, text: str) -> None:
    result = runner.invoke(cli, ["analyze", "-"], input=text)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")


def test_not_utf8(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "counts.json"
    path.write_bytes(b"\xff\xfe{\x00")
    result = runner.invoke(cli, ["analyze", str(path)])
    assert result.exit_code == 1
    assert "not valid JSON" in result.stderr


def test_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["analyze", str(tmp_path / "nope.json")])
    assert result.exit_code != 0
    assert "nope.json" in result.stderr


def test_a_missing_file_exits_1_with_the_reason(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["analyze", str(tmp_path / "nope.json")])
    assert result.exit_code == 1
    assert "nope.json" in result.output and "No such file" in result.output
