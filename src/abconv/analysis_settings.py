"""The ``[analysis]`` settings of an experiment, with DESIGN.md's defaults.

One definition for the experiment files (which read them from TOML) and for
the statistics (which read them from the ``abconv analyze`` input).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from abconv.vocabulary import Method


@dataclass(frozen=True)
class AnalysisSettings:
    """``max_expected_loss`` is in conversion-rate units (absolute), ``mde`` and
    ``guardrail_margin`` are relative, ``min_visitors`` is per variant."""

    method: Method = Method.BAYESIAN
    alpha: float = 0.05
    chance_to_win: float = 0.95
    max_expected_loss: float = 0.001
    min_visitors: int = 100
    mde: float = 0.10
    power: float = 0.8
    guardrail_margin: float = 0.125

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "method": str(self.method)}


ANALYSIS_DEFAULTS: dict[str, Any] = {
    field.name: field.default for field in fields(AnalysisSettings)
}
