"""Statistics over seeds shared by every experiment: the 95% Student-t interval and its formatting.

For ``n`` finite values with mean ``x̄`` and sample standard deviation ``s`` (``ddof=1``), the 95%
interval is ``x̄ ± t_{0.975, n-1} s / sqrt(n)``; ``t`` from ``scipy.stats.t``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats


def t_quantile_975(df: int) -> float:
    """``t_{0.975, df}``, the two-sided 95% Student-t quantile (NaN for ``df < 1``)."""
    if df < 1:
        return math.nan
    return float(stats.t.ppf(0.975, df))


def finite(values) -> np.ndarray:
    """The finite entries of ``values`` (``None`` counts as missing), flattened to float64."""
    x = np.asarray([math.nan if v is None else v for v in np.asarray(values, dtype=object).ravel()], np.float64)
    return x[np.isfinite(x)]


def mean_ci(values) -> tuple[float, float, int]:
    """Mean, 95% t-interval half-width ``t_{0.975, n-1} s / sqrt(n)`` and count of the finite entries.

    No finite entry: ``(nan, nan, 0)``; one: ``(value, nan, 1)`` (no interval from one seed).
    """
    x = finite(values)
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    return float(x.mean()), t_quantile_975(n - 1) * float(x.std(ddof=1)) / math.sqrt(n), n


def fmt_ci(values, digits: int = 2) -> str:
    """``"mean ± half-width"`` over seeds (``n/a`` if no finite value, the mean alone for one)."""
    mean, half, n = mean_ci(values)
    if n == 0:
        return "n/a"
    if not math.isfinite(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def seed_stats(values) -> dict[str, Any]:
    """Mean, 95% t half-width (None for one seed) and IQM (``scipy.stats.trim_mean(x, 0.25)``) of the finite values."""
    mean, half, n = mean_ci(values)
    if n == 0:
        return {"n": 0, "mean": None, "ci95": None, "iqm": None}
    return {
        "n": n,
        "mean": mean,
        "ci95": half if math.isfinite(half) else None,
        "iqm": float(stats.trim_mean(finite(values), 0.25)),
    }


def fmt_number(value: float | None, digits: int = 2, missing: str = "n/a") -> str:
    """``value`` with ``digits`` decimals, ``missing`` for None / non-finite."""
    if value is None or not math.isfinite(value):
        return missing
    return f"{value:.{digits}f}"


def outcome_distance(goal_fractions, reference_shares) -> np.ndarray:
    """Total-variation distance, per seed, between a policy's outcome distribution over {each goal, no goal}
    and a reference's: ``1/2 sum_o |p(o) - p_ref(o)|``, in [0, 1]. ``goal_fractions``: ``(seeds, goals)``
    shares of episodes ending at each goal; ``reference_shares``: ``(goals,)``."""
    p = np.asarray(goal_fractions, np.float64)
    ref = np.asarray(reference_shares, np.float64)
    p = np.concatenate([p, 1.0 - p.sum(axis=1, keepdims=True)], axis=1)
    ref = np.concatenate([ref, [1.0 - ref.sum()]])
    return 0.5 * np.abs(p - ref[None]).sum(axis=1)


def reference_cells(reference: dict, coverage_share: float) -> dict[str, str]:
    """Table cells of the multigoal soft-optimal reference (``s2ac.experiments.multigoal.soft_optimal``;
    no seeds, so no intervals): its goal shares, goals covered (share >= ``coverage_share``), success
    rate and mean probe-state entropy."""
    shares = reference["goal_shares"]
    return {
        "shares": " / ".join(f"{s:.2f}" for s in shares),
        "covered": str(sum(s >= coverage_share for s in shares)),
        "success": f"{reference['success']:.3f}",
        "entropy": f"{np.mean(reference['probe_entropy']):.2f} (exact)",
    }


__all__ = [
    "finite",
    "fmt_ci",
    "fmt_number",
    "mean_ci",
    "outcome_distance",
    "reference_cells",
    "seed_stats",
    "t_quantile_975",
]
