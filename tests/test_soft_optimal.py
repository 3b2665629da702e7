"""The soft-optimal multigoal reference (soft value iteration on a grid) against closed forms and symmetry."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2ac.envs import jax_env_for
from s2ac.envs.multigoal import MultiGoalSpec
from s2ac.experiments.multigoal import soft_optimal as so


def test_trapezoid_grid_integrates_the_interval_and_rejects_a_bad_spacing():
    nodes, weights = so.trapezoid_grid(-1.0, 1.0, 0.25)
    assert nodes.size == 9 and math.isclose(weights.sum(), 2.0)
    # Exact for a linear function, second order for a smooth one.
    assert math.isclose(np.sum(weights * (3 * nodes + 1)), 2.0, abs_tol=1e-12)
    with pytest.raises(ValueError, match="does not divide"):
        so.trapezoid_grid(-1.0, 1.0, 0.3)


def _gaussian_integral(k: float, cost: float, offset: float) -> float:
    """``integral_{-1}^{1} exp(-k (cost a^2 + (offset + a)^2)) da`` in closed form (completing the square)."""
    p = k * (cost + 1.0)  # coefficient of a^2
    mean = -offset / (cost + 1.0)
    rest = k * offset**2 - p * mean**2  # the constant left over
    scale = math.sqrt(math.pi / (4 * p))
    return math.exp(-rest) * scale * (math.erf(math.sqrt(p) * (1 - mean)) - math.erf(math.sqrt(p) * (-1 - mean)))


def test_one_step_soft_value_matches_the_gaussian_integral():
    """gamma = 0: V(s) = alpha log integral exp(c r(s, a) / alpha) da, with r = -cost ||a||^2 - ||s + a - g||^2
    from a state that cannot reach the (far) goal: a product of two truncated Gaussian integrals."""
    task = MultiGoalSpec(name="far", goals=((5.0, 4.0),), bound=2.0, start=(0.0, 0.0))
    reward_scale, alpha = 0.1, 2.0
    value = so.soft_value_iteration(task, reward_scale, alpha, gamma=0.0, spacing=0.05)
    k = reward_scale / alpha
    exact = alpha * sum(math.log(_gaussian_integral(k, task.action_cost, -g)) for g in task.goals[0])
    got = float(value.interpolate(jnp.zeros((1, 2)))[0])
    assert value.iterations <= 2 and abs(got - exact) < 1e-3 * abs(exact)


def test_policy_entropy_of_a_flat_q_is_the_log_area_of_the_action_box():
    """No reward and no future (gamma = 0): Q* = 0, pi* uniform on [-1, 1]^2, H = log 4."""
    task = jax_env_for("s2ac/MultiGoal3-v0")
    value = so.soft_value_iteration(task, reward_scale=0.0, alpha=1.0, gamma=0.0, spacing=0.5)
    entropy = np.asarray(so.policy_entropy(value, jnp.asarray(task.probe_states, jnp.float32)))
    np.testing.assert_allclose(entropy, math.log(4.0), atol=1e-5)


def test_backup_reaches_its_fixed_point():
    task = jax_env_for("s2ac/MultiGoal3-v0")
    value = so.soft_value_iteration(task, 0.1, 1.0, 0.99, spacing=0.5, tol=1e-5)
    assert value.residual < 1e-5
    pos = jnp.asarray([[0.0, 0.0], [1.0, -2.0], [-3.0, 2.5]], jnp.float32)
    _, logits = so.policy_logits(value, pos)
    again = value.alpha * jax.scipy.special.logsumexp(logits, axis=1)
    np.testing.assert_allclose(np.asarray(again), np.asarray(value.interpolate(pos)), atol=1e-4)


def test_symmetric_goals_get_equal_shares():
    """The 4-goal env is symmetric under quarter turns, so pi* sends a quarter of its episodes to each goal."""
    task = jax_env_for("s2ac/MultiGoal4-v0")
    value = so.soft_value_iteration(task, 0.1, 1.0, 0.99, spacing=0.5)
    shares, success = so.goal_outcomes(value, task, 4000, jax.random.PRNGKey(0))
    assert success > 0.95
    np.testing.assert_allclose(shares, success / 4, atol=0.03)  # 4 standard errors at 4000 episodes
