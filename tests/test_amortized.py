"""Amortized S²AC: the MMD imitation loss against hand-derived values, why it is used instead of
anchored SVGD (Stein's identity), a Gaussian toy fitted through it, the amortizer step closing the
gap to the S²AC particles, and the agent's contract."""

import dataclasses
import math

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from agent_helpers import HOPPER, MULTIGOAL, assert_acts_in_box, random_batch
from tiny import tiny_config

from s2ac import stein
from s2ac.agents import make_agent
from s2ac.agents.amortized import AmortizedS2ACAgent, AmortizedS2ACConfig, mmd_loss

SMALL = dict(critic_hidden=(32, 32), actor_hidden=(32, 32), amortizer_hidden=(32, 32))


# -- the imitation loss ------------------------------------------------------------------------


def test_mmd_of_two_points_is_hand_derived():
    # One sample x, one anchor y: MMD^2 = sum_s [1 - 2 exp(-|x-y|^2 / (2 s^2)) + 1].
    x, y = jnp.array([[0.3, -1.0]]), jnp.array([[1.0, 0.5]])
    sigmas = jnp.array([0.5, 2.0])
    sq = 0.7**2 + 1.5**2
    expected = sum(2.0 - 2.0 * math.exp(-sq / (2 * s**2)) for s in (0.5, 2.0))
    assert float(mmd_loss(x, y, sigmas)) == pytest.approx(expected, rel=1e-6)


def test_mmd_is_zero_for_identical_sets_and_positive_otherwise():
    x = jax.random.normal(jax.random.PRNGKey(0), (10, 3))
    sigmas = jnp.array([1.0])
    assert float(mmd_loss(x, x, sigmas)) == pytest.approx(0.0, abs=1e-6)
    assert float(mmd_loss(x + 0.5, x, sigmas)) > 1e-2


def test_mmd_gradient_flows_to_samples_only():
    x, y = jax.random.normal(jax.random.PRNGKey(1), (6, 2)), jax.random.normal(jax.random.PRNGKey(2), (6, 2))
    grad_x, grad_y = jax.grad(mmd_loss, argnums=(0, 1))(x, y, jnp.array([1.0]))
    assert float(jnp.max(jnp.abs(grad_x))) > 1e-3
    np.testing.assert_array_equal(grad_y, 0.0)


def test_anchored_svgd_carries_no_signal_but_mmd_does():
    # Stein's identity: with anchors drawn from the target, the anchored SVGD direction vanishes at
    # every point, however far from the target; the MMD gradient there still points back toward it.
    mu = jnp.array([0.5, -0.5])
    anchors = mu + jax.random.normal(jax.random.PRNGKey(0), (20_000, 2))
    scores = -(anchors - mu)  # grad log N(mu, I)
    sigma = jnp.asarray(1.0)
    far = mu + jnp.array([[1.5, 1.0]])
    phi = stein.svgd_direction_anchored(far, anchors, scores, sigma, 1.0)
    own = far + 0.3 * jax.random.normal(jax.random.PRNGKey(1), (200, 2))  # the moved distribution itself
    phi_own = stein.svgd_direction(own, -(own - mu), sigma, 1.0)
    assert float(jnp.linalg.norm(phi)) < 0.02
    assert float(jnp.linalg.norm(jnp.mean(phi_own, axis=0))) > 0.3
    grad = jax.grad(lambda x: mmd_loss(x, anchors[:500], jnp.array([1.0])))(far)
    assert float(jnp.dot(-grad[0], mu - far[0])) > 0.0


def test_mmd_fits_a_gaussian_from_its_samples():
    # Fit x = A xi + b, xi ~ N(0, I), to fresh draws of N(mu, Sigma) (standing in for the S²AC particles).
    mu = jnp.array([-0.6871, 0.8010])
    cov = jnp.array([[0.2260, 0.1652], [0.1652, 0.6779]]) * 2.0
    chol = jnp.linalg.cholesky(cov)
    params = {"A": jnp.eye(2) * 0.1, "b": jnp.array([1.5, -1.5])}
    opt = optax.adam(2e-2)
    scales = jnp.array([0.5, 1.0, 2.0, 4.0])

    def loss_fn(p, key):
        k1, k2 = jax.random.split(key)
        anchors = mu + jax.random.normal(k1, (64, 2)) @ chol.T
        x = jax.random.normal(k2, (64, 2)) @ p["A"].T + p["b"]
        return mmd_loss(x, anchors, stein.bandwidth_from_rule(anchors, "mean/2") * scales)

    @jax.jit
    def step(carry, key):
        p, s = carry
        updates, s = opt.update(jax.grad(loss_fn)(p, key), s, p)
        return (optax.apply_updates(p, updates), s), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(jax.random.PRNGKey(0), 600))
    fitted_cov = params["A"] @ params["A"].T
    np.testing.assert_allclose(params["b"], mu, atol=0.1)
    assert float(jnp.linalg.norm(fitted_cov - cov) / jnp.linalg.norm(cov)) < 0.2


def test_amortizer_steps_close_the_gap_to_the_s2ac_particles():
    # With the critic and q0 frozen, repeated amortizer steps bring g's samples onto the S²AC particles.
    agent = AmortizedS2ACAgent(AmortizedS2ACConfig(**SMALL), MULTIGOAL)
    state = agent.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (32, 2))
    opt = optax.adam(3e-3)

    @jax.jit
    def train(params):
        def step(carry, key):
            p, s = carry
            k_particles, k_noise = jax.random.split(key)
            particles = agent.sample_particles(state.init_params, state.critic_params, obs, k_particles)
            (loss, info), grads = jax.value_and_grad(agent.amortizer_loss, has_aux=True)(p, obs, particles.u, k_noise)
            updates, s = opt.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), (loss, info["amortizer_mean_gap"])

        keys = jax.random.split(jax.random.PRNGKey(2), 300)
        return jax.lax.scan(step, (params, opt.init(params)), keys)[1]

    losses, gaps = train(state.amortizer_params)

    # Noise floor: the MMD^2 between two independent draws of the S²AC particles (m = 10 per state).
    def floor_of(key):
        k1, k2 = jax.random.split(key)
        p1, p2 = (agent.sample_particles(state.init_params, state.critic_params, obs, k).u for k in (k1, k2))
        sigma = jax.vmap(lambda y: stein.resolve_bandwidth(y, agent.config.bandwidth))(p2)
        return jnp.mean(jax.vmap(mmd_loss)(p1, p2, sigma[:, None] * agent.mmd_scales))

    floor = float(jnp.mean(jax.jit(jax.vmap(floor_of))(jax.random.split(jax.random.PRNGKey(3), 8))))
    assert float(jnp.mean(losses[:10])) > 2.0 * floor
    assert float(jnp.mean(losses[-30:])) < 1.15 * floor  # as close as an independent S²AC draw
    assert float(jnp.mean(gaps[-30:])) < 0.5 * float(jnp.mean(gaps[:10]))


# -- agent ---------------------------------------------------------------------------------------


@pytest.mark.xdist_group("amortized-update")  # the round-trip test below reuses the Hopper update
@pytest.mark.parametrize(
    "spec, fields",
    [(HOPPER, {}), (MULTIGOAL, dict(init="fixed"))],
    ids=["hopper-phi_theta", "multigoal-phi"],
)
def test_update_is_finite_and_traces_once(spec, fields):
    agent = make_agent(tiny_config("s2ac-amortized", **fields), spec)
    traced = agent.trace_count  # the agent is shared: count this test's traces (none if compiled before)
    state = agent.init(jax.random.PRNGKey(0))
    for seed in range(3):
        state, metrics = agent.update(state, random_batch(spec, agent.config.batch_size, seed))
    assert agent.trace_count - traced <= 1 and int(state.step) == 3
    for name in ("critic_loss", "q_mean", "entropy", "alpha", "amortizer_loss", "amortizer_mean_gap"):
        assert name in metrics
    for name, value in metrics.items():
        assert value.shape == () and bool(jnp.isfinite(value)), name


@pytest.mark.parametrize(
    "spec, act_with",
    [(HOPPER, "amortized"), (MULTIGOAL, "amortized"), (MULTIGOAL, "svgd")],
    ids=["hopper-amortized", "multigoal-amortized", "multigoal-svgd"],
)
def test_act_in_box_for_every_mode(spec, act_with):
    agent = make_agent(tiny_config("s2ac-amortized", act_with=act_with), spec)
    assert_acts_in_box(agent, spec)


def test_amortized_max_is_the_best_candidate_by_min_q():
    agent = make_agent(tiny_config("s2ac-amortized"), MULTIGOAL)
    state = agent.init(jax.random.PRNGKey(0))
    obs, key = jax.random.normal(jax.random.PRNGKey(1), (5, 2)), jax.random.PRNGKey(2)
    action = agent.act(state, obs, key, "max")
    k_sample, _ = jax.random.split(key)
    n = agent.config.effective_n_act_candidates
    candidates = jnp.tanh(agent.amortized_u(state.amortizer_params, obs, k_sample, n))
    best = jnp.max(agent.min_q(state.critic_params, obs, candidates), axis=-1)
    np.testing.assert_allclose(agent.min_q(state.critic_params, obs, action[:, None])[:, 0], best, rtol=1e-5)


@pytest.mark.xdist_group("amortized-update")
def test_state_is_flat_and_round_trips_through_flax_serialization():
    agent = make_agent(tiny_config("s2ac-amortized"), HOPPER)  # the update test's agent: compiled once
    state, _ = agent.update(agent.init(jax.random.PRNGKey(0)), random_batch(HOPPER, agent.config.batch_size))
    assert int(state.step) == 1 and state.key.shape == (2,)
    restored = flax.serialization.from_bytes(agent.init(jax.random.PRNGKey(1)), flax.serialization.to_bytes(state))
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(restored), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(act_with="flow"), "act_with"),
        (dict(amortizer_lr=0.0), "amortizer_lr"),
        (dict(mmd_bandwidth_scales=()), "mmd_bandwidth_scales"),
        (dict(mmd_bandwidth_scales=(1.0, -2.0)), "mmd_bandwidth_scales"),
        (dict(n_act_candidates=0), "n_act_candidates"),
        (dict(amortizer_hidden=(0,)), "amortizer_hidden"),
    ],
)
def test_config_rejects_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(AmortizedS2ACConfig(), **bad).validate()
