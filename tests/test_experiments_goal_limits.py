"""Goals' `max_value` and `cap` in experiment files: optional, > 0, on value goals only."""

from __future__ import annotations

from pathlib import Path

import pytest

from abconv.experiments import load_experiment_file
from tests.test_experiments import VALID, assert_one_problem, edited, write

BUY_LIMITS = edited(VALID, "primary = true\n", "primary = true\nmax_value = 500\ncap = 2000.5\n")


def test_limits_load_into_the_goal_and_its_document(tmp_path: Path) -> None:
    experiment = load_experiment_file(write(tmp_path, BUY_LIMITS))
    buy, signup = experiment.goals
    assert (buy.max_value, buy.cap) == (500.0, 2000.5)
    assert (signup.max_value, signup.cap) == (None, None)
    document = experiment.to_dict()["goals"]
    assert (document[0]["max_value"], document[0]["cap"]) == (500.0, 2000.5)
    assert (document[1]["max_value"], document[1]["cap"]) == (None, None)


def test_without_limits_nothing_is_bounded(tmp_path: Path) -> None:
    buy = load_experiment_file(write(tmp_path, VALID)).goals[0]
    assert (buy.max_value, buy.cap) == (None, None)


@pytest.mark.parametrize("field", ["max_value", "cap"])
@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        ("0", "must be > 0, got 0"),
        ("-5", "must be > 0, got -5"),
        ('"100"', 'must be a number, got "100" (a string)'),
        ("true", "must be a number, got true (a boolean)"),
        ("inf", "must be a finite number, got inf"),
        ("nan", "must be a finite number, got nan"),
    ],
)
def test_a_limit_must_be_a_finite_number_above_zero(
    tmp_path: Path, field: str, written: str, fragment: str
) -> None:
    text = edited(VALID, "primary = true\n", f"primary = true\n{field} = {written}\n")
    assert_one_problem(write(tmp_path, text), 21, f'goal "buy": {field} {fragment}')


@pytest.mark.parametrize("field", ["max_value", "cap"])
@pytest.mark.parametrize("value_line", ["", "value = false\n"], ids=["default", "false"])
def test_a_limit_needs_value_true(tmp_path: Path, field: str, value_line: str) -> None:
    text = edited(VALID, 'kind = "soft"\n', f'kind = "soft"\n{value_line}{field} = 10\n')
    line = 25 if value_line == "" else 26
    assert_one_problem(write(tmp_path, text), line, f'goal "signup": {field} needs value = true')
