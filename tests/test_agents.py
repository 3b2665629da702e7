"""Agents: densities, losses and action selection against hand-derived values."""

import dataclasses

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from agent_helpers import acts_of_every_mode
from tiny import HOPPER, MULTIGOAL, ODD_BOX, tiny_config

from s2ac import distributions as D
from s2ac.agents import make_agent, make_agent_config
from s2ac.agents.common import soft_bellman_target, twin_critic_loss
from s2ac.agents.s2ac import S2ACConfig
from s2ac.agents.sac import SACConfig
from s2ac.checkpoint import load_agent_state, save_checkpoint
from s2ac.types import Batch


def random_batch(spec, n=16, seed=0):
    rng = np.random.default_rng(seed)
    low, high = np.asarray(spec.action_low), np.asarray(spec.action_high)
    return Batch(
        jnp.asarray(rng.normal(size=(n, spec.obs_dim)), jnp.float32),
        jnp.asarray(rng.uniform(low, high, (n, spec.act_dim)), jnp.float32),
        jnp.asarray(rng.normal(size=n), jnp.float32),
        jnp.asarray(rng.normal(size=(n, spec.obs_dim)), jnp.float32),
        jnp.asarray(rng.integers(0, 2, n), jnp.float32),
    )


# -- densities ---------------------------------------------------------------------


def test_tanh_log_det_matches_direct_and_autodiff():
    u = jnp.array([[-4.0, -0.3, 0.0], [0.7, 2.5, 9.0]])
    direct = np.sum(np.log1p(-(np.tanh(np.asarray(u, np.float64)) ** 2)), axis=-1)
    np.testing.assert_allclose(D.tanh_log_det(u), direct, rtol=1e-5)
    box = D.ActionBox.from_bounds(np.array([-2.0, 0.0, -1.0]), np.array([1.0, 3.0, 1.0]))
    for row in jnp.array([[-4.0, -0.3, 0.0], [0.7, 2.5, -1.5]]):  # float32 autodiff underflows past |u| ~ 8
        jac = jax.jacfwd(lambda x: D.squash(x, box))(row)
        np.testing.assert_allclose(D.squash_log_det(row, box), jnp.linalg.slogdet(jac)[1], rtol=1e-4, atol=1e-5)
    # Stable far in the tails where log(1 - tanh^2) underflows naively.
    assert np.isfinite(float(D.tanh_log_det(jnp.array([40.0]))))
    np.testing.assert_allclose(D.tanh_log_det(jnp.array([40.0])), 2 * (np.log(2) - 40.0), rtol=1e-6)


def test_squash_unsquash_roundtrip_and_bounds():
    box = D.ActionBox.from_bounds(np.array([-2.0, 0.0]), np.array([1.0, 3.0]))
    u = jnp.array([[-1.0, 0.5], [2.0, -0.1]])
    a = D.squash(u, box)
    assert np.all(a >= np.array([-2.0, 0.0])) and np.all(a <= np.array([1.0, 3.0]))
    np.testing.assert_allclose(D.unsquash(a, box), u, rtol=1e-4)


def test_truncated_normal_support_and_normalisation():
    mean, std, bound = jnp.array([0.3]), jnp.array([0.5]), 3.0
    x, log_p = D.truncated_normal_sample(
        jax.random.PRNGKey(0), jnp.broadcast_to(mean, (20000, 1)), jnp.broadcast_to(std, (20000, 1)), bound
    )
    assert np.all(np.abs((x - mean) / std) <= bound + 1e-5)
    grid = jnp.linspace(mean[0] - bound * std[0], mean[0] + bound * std[0], 20001)[:, None]
    dens = jnp.exp(D.truncated_normal_log_prob(grid, mean, std, bound))
    np.testing.assert_allclose(np.trapezoid(np.asarray(dens), np.asarray(grid[:, 0])), 1.0, atol=1e-4)
    assert D.truncated_normal_log_prob(mean + 3.5 * std, mean, std, bound) == -jnp.inf
    # Sample moments match scipy's truncated normal.
    from scipy.stats import truncnorm

    ref = truncnorm(-bound, bound, loc=0.3, scale=0.5)
    np.testing.assert_allclose(np.mean(x), ref.mean(), atol=0.01)
    np.testing.assert_allclose(np.std(x), ref.std(), atol=0.01)
    np.testing.assert_allclose(log_p[:5,], ref.logpdf(np.asarray(x[:5, 0])), rtol=1e-4)


# -- losses ------------------------------------------------------------------------


def test_twin_critic_loss_and_bellman_target_hand_values():
    q = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    y = jnp.array([0.0, 1.0])
    assert float(twin_critic_loss(q, y)) == pytest.approx(0.5 * (1.0 + 9.0))
    target = soft_bellman_target(jnp.array([1.0, 2.0]), jnp.array([0.0, 1.0]), 0.9, jnp.array([10.0, 10.0]))
    np.testing.assert_allclose(target, [1.0 + 9.0, 2.0])  # a terminal transition ignores V(s')


def test_squashed_score_is_chain_rule_of_q_plus_tanh_log_det():
    cfg = tiny_config("s2ac", sampler_alpha=0.35)
    agent = make_agent(cfg, ODD_BOX)
    state = agent.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(3), (4,))
    u = jax.random.normal(jax.random.PRNGKey(4), (5, 2))
    # Each gradient compiled whole: op by op, every primitive of the backward pass is a compile.
    score = jax.jit(jax.grad(lambda x: jnp.sum(agent.energy(state.critic_params, obs, x))))(u)
    grad_q = jax.jit(jax.vmap(jax.grad(lambda act: jnp.min(agent.critic.apply(state.critic_params, obs, act)))))
    a = D.squash(u, agent.box)
    # d/du [Q(center + scale tanh u) + alpha sum log(1 - tanh^2 u)] = Q' scale (1 - tanh^2) - 2 alpha tanh u
    tanh_u = np.tanh(np.asarray(u, np.float64))
    expected = np.asarray(grad_q(a)) * np.asarray(agent.box.scale) * (1 - tanh_u**2) - 2 * 0.35 * tanh_u
    np.testing.assert_allclose(score, expected, rtol=1e-4, atol=1e-5)
    paper = make_agent(dataclasses.replace(cfg, score_space="unsquashed"), ODD_BOX)
    raw = jax.jit(jax.grad(lambda x: jnp.sum(paper.energy(state.critic_params, obs, x))))(u)
    np.testing.assert_allclose(raw, grad_q(u), rtol=1e-5, atol=1e-6)


def test_sac_log_prob_matches_gaussian_through_tanh():
    agent = make_agent(tiny_config("sac"), ODD_BOX)
    state = agent.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (6, 4))
    action, log_prob = agent.sample_action(state.actor_params, obs, jax.random.PRNGKey(2))
    mean, log_std = agent.actor.apply(state.actor_params, obs)
    u = D.unsquash(action, agent.box, eps=0.0)
    ref = np.sum(
        -0.5 * ((np.asarray(u) - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * np.log(2 * np.pi), axis=-1
    ) - np.sum(np.log(np.asarray(agent.box.scale) * (1 - np.tanh(np.asarray(u)) ** 2)), axis=-1)
    np.testing.assert_allclose(log_prob, ref, rtol=1e-3, atol=1e-3)


# -- selection -----------------------------------------------------------------------


def test_action_selection_modes():
    agent = make_agent(tiny_config("s2ac", alpha=0.2), MULTIGOAL)  # the temperature of the hand values below
    actions = jnp.array([[[0.1, 0.1], [0.5, -0.5], [-0.9, 0.2]]])
    from s2ac.agents.s2ac import Particles

    zeros = jnp.zeros((1, 1))
    parts = Particles(actions, actions, jnp.zeros((1, 3)), zeros, zeros, zeros, zeros)
    q = jnp.array([[0.0, 0.3, 0.1]])
    np.testing.assert_allclose(agent.select(parts, q, jax.random.PRNGKey(0), "max"), [[0.5, -0.5]])
    keys = jax.random.split(jax.random.PRNGKey(1), 4000)
    picks = jax.vmap(lambda k: agent.select(parts, q, k, "softmax"))(keys)[:, 0, 0]
    freq = np.array([np.mean(np.isclose(picks, actions[0, i, 0])) for i in range(3)])
    expected = np.exp(np.asarray(q[0]) / 0.2) / np.sum(np.exp(np.asarray(q[0]) / 0.2))
    np.testing.assert_allclose(freq, expected, atol=0.03)
    rand = jax.vmap(lambda k: agent.select(parts, q, k, "random"))(keys)[:, 0, 0]
    np.testing.assert_allclose([np.mean(np.isclose(rand, actions[0, i, 0])) for i in range(3)], 1 / 3, atol=0.03)


@pytest.mark.parametrize("algo", ["sac", "s2ac", "s2ac-phi"])
@pytest.mark.parametrize("spec", [HOPPER, ODD_BOX], ids=["hopper", "odd_box"])
def test_act_stays_in_the_box_for_every_mode(algo, spec):
    agent = make_agent(tiny_config(algo), spec)
    state = agent.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (7, spec.obs_dim))
    for mode, a in acts_of_every_mode(agent, state, obs, jax.random.PRNGKey(2), ("random", "max", "softmax")).items():
        a = np.asarray(a)
        assert a.shape == (7, spec.act_dim), mode
        low, high = np.asarray(spec.action_low), np.asarray(spec.action_high)
        assert np.all(a >= low - 1e-6) and np.all(a <= high + 1e-6), mode


@pytest.mark.parametrize("algo", ["s2ac", "s2ac-phi", "s2ac-amortized"])
def test_s2ac_rejects_mean_mode_naming_the_valid_modes(algo):
    agent = make_agent(tiny_config(algo), MULTIGOAL)
    state = agent.init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"'mean'.*\('random', 'max', 'softmax'\)"):
        agent.act(state, jnp.zeros((1, 2)), jax.random.PRNGKey(1), "mean")


@pytest.mark.parametrize("algo", ["s2ac", "sql"])
def test_checkpoint_with_the_old_q0_field_names_loads(algo, tmp_path):
    """S²AC's q0 network was stored as actor_params / actor_opt; SQL's sampler keeps that name."""
    agent = make_agent(tiny_config(algo), MULTIGOAL)
    state = agent.init(jax.random.PRNGKey(0))
    saved = flax.serialization.to_state_dict(state)
    if algo == "s2ac":  # the state dict an earlier version wrote
        saved["actor_params"], saved["actor_opt"] = saved.pop("init_params"), saved.pop("init_opt")
    path = save_checkpoint(tmp_path, 1, saved, {}, lambda p: p.write_bytes(b""))
    restored = load_agent_state(path, agent.init(jax.random.PRNGKey(1)))
    assert type(restored) is type(state)
    jax.tree_util.tree_map(np.testing.assert_array_equal, restored, state)


# -- update ------------------------------------------------------------------------


@pytest.mark.xdist_group("s2ac-multigoal-update")  # compiles the update of the adaptive-step test below
@pytest.mark.parametrize("algo", ["sac", "s2ac", "s2ac-phi"])
def test_update_traces_once_is_deterministic_and_changes_params(algo):
    # make_agent shares one agent per (config, spec) in a process, so count the traces of these calls
    # only: at most one (none if an earlier test compiled this update), and none on the second run.
    # (Updates at Hopper's shapes: test_amortized.py and the Hopper rows of test_train.py.)
    def run():
        agent = make_agent(tiny_config(algo), MULTIGOAL)
        traced = agent.trace_count
        state = agent.init(jax.random.PRNGKey(0))
        history = []
        for i in range(4):
            state, metrics = agent.update(state, random_batch(MULTIGOAL, seed=i))
            history.append({k: float(v) for k, v in metrics.items()})
        return agent, state, history, agent.trace_count - traced

    agent, state, hist_a, traces_a = run()
    _, _, hist_b, traces_b = run()
    assert traces_a <= 1 and traces_b == 0
    assert hist_a == hist_b
    assert all(np.isfinite(v) for row in hist_a for v in row.values())
    assert int(state.step) == 4
    fresh = agent.init(jax.random.PRNGKey(0))
    moved = jax.tree_util.tree_map(
        lambda a, b: float(jnp.max(jnp.abs(a - b))), state.critic_params, fresh.critic_params
    )
    assert max(jax.tree_util.tree_leaves(moved)) > 0


@pytest.mark.slow  # an eager S²AC update is op-by-op Python (tens of seconds); a compiler sanity check
def test_jit_and_eager_updates_agree():
    agent = make_agent(tiny_config("s2ac", svgd_steps=1, n_particles=3), MULTIGOAL)
    state = agent.init(jax.random.PRNGKey(0))
    batch = random_batch(MULTIGOAL, n=8)
    jitted_state, jitted = agent.update(state, batch)
    with jax.disable_jit():
        eager_state, eager = agent._update(state, batch)
    for key in jitted:
        np.testing.assert_allclose(jitted[key], eager[key], rtol=2e-4, atol=1e-5, err_msg=key)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5),
        jitted_state.init_params,
        eager_state.init_params,
    )


def test_presets_differ_exactly_in_the_documented_fields():
    paper = make_agent_config("s2ac", "paper", "Hopper-v5")
    corrected = make_agent_config("s2ac", "corrected", "Hopper-v5")
    diff = {f.name for f in dataclasses.fields(S2ACConfig) if getattr(paper, f.name) != getattr(corrected, f.name)}
    # docs/guide/presets.md's table: the authors' code against the poster, and the density checked against k-NN
    assert diff == {"sampler_alpha", "score_space", "normalizer", "init_density", "svgd_step_control", "log_density"}
    assert paper.effective_sampler_alpha == 1.0 and corrected.effective_sampler_alpha == 0.2
    assert paper.svgd_step_control == "fixed" and corrected.svgd_step_control == "adaptive"
    assert make_agent_config("s2ac", "corrected", "Hopper-v5").svgd_steps == 3
    assert make_agent_config("sac", "corrected", "Hopper-v5").auto_alpha
    for preset in ("paper", "corrected", "quick"):  # the authors' L = 10 on multigoal, in every preset
        for algo in ("s2ac", "s2ac-phi"):
            assert make_agent_config(algo, preset, "s2ac/MultiGoal3-v0").svgd_steps == 10, (algo, preset)


@pytest.mark.parametrize("algo", ["s2ac", "s2ac-phi", "sac", "sql", "sac-nf"])
def test_multigoal_presets_share_soft_q_learnings_temperature(algo):
    for preset in ("corrected", "quick"):
        cfg = make_agent_config(algo, preset, "s2ac/MultiGoal3-v0")
        assert (cfg.alpha, cfg.reward_scale) == (1.0, 0.1), preset  # alpha = 10 in raw reward units
        assert not getattr(cfg, "auto_alpha", False)
    paper = make_agent_config(algo, "paper", "s2ac/MultiGoal3-v0")
    assert (paper.alpha, paper.reward_scale) == (0.2, 1.0)
    assert make_agent_config(algo, "corrected", "Hopper-v5").reward_scale == 1.0


@pytest.mark.slow  # proven against a numpy target at reward_scale 0.5 by test_maths_references.py's
# test_polyak_and_bellman_target_use_the_right_critics, with one compiled update per algorithm instead of two
@pytest.mark.parametrize("algo", ["s2ac", "sac", "sql"])
def test_reward_scale_multiplies_the_reward_in_the_critic_target(algo):
    # All transitions terminal: the target is exactly reward_scale * r (no bootstrap term).
    batch = random_batch(MULTIGOAL, n=16)._replace(terminated=jnp.ones(16))
    expected = float(jnp.mean(batch.reward))
    for scale in (1.0, 0.1):
        agent = make_agent(tiny_config(algo, reward_scale=scale), MULTIGOAL)
        state = agent.init(jax.random.PRNGKey(0))
        _, metrics = agent.update(state, batch)
        np.testing.assert_allclose(float(metrics["target_mean"]), scale * expected, rtol=1e-5, atol=1e-6)


def _steep_critic(state, factor):
    """The same critic with its output layer scaled by ``factor`` (a steep energy, like a multigoal critic)."""
    names = lambda path: [str(getattr(p, "key", "")) for p in path]  # noqa: E731
    paths = [names(path) for path, _ in jax.tree_util.tree_flatten_with_path(state.critic_params)[0]]
    last = max((n for path in paths for n in path if n.startswith("Dense_")), key=lambda n: int(n.split("_")[1]))
    scaled = jax.tree_util.tree_map_with_path(
        lambda path, x: x * factor if last in names(path) else x, state.critic_params
    )
    return state.replace(critic_params=scaled)


@pytest.mark.xdist_group("s2ac-multigoal-update")
def test_adaptive_preset_keeps_every_training_step_invertible_where_the_fixed_step_folds():
    obs = jax.random.normal(jax.random.PRNGKey(3), (32, MULTIGOAL.obs_dim))
    margins = {}
    for control in ("fixed", "adaptive", "adaptive_bound"):
        agent = make_agent(tiny_config("s2ac", svgd_step_control=control), MULTIGOAL)
        state = _steep_critic(agent.init(jax.random.PRNGKey(0)), 300.0)
        p = agent.sample_particles(state.init_params, state.critic_params, obs, jax.random.PRNGKey(4))
        margins[control] = float(jnp.max(p.invertibility_margin))
        if control != "fixed":
            assert float(jnp.max(p.step_size)) <= agent.config.svgd_step_size + 1e-7
        _, metrics = agent.update(state, random_batch(MULTIGOAL, n=16))
        assert set(metrics) >= {"invertibility_margin", "invertibility_margin_median", "invalid_state_fraction"}
        if control != "fixed":  # the bound's margin is global, so it also bounds the blocks' local one
            assert float(metrics["invertibility_margin"]) <= 0.5 + 1e-5
            assert float(metrics["actor_invertibility_margin"]) <= 0.5 + 1e-5
            assert float(metrics["invalid_state_fraction"]) == 0.0
    assert margins["fixed"] > 1.0 and margins["adaptive"] <= 0.5 + 1e-5 and margins["adaptive_bound"] <= 0.5 + 1e-5


@pytest.mark.parametrize(
    ("cls", "fields", "message"),
    [
        (S2ACConfig, dict(n_particles=0), "n_particles"),
        (S2ACConfig, dict(n_particles=1), "n_particles"),
        (S2ACConfig, dict(svgd_steps=-1), "svgd_steps"),
        (S2ACConfig, dict(svgd_step_size=float("nan")), "svgd_step_size"),
        (S2ACConfig, dict(alpha=float("inf")), "alpha"),
        (S2ACConfig, dict(gamma=1.5), "gamma"),
        (S2ACConfig, dict(bandwidth="silverman"), "bandwidth"),
        (S2ACConfig, dict(critic_hidden=(0,)), "critic_hidden"),
        (SACConfig, dict(tau=0.0), "tau"),
        (SACConfig, dict(batch_size=-3), "batch_size"),
    ],
)
def test_bad_config_values_name_the_field(cls, fields, message):
    with pytest.raises(ValueError, match=message):
        cls(**fields).validate()


def test_unknown_algo_and_preset():
    with pytest.raises(ValueError, match="unknown algo"):
        make_agent_config("ppo", "paper", "Hopper-v5")
    with pytest.raises(ValueError, match="unknown preset"):
        make_agent_config("s2ac", "fast", "Hopper-v5")


def test_recomputation_settings_change_no_value():
    # remat_score and remat_keep_matmuls only choose what the actor's backward pass stores; the
    # loss and its gradient through the SVGD steps must be the same (hidden width 16 >= the
    # input width 14, so the kept products are exactly the hidden-layer ones).
    # The fixed step: the adaptive rule's Jacobian norms are not differentiated, so they add compile
    # time and nothing to what is compared.
    base = tiny_config("s2ac", svgd_steps=2, svgd_step_control="fixed")
    obs = jax.random.normal(jax.random.PRNGKey(5), (6, HOPPER.obs_dim))
    results = []
    for remat, keep in ((False, False), (True, False), (True, True)):
        agent = make_agent(dataclasses.replace(base, remat_score=remat, remat_keep_matmuls=keep), HOPPER)
        state = agent.init(jax.random.PRNGKey(0))

        def loss_fn(params, agent=agent, state=state):
            return agent.actor_loss(params, state.critic_params, obs, jax.random.PRNGKey(7))[0]

        # Op by op: one compile of this second-order pass costs more than its primitives' compiles
        # (which are shared with every other eager test in the process).
        loss, grads = jax.value_and_grad(loss_fn)(state.init_params)
        results.append((loss, grads))
    for loss, grads in results[1:]:
        np.testing.assert_allclose(loss, results[0][0], rtol=1e-5)
        for x, y in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(results[0][1])):
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree_util.tree_leaves(results[0][1]))
