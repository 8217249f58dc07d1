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


def test_guard_false_loads_and_reaches_the_analysis(tmp_path: Path) -> None:
    from abconv.results import analysis_input
    from abconv.store.counts import ResultCounts

    text = edited(VALID, "primary = true\n", "primary = true\nguard = false\n")
    experiment = load_experiment_file(write(tmp_path, text))
    assert [goal.guard for goal in experiment.goals] == [False, True]
    assert [goal["guard"] for goal in experiment.to_dict()["goals"]] == [False, False]
    counts = ResultCounts(visitors={"a": 10, "b": 10}, goals={}, days=[], pairs=[])
    goals = analysis_input(experiment, counts)["goals"]
    assert goals[0]["guard"] is False and "guard" not in goals[1]


def test_a_hard_goal_guards_by_default(tmp_path: Path) -> None:
    experiment = load_experiment_file(write(tmp_path, VALID))
    assert experiment.goals[0].guard and experiment.to_dict()["goals"][0]["guard"] is True


def test_guard_is_only_for_hard_goals(tmp_path: Path) -> None:
    text = edited(VALID, 'kind = "soft"\n', 'kind = "soft"\nguard = false\n')
    assert_one_problem(write(tmp_path, text), 25, 'goal "signup": guard is only for hard goals')
