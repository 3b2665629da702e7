"""The shared 95% t-interval (scipy.stats.t), its formatting, and the one machine-info helper."""

import math

import numpy as np
import pytest
from scipy import stats

from s2ac.experiments.stats import fmt_ci, fmt_number, mean_ci, seed_stats
from s2ac.machine import machine_info, pick


def test_seed_stats_is_the_t_interval_and_the_iqm_of_the_finite_values():
    x = [0.2, None, 0.5, math.nan, 0.45, 0.9, 0.1]
    out = seed_stats(x)
    kept = np.array([0.2, 0.5, 0.45, 0.9, 0.1])
    lo, hi = stats.t.interval(0.95, kept.size - 1, loc=kept.mean(), scale=stats.sem(kept))
    assert out["n"] == 5 and out["mean"] == pytest.approx(kept.mean())
    assert out["ci95"] == pytest.approx((hi - lo) / 2) and out["iqm"] == pytest.approx(stats.trim_mean(kept, 0.25))
    assert seed_stats([1.0])["ci95"] is None and seed_stats([None])["mean"] is None
    assert mean_ci(kept)[1] == pytest.approx(out["ci95"])
    assert fmt_ci([0.5]) == "0.50" and fmt_number(None) == "n/a" and fmt_number(1.234, 1) == "1.2"


def test_machine_info_has_every_key_the_reports_pick():
    info = machine_info(matmul=(8, 16), matmul_repeats=2)
    keys = ("processor", "cpu_model", "arch", "cpu_count", "platform", "jax", "backend", "device_kind")
    assert list(pick(info, keys)) == list(keys)
    assert info["cpu_count"] >= 1 and info["device_count"] >= 1 and info["matmul_gflops_per_s"] > 0
    assert "matmul_gflops_per_s" not in machine_info()
