"""Soft Q-learning: the soft value against hand-derived values and quadrature, the amortized SVGD
direction against the Stein core, a Gaussian toy fitted by amortized SVGD, and the agent's contract."""

import dataclasses
import math

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from agent_helpers import HOPPER, MULTIGOAL, assert_acts_in_box, random_batch
from tiny import ODD_BOX, tiny_config

from s2ac import stein
from s2ac.agents import make_agent
from s2ac.agents.sql import (
    SQL_PAPER_FIELDS,
    SQLAgent,
    SQLConfig,
    amortized_svgd_loss,
    box_log_volume,
    soft_value_uniform,
)
from s2ac.distributions import ActionBox
from s2ac.types import EnvSpec

VOLUME_12_BOX = EnvSpec(4, 2, (0.0, -2.0), (3.0, 2.0))
SMALL = dict(critic_hidden=(16, 16), actor_hidden=(16, 16))


# -- soft value -------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 3, 6])
def test_soft_value_of_constant_q_on_unit_box(d):
    # Q == c on [-1, 1]^d: alpha log int exp(c/alpha) da = c + alpha log 2^d, for any M.
    c, alpha, m = 1.7, 0.3, 50
    box = ActionBox.from_bounds(-np.ones(d), np.ones(d))
    value = soft_value_uniform(jnp.full((4, m), c), alpha, box_log_volume(box))
    np.testing.assert_allclose(value, c + alpha * d * math.log(2.0), rtol=1e-6)


def test_soft_value_of_constant_q_on_general_box():
    # vol([0, 3] x [-2, 2]) = 12, so V = c + alpha log 12.
    box = ActionBox.from_bounds(np.array([0.0, -2.0]), np.array([3.0, 2.0]))
    assert box_log_volume(box) == pytest.approx(math.log(12.0), rel=1e-6)
    value = soft_value_uniform(jnp.full((3, 7), -0.4), 0.5, box_log_volume(box))
    np.testing.assert_allclose(value, -0.4 + 0.5 * math.log(12.0), rtol=1e-6)


def test_soft_value_estimate_matches_quadrature_on_general_box():
    # V = alpha log int_box exp(Q/alpha) da for a non-constant Q, by many uniform samples vs a fine grid.
    low, high, alpha = np.array([0.0, -2.0]), np.array([3.0, 2.0]), 0.5

    def q_fn(a):
        return -((a[..., 0] - 1.0) ** 2) - 0.5 * a[..., 1] ** 2 + 0.3 * a[..., 0] * a[..., 1]

    n = 1000
    g0 = low[0] + (np.arange(n) + 0.5) * (high[0] - low[0]) / n
    g1 = low[1] + (np.arange(n) + 0.5) * (high[1] - low[1]) / n
    grid = np.stack(np.meshgrid(g0, g1, indexing="ij"), axis=-1)
    cell = (high - low).prod() / n**2
    exact = alpha * np.log(np.sum(np.exp(np.asarray(q_fn(grid), np.float64) / alpha)) * cell)

    samples = jax.random.uniform(jax.random.PRNGKey(0), (1, 400_000, 2), minval=low, maxval=high)
    box = ActionBox.from_bounds(low, high)
    estimate = soft_value_uniform(q_fn(samples), alpha, box_log_volume(box))[0]
    assert float(estimate) == pytest.approx(exact, abs=5e-3)


@pytest.mark.parametrize("importance_on_sampler", [False, True])
def test_agent_soft_value_with_zero_critic_is_alpha_log_volume(importance_on_sampler):
    # All-zero critic parameters give Q == 0, so Vbar = alpha log vol(box) whatever actions are drawn.
    config = SQLConfig(alpha=0.3, importance_on_sampler=importance_on_sampler, **SMALL)
    agent = SQLAgent(config, VOLUME_12_BOX)
    state = agent.init(jax.random.PRNGKey(0))
    zero_critic = jax.tree_util.tree_map(jnp.zeros_like, state.critic_params)
    obs = jax.random.normal(jax.random.PRNGKey(1), (5, VOLUME_12_BOX.obs_dim))
    value = jax.jit(agent.soft_value)(zero_critic, state.actor_params, obs, jax.random.PRNGKey(2))
    np.testing.assert_allclose(value, 0.3 * math.log(12.0), rtol=1e-5)


# -- amortized SVGD ------------------------------------------------------------------------


def test_anchored_direction_equals_stein_direction_when_anchors_are_the_points():
    x = jax.random.normal(jax.random.PRNGKey(0), (9, 3))
    scores = -x + 0.3 * jnp.sin(x)
    sigma, alpha = jnp.asarray(0.8), 0.37
    np.testing.assert_allclose(
        stein.svgd_direction_anchored(x, x, scores, sigma, alpha),
        stein.svgd_direction(x, scores, sigma, alpha),
        rtol=1e-5,
        atol=1e-7,
    )


def test_anchored_direction_matches_kernel_autodiff():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(1), 3)
    x, y = jax.random.normal(k1, (4, 2)), jax.random.normal(k2, (6, 2))
    scores = jax.random.normal(k3, (6, 2))
    sigma, alpha = 0.7, 0.5
    grad_first = jax.grad(stein.rbf_kernel, argnums=0)
    expected = jnp.stack(
        [
            jnp.mean(
                jnp.stack(
                    [
                        stein.rbf_kernel(y[j], x[i], sigma) * scores[j] + alpha * grad_first(y[j], x[i], sigma)
                        for j in range(6)
                    ]
                ),
                axis=0,
            )
            for i in range(4)
        ]
    )
    phi = stein.svgd_direction_anchored(x, y, scores, sigma, alpha)
    np.testing.assert_allclose(phi, expected, rtol=1e-5, atol=1e-7)


def test_surrogate_gradient_is_minus_phi():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(2), 3)
    moved, anchors, scores = jax.random.normal(k1, (5, 3)), jax.random.normal(k2, (7, 3)), jax.random.normal(k3, (7, 3))
    sigma = jnp.asarray(1.1)
    grad = jax.grad(lambda x: amortized_svgd_loss(x, anchors, scores, sigma, 0.4)[0])(moved)
    phi = stein.svgd_direction_anchored(moved, anchors, scores, sigma, 0.4)
    np.testing.assert_allclose(grad, -phi / moved.shape[0], rtol=1e-5, atol=1e-7)


def test_amortized_svgd_fits_a_gaussian_energy():
    # Fit x = A xi + b, xi ~ N(0, I), to p = N(mu, Sigma) by SQL's amortized SVGD (fixed / moved split).
    mu = jnp.array([-0.6871, 0.8010])
    cov = jnp.array([[0.2260, 0.1652], [0.1652, 0.6779]]) * 2.0
    precision = jnp.linalg.inv(cov)
    params = {"A": jnp.eye(2) * 0.1, "b": jnp.array([2.0, -2.0])}
    opt = optax.adam(2e-2)
    n_fixed, n_moved = 64, 64

    def loss_fn(p, key):
        x = jax.random.normal(key, (n_fixed + n_moved, 2)) @ p["A"].T + p["b"]
        anchors = jax.lax.stop_gradient(x[:n_fixed])
        scores = -(anchors - mu) @ precision
        sigma = stein.bandwidth_from_rule(anchors, "median")
        return amortized_svgd_loss(x[n_fixed:], anchors, scores, sigma, 1.0)[0]

    @jax.jit
    def step(carry, key):
        p, s = carry
        updates, s = opt.update(jax.grad(loss_fn)(p, key), s, p)
        return (optax.apply_updates(p, updates), s), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(jax.random.PRNGKey(0), 600))
    fitted_cov = params["A"] @ params["A"].T
    np.testing.assert_allclose(params["b"], mu, atol=0.1)
    assert float(jnp.linalg.norm(fitted_cov - cov) / jnp.linalg.norm(cov)) < 0.2


# -- agent ------------------------------------------------------------------------------------


@pytest.mark.xdist_group("sql-update")  # the round-trip test below reuses the multigoal update
@pytest.mark.parametrize(
    "spec, fields",
    [(HOPPER, {}), (HOPPER, SQL_PAPER_FIELDS), (MULTIGOAL, {}), (MULTIGOAL, SQL_PAPER_FIELDS)],
    ids=["hopper", "hopper-paper", "multigoal", "multigoal-paper"],
)
def test_update_is_finite_and_traces_once(spec, fields):
    agent = make_agent(tiny_config("sql", **fields), spec)
    traced = agent.trace_count  # the agent is shared: count this test's traces (none if compiled before)
    state = agent.init(jax.random.PRNGKey(0))
    for seed in range(3):
        state, metrics = agent.update(state, random_batch(spec, agent.config.batch_size, seed))
    assert agent.trace_count - traced <= 1
    assert int(state.step) == 3
    for name in ("critic_loss", "actor_loss", "q_mean", "value_mean", "alpha", "svgd_grad_norm"):
        assert name in metrics
    for name, value in metrics.items():
        assert value.shape == () and bool(jnp.isfinite(value)), name


@pytest.mark.parametrize("spec", [HOPPER, MULTIGOAL, ODD_BOX], ids=["hopper", "multigoal", "odd_box"])
def test_act_in_box(spec):
    agent = make_agent(tiny_config("sql"), spec)
    assert agent.act_modes == ("random", "max", "softmax", "mean")
    assert_acts_in_box(agent, spec, tol=0.0)


def test_mean_mode_is_deterministic_and_random_mode_is_not():
    agent = make_agent(tiny_config("sql"), MULTIGOAL)
    state = agent.init(jax.random.PRNGKey(0))
    obs = jnp.ones((3, 2))
    a1, a2 = (agent.act(state, obs, jax.random.PRNGKey(k), "mean") for k in (1, 2))
    np.testing.assert_array_equal(a1, a2)
    r1, r2 = (agent.act(state, obs, jax.random.PRNGKey(k), "random") for k in (1, 2))
    assert not np.allclose(r1, r2)


@pytest.mark.xdist_group("sql-update")
def test_same_seed_same_metrics_and_state_round_trips_through_flax_serialization():
    agent = make_agent(tiny_config("sql"), MULTIGOAL)
    traced = agent.trace_count  # the agent is shared: count this test's traces (none if compiled before)
    (state, m1), (_, m2) = (agent.update(agent.init(jax.random.PRNGKey(3)), random_batch(MULTIGOAL)) for _ in range(2))
    for name in m1:
        np.testing.assert_array_equal(m1[name], m2[name])
    restored = flax.serialization.from_bytes(agent.init(jax.random.PRNGKey(1)), flax.serialization.to_bytes(state))
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(restored), strict=True):
        np.testing.assert_array_equal(a, b)
    assert agent.trace_count - traced <= 1


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(noise="gumbel"), "noise"),
        (dict(n_fixed_particles=1), "n_fixed_particles"),
        (dict(n_value_particles=0), "n_value_particles"),
        (dict(svgd_space="z"), "svgd_space"),
        (dict(bandwidth="silverman"), "bandwidth"),
        (dict(bandwidth=float("nan")), "bandwidth"),
        (dict(sampler_alpha=-1.0), "sampler_alpha"),
        (dict(noise_dim=0), "noise_dim"),
    ],
)
def test_config_rejects_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SQLConfig(), **bad).validate()
