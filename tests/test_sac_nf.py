"""SAC-NF: flow log-dets against autodiff Jacobians, the invertibility constraints, inverses, the policy
density integrating to one over a 2-D box, and the agent's contract."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from agent_helpers import HOPPER, MULTIGOAL, assert_acts_in_box, random_batch
from tiny import ODD_BOX, tiny_config

from s2ac.agents import make_agent
from s2ac.agents.sac_nf import (
    FLOWS,
    FlowLayers,
    PlanarFlow,
    RadialFlow,
    SACNFAgent,
    SACNFConfig,
    planar_u_hat,
    radial_alpha_beta,
)
from s2ac.types import EnvSpec

DENSITY_BOX = EnvSpec(4, 2, (-2.0, 0.0), (2.0, 1.0))
SMALL = dict(critic_hidden=(32, 32), actor_hidden=(32, 32), flow_hidden=(16, 16))


def perturb(params, key, scale):
    """Add noise to every leaf so each layer is far from the identity (coupling layers start at it)."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    noisy = [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    return jax.tree_util.tree_unflatten(tree, noisy)


def slogdet_of(fn, x):
    return jnp.linalg.slogdet(jax.jacfwd(fn)(x))[1]


def random_planar(key, d, scale):
    k1, k2, k3 = jax.random.split(key, 3)
    return PlanarFlow(scale * jax.random.normal(k1, (d,)), scale * jax.random.normal(k2, (d,)), jax.random.normal(k3))


def random_radial(key, d, scale):
    k1, k2, k3 = jax.random.split(key, 3)
    return RadialFlow(jax.random.normal(k1, (d,)), scale * jax.random.normal(k2), scale * jax.random.normal(k3))


# -- single layers -----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [random_planar, random_radial], ids=["planar", "radial"])
@pytest.mark.parametrize("d", [1, 3])
def test_layer_log_det_matches_autodiff_jacobian(make, d):
    for seed in range(4):
        layer = make(jax.random.PRNGKey(seed), d, 2.0)
        xs = 1.5 * jax.random.normal(jax.random.PRNGKey(100 + seed), (5, d))
        _, log_det = layer.forward_and_log_det(xs)
        expected = jax.vmap(lambda x, layer=layer: slogdet_of(layer.forward, x))(xs)
        np.testing.assert_allclose(log_det, expected, rtol=1e-4, atol=1e-5)


def test_constraints_hold_for_random_raw_params():
    keys = jax.random.split(jax.random.PRNGKey(0), 2000)
    u = 5.0 * jax.vmap(lambda k: jax.random.normal(k, (4,)))(keys)
    w = 5.0 * jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 1), (4,)))(keys)
    wu_hat = jnp.sum(w * jax.vmap(planar_u_hat)(u, w), axis=-1)
    assert bool(jnp.all(wu_hat > -1.0))
    assert float(jnp.min(jnp.sum(w * u, axis=-1))) < -1.0  # the raw params do violate it
    a_raw, b_raw = 5.0 * jax.random.normal(keys[0], (2000,)), 5.0 * jax.random.normal(keys[1], (2000,))
    alpha, beta = radial_alpha_beta(a_raw, b_raw)
    assert bool(jnp.all(alpha > 0.0)) and bool(jnp.all(beta >= -alpha))


@pytest.mark.parametrize("make", [random_planar, random_radial], ids=["planar", "radial"])
def test_layer_inverse_round_trips(make):
    for seed in range(4):
        layer = make(jax.random.PRNGKey(seed), 3, 3.0)
        x = 2.0 * jax.random.normal(jax.random.PRNGKey(50 + seed), (64, 3))
        y, log_det = layer.forward_and_log_det(x)
        x_back, log_det_inv = layer.inverse_and_log_det(y)
        np.testing.assert_allclose(x_back, x, atol=5e-4)  # float32 solve: 2.0e-4 seen, by XLA's optimisation level
        np.testing.assert_allclose(log_det_inv, -log_det, rtol=1e-3, atol=1e-4)


# -- whole stacks ------------------------------------------------------------------------------


def flow_stack(flow, d=3, obs_dim=4, seed=0, scale=0.3):
    # Moderate perturbations: large coupling shifts make the full Jacobian ill-conditioned in float32.
    module = FlowLayers(flow, 3, d, (16, 16), "elu", True, 2.0)
    params = module.init(jax.random.PRNGKey(seed), jnp.zeros((1, d)), jnp.zeros((1, obs_dim)))
    return module, perturb(params, jax.random.PRNGKey(seed + 1), scale)


@pytest.mark.parametrize("flow", FLOWS)
def test_stack_log_det_matches_autodiff_jacobian(flow):
    module, params = flow_stack(flow)
    obs = jax.random.normal(jax.random.PRNGKey(7), (4,))
    zs = jax.random.normal(jax.random.PRNGKey(8), (6, 3))
    _, log_det = module.apply(params, zs, jnp.broadcast_to(obs, (6, 4)))

    def forward(z):
        return module.apply(params, z, obs)[0]

    expected = jax.vmap(lambda z: slogdet_of(forward, z))(zs)
    assert float(jnp.max(jnp.abs(log_det))) > 0.1  # the stack is not near the identity
    np.testing.assert_allclose(log_det, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("flow", FLOWS)
def test_stack_inverse_round_trips(flow):
    module, params = flow_stack(flow)
    obs = jax.random.normal(jax.random.PRNGKey(9), (32, 4))
    z = jax.random.normal(jax.random.PRNGKey(10), (32, 3))
    u, log_det = module.apply(params, z, obs)
    z_back, log_det_inv = module.apply(params, u, obs, method=FlowLayers.inverse)
    np.testing.assert_allclose(z_back, z, atol=2e-4)
    np.testing.assert_allclose(log_det_inv, -log_det, rtol=1e-3, atol=1e-4)


def interior_policy_params(agent, flow_scale):
    """Actor params with a moderate base Gaussian (std ~ 0.5, so the tanh-squashed mass stays off the
    box edges where a grid cannot resolve it) and flows perturbed far from the identity."""
    params = agent.init(jax.random.PRNGKey(0)).actor_params["params"]
    head = params["base"]["MLP_0"]
    last = sorted(head)[-1]
    head = {**head, last: {"kernel": 0.1 * head[last]["kernel"], "bias": jnp.array([0.3, -0.4, -0.5, -0.8])}}
    return {"params": {"base": {"MLP_0": head}, "flows": perturb(params["flows"], jax.random.PRNGKey(1), flow_scale)}}


@pytest.mark.parametrize("flow, flow_scale", [("planar", 0.5), ("radial", 0.5), ("affine_coupling", 0.3)])
def test_policy_density_integrates_to_one_over_a_2d_box(flow, flow_scale):
    # Grid over the box [-2, 2] x [0, 1] (cell midpoints), density of the tanh-squashed flow policy.
    agent = SACNFAgent(SACNFConfig(flow=flow, **SMALL), DENSITY_BOX)
    params = interior_policy_params(agent, flow_scale)
    obs1 = jnp.array([[0.3, -0.5, 0.8, 0.1]])
    mean = agent.actor.apply(params, obs1, method=lambda m, o: m.base(o)[0])
    _, log_det = agent.actor.apply(params, obs1, method=lambda m, o: m.flows(mean, o))
    assert float(jnp.abs(log_det[0])) > 0.5  # the flows reshape the density: dropping log_det would fail
    n = 300
    low, high = np.asarray(DENSITY_BOX.action_low), np.asarray(DENSITY_BOX.action_high)
    axes = [lo + (np.arange(n) + 0.5) * (hi - lo) / n for lo, hi in zip(low, high, strict=True)]
    grid = jnp.asarray(np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2), jnp.float32)
    obs = jnp.broadcast_to(obs1, (grid.shape[0], 4))
    log_pi = jax.jit(agent.log_prob)(params, obs, grid)
    mass = float(jnp.sum(jnp.exp(log_pi)) * np.prod((high - low) / n))
    assert mass == pytest.approx(1.0, abs=0.02)

    # And the density of the sampler's own draws equals the one recovered through the inverse.
    actions, log_prob = agent.sample_action(params, obs[:256], jax.random.PRNGKey(2))
    np.testing.assert_allclose(agent.log_prob(params, obs[:256], actions), log_prob, atol=2e-3)


# -- agent ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("spec", [HOPPER, MULTIGOAL], ids=["hopper", "multigoal"])
def test_update_is_finite_and_traces_once(flow, spec):
    agent = make_agent(tiny_config("sac-nf", flow=flow, auto_alpha=True), spec)
    traced = agent.trace_count  # the agent is shared: count this test's traces (none if compiled before)
    state = agent.init(jax.random.PRNGKey(0))
    for seed in range(3):
        state, metrics = agent.update(state, random_batch(spec, agent.config.batch_size, seed))
    assert agent.trace_count - traced <= 1 and int(state.step) == 3
    for name in ("critic_loss", "actor_loss", "alpha", "entropy", "q_mean"):
        assert name in metrics
    for name, value in metrics.items():
        assert value.shape == () and bool(jnp.isfinite(value)), name


@pytest.mark.parametrize(
    "flow, spec",
    [("planar", MULTIGOAL), ("radial", HOPPER), ("affine_coupling", ODD_BOX)],
    ids=["planar-multigoal", "radial-hopper", "affine_coupling-odd_box"],
)
def test_act_in_box_for_every_mode(flow, spec):
    agent = make_agent(tiny_config("sac-nf", flow=flow), spec)
    assert_acts_in_box(agent, spec)


def test_unknown_mode_is_rejected():
    agent = SACNFAgent(SACNFConfig(**SMALL), MULTIGOAL)
    with pytest.raises(ValueError, match="mode"):
        agent.act(agent.init(jax.random.PRNGKey(0)), jnp.zeros((1, 2)), jax.random.PRNGKey(1), "greedy")


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(flow="maf"), "flow"),
        (dict(n_flow_layers=0), "n_flow_layers"),
        (dict(flow_hidden=()), "flow_hidden"),
        (dict(coupling_log_scale_bound=float("inf")), "coupling_log_scale_bound"),
    ],
)
def test_config_rejects_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SACNFConfig(), **bad).validate()
