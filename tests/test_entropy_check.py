"""The entropy-check harness: its ground truth against analytic entropies, its estimators against
the sampler's own accounting, the command's registration, and the log-density names."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2ac import stein
from s2ac.experiments.entropy_check import ESTIMATORS
from s2ac.experiments.entropy_check.run import check_cell, run_sampler, three_mode_energy
from s2ac.experiments.estimators import knn_entropy


@pytest.mark.parametrize("d", [1, 2, 3, 6])
def test_knn_matches_analytic_gaussian_entropy(d):
    with jax.enable_x64(True):
        scales = jnp.linspace(0.5, 1.5, d)
        x = jax.random.normal(jax.random.PRNGKey(10 + d), (2000, d), jnp.float64) * scales
        analytic = 0.5 * d * math.log(2 * math.pi * math.e) + float(jnp.sum(jnp.log(scales)))
        # measured errors: 0.000, -0.026, -0.003, +0.056 nats
        assert abs(float(knn_entropy(x, 3)) - analytic) < 0.1


def test_three_mode_energy_is_a_normalised_density():
    g = jnp.linspace(-5, 5, 401)
    grid = jnp.stack(jnp.meshgrid(g, g), -1).reshape(-1, 2)
    mass = float(jnp.sum(jnp.exp(jax.vmap(three_mode_energy(2))(grid)))) * float(g[1] - g[0]) ** 2
    np.testing.assert_allclose(mass, 1.0, rtol=1e-3)


@pytest.mark.parametrize("rule", ["adaptive", "adaptive_bound"])
def test_estimators_reproduce_the_samplers_own_accounting(rule):
    """Each registered estimator, accounted after the fact along a trajectory, equals the sampler run
    in that density mode (same particles, same steps): the harness measures the package's densities."""
    with jax.enable_x64(True):
        traj = run_sampler(2, 4, 3, 0.5, seed=1, step_control=rule)
        for name, fn in ESTIMATORS.items():
            if name in stein.PROBE_MODES:  # it runs the sampler itself (per-set probes); tests/test_probe_density.py
                continue
            res = stein.svgd_sample_batched(
                jax.vmap(jax.vmap(jax.grad(three_mode_energy(2)))), traj.particles[:, 0], traj.log_q0,
                steps=3, step_size=0.1, alpha=1.0, log_density=name, step_control=rule, target_margin=0.5,
            )  # fmt: skip
            np.testing.assert_allclose(np.asarray(fn(traj))[:, -1], res.log_q, rtol=1e-9, atol=1e-9, err_msg=name)


def test_check_cell_rows_at_the_initial_distribution_are_analytic():
    """L = 0: every estimator is -E log q0 = the analytic entropy of N(0, I) (up to sampling), and so is k-NN."""
    with jax.enable_x64(True):
        (row,) = check_cell(2, 600, (0,), 0.5)
    analytic = math.log(2 * math.pi * math.e)
    for name in ESTIMATORS:
        assert abs(row[name] - analytic) < 0.08, name
    assert abs(row["knn"] - analytic) < 0.15


def test_entropy_check_is_a_reproduce_experiment():
    from s2ac.cli import EXPERIMENTS

    assert "entropy-check" in EXPERIMENTS


def test_earlier_log_density_names_are_accepted_and_unknown_ones_name_close_matches():
    assert stein.canonical_log_density("closed_form") == "mean_field"
    assert stein.canonical_log_density("exact") == "per_particle"
    assert stein.canonical_log_density("closed_form_self") == "per_particle_trace"
    assert stein.canonical_log_density("exact_noself") == "mean_field_logdet"
    with pytest.raises(ValueError, match="mean_field"):
        stein.canonical_log_density("mean_feld")
    from s2ac.agents.s2ac import S2ACConfig

    S2ACConfig(log_density="exact").validate()
    S2ACConfig(log_density="per_particle").validate()
    with pytest.raises(ValueError, match="log_density"):
        S2ACConfig(log_density="exactly").validate()
    a = jax.random.normal(jax.random.PRNGKey(0), (4, 2))
    old = stein.svgd_sample(lambda x: -x, a, jnp.zeros(4), steps=2, step_size=0.1, log_density="closed_form")
    new = stein.svgd_sample(lambda x: -x, a, jnp.zeros(4), steps=2, step_size=0.1, log_density="mean_field")
    np.testing.assert_array_equal(old.log_q, new.log_q)
