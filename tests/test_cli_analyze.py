"""``abconv analyze FILE|-``: prints the results document, or ``error: ...`` and exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from abconv.cli import cli
from tests.test_stats_analysis import shop

COUNTS = shop()


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
    assert document["decision"]["status"] in {"keep_running", "winner", "no_difference"}
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
