"""Group-sequential testing with Lan-DeMets alpha spending, looked at once a day.

With ``method = "sequential"`` and daily looks in the input, the primary
goal is tested with a group-sequential design instead of a confidence
sequence: the experiment's plan (:mod:`abconv.stats.planning`) fixes the
information it is meant to reach, each look (the end of a UTC day) has the
information fraction ``t = n / n_planned`` (``n`` the harmonic mean of the
two arms' visitors, so unequal arms count for what they are worth), and a
spending function says how much of the level may have been spent by ``t``.
The two-sided ``alpha`` is split between the two sides (the analysis puts
``UPPER_ALPHA_SHARE`` of it on "the treatment wins"), and look ``k`` gets an
upper critical value ``c_u,k`` and a lower one ``c_l,k`` for which, with no
effect, the chances of a first crossing ``Z_k >= c_u,k`` and ``Z_k <=
-c_l,k`` there are exactly what each side's spending adds since ``t_{k-1}``.
An equal split is the usual symmetric design, ``|Z_k| >= c_k``.  However
often the page is read, the looks are the days: reading 100 times a day
spends nothing more.

The critical values come from the recursive numerical integration of
Armitage, McPherson & Rowe (1969): on the information scale the score
``W(t) = Z sqrt(t)`` is a Brownian motion, so the density of ``W`` at look
``k`` among the paths that have not crossed yet is the density at look
``k - 1`` (on ``-c_l sqrt(t_{k-1}) < w < c_u sqrt(t_{k-1})``) convolved with the normal
increment of variance ``t_k - t_{k-1}``.  Densities live on a grid over the
continuation region (Simpson's rule, spacing a quarter of the increments'
standard deviation, as Jennison & Turnbull recommend a grid fine on the
increment's scale); each ``c_k`` is the root of a crossing probability.

Spending: Pocock-type, ``alpha ln(1 + (e - 1) t)`` (Lan & DeMets 1983), the
default: it spends early, which is what an experiment read every day for
a month needs (the comparison with the others is in the README), and
O'Brien-Fleming-type, ``4 - 4 Phi(z_{1-alpha/4} / sqrt(t))``, for tests.
Beyond the plan (``t > 1``), the spending is ``alpha(1) = alpha``: the first
look that reaches the plan spends what is left (with the correlation of its
real information, so the level is exact), and later looks spend nothing
(``c = inf``): the verdict of that final look stands.

References
----------
.. [1] Armitage, P., McPherson, C. K. & Rowe, B. C. (1969). Repeated
   significance tests on accumulating data. JRSS A 132(2), 235-244.
.. [2] Lan, K. K. G. & DeMets, D. L. (1983). Discrete sequential boundaries
   for clinical trials. Biometrika 70(3), 659-663.
.. [3] Jennison, C. & Turnbull, B. W. (2000). Group Sequential Methods with
   Applications to Clinical Trials, chapters 7 (error spending) and 19
   (numerical computations).
.. [4] Pocock, S. J. (1977). Group sequential methods in the design and
   analysis of clinical trials. Biometrika 64(2), 191-199;
   O'Brien, P. C. & Fleming, T. R. (1979). A multiple testing procedure for
   clinical trials. Biometrics 35(3), 549-556.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

Spending = Callable[[float, float], float]
"""``spending(t, alpha)``: the two-sided level spent by information fraction ``t`` (a side of
level ``a`` spends ``spending(t, 2 a) / 2``)."""

GRID_PER_SD = 4
"""Grid points per standard deviation of the increment between two looks."""

MAX_NODES = 1201
"""Most grid points at one look (very many tiny looks get a coarser grid)."""

MAX_LOOKS = 3660
"""Most looks one analysis accepts (ten years of days)."""

NOTHING = 1e-12
"""A spending increment below this is treated as zero: the look cannot reject."""

Floats = npt.NDArray[np.float64]


def pocock_spending(t: float, alpha: float) -> float:
    """Lan-DeMets Pocock-type spending, ``alpha ln(1 + (e - 1) min(t, 1))``."""
    return alpha * math.log1p((math.e - 1.0) * min(max(t, 0.0), 1.0))


def obrien_fleming_spending(t: float, alpha: float) -> float:
    """Lan-DeMets O'Brien-Fleming-type spending, two-sided as two one-sided halves:
    ``4 - 4 Phi(z_{1-alpha/4} / sqrt(min(t, 1)))``."""
    t = min(max(t, 0.0), 1.0)
    if t == 0.0:
        return 0.0
    z = float(special.ndtri(1.0 - alpha / 4.0))
    return 4.0 * float(special.ndtr(-z / math.sqrt(t)))


SPENDING: dict[str, Spending] = {
    "pocock": pocock_spending,
    "obrien_fleming": obrien_fleming_spending,
}
DEFAULT_SPENDING = "pocock"

UPPER_ALPHA_SHARE = 0.7
"""Share of the two-sided ``alpha`` spent on "the treatment wins" (the rest on
"the control wins"): a shipping decision is the one claim that changes the
product, while the lower crossing keeps the control, as ``no_difference`` and
the end of the plan do (README, "Sequential testing", gives the reasoning)."""


@dataclass
class _State:
    """Sub-density of ``W`` among the paths still running: nodes and their weights.

    ``weights`` already hold the quadrature weight times the density, so
    ``sum(weights)`` is the probability of still running.
    """

    nodes: Floats
    weights: Floats
    time: float


def _start() -> _State:
    return _State(np.zeros(1), np.ones(1), 0.0)


def _crossing(
    state: _State, upper: float, lower: float, sd: float, shift: float
) -> tuple[float, float]:
    """P(first crossing at or above ``upper``), P(at or below ``-lower``) at the next look."""
    mean = state.nodes + shift
    up = float(np.dot(state.weights, special.ndtr((mean - upper) / sd)))
    down = float(np.dot(state.weights, special.ndtr((-lower - mean) / sd)))
    return up, down


def _advance(
    state: _State, time: float, upper: float, lower: float, shift: float, next_sd: float
) -> _State:
    """The sub-density at ``time`` on ``-lower < w < upper`` (Simpson nodes)."""
    sd = math.sqrt(time - state.time)
    mean = state.nodes + shift
    high = upper if math.isfinite(upper) else float(np.max(mean)) + 9.0 * sd
    low = -lower if math.isfinite(lower) else float(np.min(mean)) - 9.0 * sd
    if high <= low:  # one side took everything: no path runs on
        return _State(np.zeros(1), np.zeros(1), time)
    spacing = min(sd, next_sd) / GRID_PER_SD
    intervals = max(2, 2 * math.ceil((high - low) / (2.0 * spacing)))  # even, for Simpson
    intervals = min(intervals, MAX_NODES - 1)
    step = (high - low) / intervals
    nodes = np.arange(intervals + 1, dtype=np.float64) * step + low
    simpson = np.full(intervals + 1, 2.0 * step / 3.0)
    simpson[1:-1:2] = 4.0 * step / 3.0
    simpson[0] = simpson[-1] = step / 3.0
    kernel = np.exp(-0.5 * ((nodes[:, None] - mean[None, :]) / sd) ** 2) / (
        sd * math.sqrt(2.0 * math.pi)
    )
    density = kernel @ state.weights
    return _State(nodes, density * simpson, time)


def _checked_fractions(fractions: Sequence[float]) -> list[float]:
    if not fractions:
        raise ValueError("need at least one look")
    if len(fractions) > MAX_LOOKS:
        raise ValueError(f"at most {MAX_LOOKS} looks, got {len(fractions)}")
    previous = 0.0
    for t in fractions:
        if not math.isfinite(t) or t <= previous:
            raise ValueError(f"information fractions must increase from 0, got {list(fractions)}")
        previous = t
    return list(fractions)


def _checked_share(upper_share: float) -> float:
    if not 0.0 < upper_share < 1.0:
        raise ValueError(f"upper_share must be in (0, 1), got {upper_share}")
    return upper_share


def _next_sd(fractions: Sequence[float], k: int) -> float:
    """Standard deviation of the increment after look ``k`` (its own after the last)."""
    if k + 1 < len(fractions):
        return math.sqrt(fractions[k + 1] - fractions[k])
    return math.sqrt(fractions[k] - (fractions[k - 1] if k else 0.0))


def spending_boundaries(
    fractions: Sequence[float], alpha: float, spending: Spending = pocock_spending
) -> list[float]:
    """Two-sided symmetric critical values ``c_k`` (z scale) at information ``fractions``.

    ``fractions`` increase; those above 1 spend nothing more than
    ``spending(1, alpha)``.  ``inf`` where a look has nothing to spend.

    References
    ----------
    Lan & DeMets (1983); Armitage, McPherson & Rowe (1969); Jennison &
    Turnbull (2000), section 19.2.
    """
    return last_look(fractions, alpha, 0.0, spending).boundaries


@dataclass(frozen=True)
class LastLook:
    """The design's critical values and the stage-wise p-value of ``z`` at the last look.

    ``boundaries`` are the upper critical values ``c_u,k`` ("the treatment
    wins" when ``Z_k >= c_u,k``), ``lower`` the lower ones ``c_l,k`` ("the
    control wins" when ``Z_k <= -c_l,k``); equal in a symmetric design.
    """

    boundaries: list[float]
    lower: list[float]
    p_value: float

    @property
    def boundary(self) -> float:
        """The last look's upper critical value; ``inf`` once that side has spent everything."""
        return self.boundaries[-1]

    @property
    def lower_boundary(self) -> float:
        """The last look's lower critical value (a positive number: the bound is ``-c_l``)."""
        return self.lower[-1]


def last_look(
    fractions: Sequence[float],
    alpha: float,
    z: float,
    spending: Spending = pocock_spending,
    upper_share: float = 0.5,
) -> LastLook:
    """Critical values at ``fractions`` and the p-value of ``z`` seen at the last one.

    The two-sided ``alpha`` is split: ``upper_share * alpha`` for "the
    treatment wins" (``Z_k >= c_u,k``), the rest for "the control wins"
    (``Z_k <= -c_l,k``).  Each side spends its level with the same shape,
    ``spending(t, 2 a) / 2`` for a side of level ``a`` (so ``upper_share =
    0.5`` is the symmetric two-sided design), and each ``c_k`` is the root
    of its own side's first-crossing probability, with the paths that ran
    on through ``(-c_l, c_u)`` at every earlier look.

    The p-value (stage-wise ordering) is one-sided on the side of ``z``,
    divided by that side's share of ``alpha`` to be on the scale of the
    two-sided level: for ``z >= 0``, the chance under no effect of an upper
    crossing at an earlier look plus that of reaching the last look and
    seeing ``Z >= z`` there, over ``upper_share``.  It is at most
    ``spending(t_K, alpha)`` exactly when ``z >= c_u,K`` (``z <= -c_l,K``
    below 0); in a symmetric design it is the two-sided stage-wise p-value.

    References
    ----------
    Lan & DeMets (1983); Armitage, McPherson & Rowe (1969); Fairbanks, K. &
    Madsen, R. (1982). P values for tests using a repeated significance test
    design. Biometrika 69(1), 69-74; Jennison & Turnbull (2000), sections
    8.4, 9.1 and 19.2.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    times = _checked_fractions(fractions)
    shares = (_checked_share(upper_share), 1.0 - upper_share)
    state = _start()
    spent = [0.0, 0.0]
    uppers: list[float] = []
    lowers: list[float] = []
    p_value = 1.0
    for k, t in enumerate(times):
        sd = math.sqrt(t - state.time)
        root = math.sqrt(t)
        if k == len(times) - 1:
            side = 0 if z >= 0.0 else 1
            beyond = _crossing(state, abs(z) * root, abs(z) * root, sd, 0.0)[side]
            p_value = min(1.0, (spent[side] + beyond) / shares[side])
        bounds = []
        for side, sign in enumerate((1.0, -1.0)):
            previous = (uppers, lowers)[side]
            hint = previous[-1] * root if previous else math.nan
            target = spending(t, 2.0 * alpha * shares[side]) / 2.0 - spent[side]
            bounds.append(_spend(state.nodes * sign, state.weights, sd, target, hint))
        upper, lower = bounds
        exits = _crossing(state, upper, lower, sd, 0.0)
        for side in (0, 1):
            if math.isfinite(bounds[side]):
                spent[side] += exits[side]
        uppers.append(upper / root)
        lowers.append(lower / root)
        if k < len(times) - 1:
            state = _advance(state, t, upper, lower, 0.0, _next_sd(times, k))
    return LastLook(uppers, lowers, p_value)


def _spend(nodes: Floats, weights: Floats, sd: float, target: float, hint: float) -> float:
    """The bound ``b`` whose first-crossing chance ``P(W >= b)`` at the next look is ``target``.

    ``nodes`` and ``weights`` are the sub-density of the paths still running
    (negated for the lower side).  Newton's method on the crossing
    probability (its derivative is a sum of normal densities), from ``hint``
    (the previous look's critical value on this look's scale) when there is
    one, kept inside a bracket that every step narrows.  ``inf`` when there
    is nothing to spend.
    """
    if target <= NOTHING:
        return math.inf
    total = float(np.sum(weights))
    if target >= total:
        return -math.inf
    if math.isfinite(hint):
        bound = hint
    else:
        spread = math.sqrt(float(np.dot(weights, nodes**2)) / max(total, NOTHING) + sd * sd)
        bound = spread * float(special.ndtri(1.0 - target / total))
    low = float(np.min(nodes)) - 40.0 * sd
    high = float(np.max(nodes)) + 40.0 * sd
    for _ in range(100):
        gaps = (bound - nodes) / sd
        excess = float(np.dot(weights, special.ndtr(-gaps))) - target
        if abs(excess) <= 1e-9 * target:
            break
        if excess > 0.0:
            low = bound
        else:
            high = bound
        slope = -float(np.dot(weights, np.exp(-0.5 * gaps * gaps))) / (sd * math.sqrt(2 * math.pi))
        step = bound - excess / slope if slope < 0.0 else math.nan
        bound = step if low < step < high else (low + high) / 2.0
        if high - low < 1e-10:
            break
    return bound


def exit_probabilities(
    fractions: Sequence[float],
    critical: Sequence[float],
    drift: float = 0.0,
    lower: Sequence[float] | None = None,
) -> list[tuple[float, float]]:
    """Per look, P(first crossing with ``Z_k >= c_k``), P(with ``Z_k <= -c_l,k``).

    ``critical`` holds the upper critical values, ``lower`` the lower ones
    (``critical`` again when ``None``: a symmetric design).  ``drift`` is
    ``theta`` of ``W(t) = theta t + B(t)``: the mean of ``Z`` at the planned
    information (``t = 1``); 0 is the null hypothesis.

    References
    ----------
    Armitage, McPherson & Rowe (1969); Jennison & Turnbull (2000), section 19.2.
    """
    times = _checked_fractions(fractions)
    lows = critical if lower is None else lower
    if len(critical) != len(times) or len(lows) != len(times):
        raise ValueError("one critical value per look")
    state, exits = _start(), []
    for k, (t, c_u, c_l) in enumerate(zip(times, critical, lows, strict=True)):
        sd = math.sqrt(t - state.time)
        shift = drift * (t - state.time)
        upper, low = c_u * math.sqrt(t), c_l * math.sqrt(t)
        exits.append(_crossing(state, upper, low, sd, shift))
        state = _advance(state, t, upper, low, shift, _next_sd(times, k))
    return exits
