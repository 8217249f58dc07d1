"""What an experiment file describes, as frozen values (no Flask, no database).

:mod:`abconv.experiments.files` builds these from TOML and
:mod:`abconv.experiments` keeps the current ones of a folder; everything else
reads them. Values are validated once, when the file is loaded, so code that
holds an :class:`Experiment` may rely on the rules documented in
the README (section "Experiment files") (at least two variants, exactly one primary goal,
``control`` and ``winner`` naming variants, ...).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from abconv.analysis_settings import ANALYSIS_DEFAULTS, AnalysisSettings
from abconv.vocabulary import ExperimentKind, GoalKind, Status

__all__ = [
    "ANALYSIS_DEFAULTS",
    "AnalysisSettings",
    "Experiment",
    "ExperimentFileError",
    "Goal",
    "Problem",
    "Variant",
]


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment.

    Exactly the field of the experiment's kind is set: ``content`` for
    ``cta`` (a JSON-serialisable table; ``page`` variants may carry one too,
    for their template), ``template`` for ``page`` (relative to
    ``templates/``, e.g. ``"landing/pricing-a.html"``; its existence is
    checked when rendering), ``url`` for ``redirect``. ``content`` is shared
    by every request: read it, never mutate it.
    """

    key: str
    weight: float  # relative, > 0; weights need not sum to 1
    content: dict[str, Any] | None
    template: str | None
    url: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # a deep copy: content stays untouched


@dataclass(frozen=True)
class Goal:
    """A conversion the experiment counts; ``value``: its events carry money.

    ``max_value`` bounds one event's value (larger ones are refused at the
    door); ``cap`` bounds a visitor's total value on the goal in the results
    (larger totals count as ``cap``). Both are ``None`` when not set, and set
    only on goals with ``value``. ``guard`` (hard goals only; soft goals keep
    ``True`` and never guard): whether a winner on a soft primary goal must
    first show it is not worse on this goal (README, "Decision rules").
    ``count``: every conversion event counts, not only the visitor's first
    (README, "Count and ratio metrics").
    """

    key: str
    kind: GoalKind
    value: bool
    primary: bool
    max_value: float | None = None
    cap: float | None = None
    guard: bool = True
    count: bool = False  # also analysed as conversion events per visitor

    def to_dict(self) -> dict[str, Any]:
        """As JSON data; ``guard`` is ``false`` on soft goals, which never guard."""
        guard = self.guard and self.kind is GoalKind.HARD
        return {**asdict(self), "kind": str(self.kind), "guard": guard}


@dataclass(frozen=True)
class Experiment:
    """One experiment file, validated. ``path`` is the file it came from."""

    key: str
    name: str
    hypothesis: str
    status: Status
    kind: ExperimentKind
    traffic: float
    control: str
    winner: str | None
    variants: tuple[Variant, ...]
    goals: tuple[Goal, ...]
    analysis: AnalysisSettings
    path: str
    # ``engagement = true``: the snippet reports the built-in soft goal "engaged"
    # (already among ``goals``), and the bounce rate is 1 - its rate.
    engagement: bool = False
    # Mutual exclusion (README, "Layers"): the layer whose traffic this
    # experiment shares, and the slot that orders its share; both None or both set.
    layer: str | None = None
    layer_slot: int | None = None
    # Where ``layer`` is written, for problems found across files (not part
    # of the definition: moving a line changes no experiment).
    layer_line: int | None = field(default=None, compare=False)
    # The variant a visitor sees whose stored variant the file no longer has
    # (README, "Phases"); None: the control.
    fallback: str | None = None

    def variant(self, key: str) -> Variant | None:
        """The variant called ``key``, or ``None`` when there is none."""
        return next((variant for variant in self.variants if variant.key == key), None)

    def goal(self, key: str) -> Goal | None:
        """The goal called ``key``, or ``None`` when the experiment does not count it."""
        return next((goal for goal in self.goals if goal.key == key), None)

    @property
    def fallback_variant(self) -> Variant:
        """What a visitor of a dropped arm sees: ``fallback``, else the control."""
        variant = self.variant(self.fallback or self.control)
        assert variant is not None  # validation: both name variants
        return variant

    @property
    def primary_goal(self) -> Goal:
        """The one goal marked primary (validation guarantees exactly one)."""
        return next(goal for goal in self.goals if goal.primary)

    def to_dict(self) -> dict[str, Any]:
        """The definition as JSON-able data, for ``GET /api/experiments/KEY``.

        ``file`` is the file's name only: the server's folders are nobody's
        business.
        """
        return {
            "key": self.key,
            "name": self.name,
            "hypothesis": self.hypothesis,
            "status": str(self.status),
            "kind": str(self.kind),
            "traffic": self.traffic,
            "control": self.control,
            "winner": self.winner,
            "variants": [variant.to_dict() for variant in self.variants],
            "goals": [goal.to_dict() for goal in self.goals],
            "analysis": self.analysis.to_dict(),
            "engagement": self.engagement,
            "layer": self.layer,
            "layer_slot": self.layer_slot,
            "fallback": self.fallback,
            "file": Path(self.path).name,
        }


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an experiment file (or folder).

    ``line`` is 1-based, or ``None`` when the parser cannot tell.
    """

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


class ExperimentFileError(Exception):
    """An experiment file breaks the rules; ``problems`` lists every one."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems
