"""Closed vocabularies shared by experiment files, statistics and the API.

Every value is matched exactly; error messages list the allowed values with
:func:`allowed`.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    CONCLUDED = "concluded"


class ExperimentKind(StrEnum):
    CTA = "cta"
    PAGE = "page"
    REDIRECT = "redirect"


class GoalKind(StrEnum):
    HARD = "hard"
    SOFT = "soft"


class Method(StrEnum):
    BAYESIAN = "bayesian"
    FREQUENTIST = "frequentist"
    SEQUENTIAL = "sequential"


class DecisionStatus(StrEnum):
    KEEP_RUNNING = "keep_running"
    WINNER = "winner"
    NO_DIFFERENCE = "no_difference"
    INVALID = "invalid"


class GuardrailStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    WAITING = "waiting"
    NOT_REQUIRED = "not_required"


def allowed(vocabulary: type[StrEnum]) -> str:
    """The allowed values as a phrase for error messages: ``"a", "b" or "c"``."""
    values = [f'"{member.value}"' for member in vocabulary]
    return ", ".join(values[:-1]) + " or " + values[-1] if len(values) > 1 else values[0]
