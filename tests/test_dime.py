"""The distributional critic part and DIME: references are hand computations and NumPy, never the code."""

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from agent_helpers import HOPPER, random_batch
from tiny import BATCH, WIDTH, tiny_config

from s2ac.agents import make_agent
from s2ac.distributional import SupportWarning
from s2ac.parts.critics import CriticSettings, DistributionalCritic, density_next
from s2ac.types import Batch


def np_project(probs, atoms, shift, scale):
    """Bellemare et al. (2017) Algorithm 1, written as a plain loop (floor / ceil scatter)."""
    v_min, v_max = atoms[0], atoms[-1]
    dz = (v_max - v_min) / (len(atoms) - 1)
    out = np.zeros(len(atoms))
    for p, z in zip(probs, atoms):
        tz = min(max(shift + scale * z, v_min), v_max)
        b = (tz - v_min) / dz
        lo, hi = int(np.floor(b)), int(np.ceil(b))
        if lo == hi:
            out[lo] += p
        else:
            out[lo] += p * (hi - b)
            out[hi] += p * (b - lo)
    return out


def tiny_dist_config(algo="sac", **fields):
    return tiny_config(algo, env_id="Pendulum-v1", critic="distributional", **fields)


def small_part(v_min=-10.0, v_max=10.0, n_atoms=5, gamma=0.5, reward_scale=1.0):
    cfg = tiny_dist_config(v_min=v_min, v_max=v_max, n_atoms=n_atoms, gamma=gamma, reward_scale=reward_scale)
    return DistributionalCritic(CriticSettings.from_config(cfg))


# -- the critic part --------------------------------------------------------------------------------


def test_target_projection_hand_computation():
    # Atoms -10, -5, 0, 5, 10; gamma 0.5; one transition with r = 1, not terminal, no bonus.
    # Critic 1 puts all its mass on z = 10: 1 + 0.5 * 10 = 6 -> 0.8 on 5, 0.2 on 10.
    # Critic 2 puts all its mass on z = -10: 1 - 5 = -4 -> 0.8 on -5 (1 from it), 0.2 on 0 (4 from it).
    # Their average: [0, 0.4, 0.1, 0.4, 0.1].
    part = small_part()
    p1 = jnp.array([[0.0, 0, 0, 0, 1]])
    p2 = jnp.array([[1.0, 0, 0, 0, 0]])
    batch = Batch(jnp.zeros((1, 1)), jnp.zeros((1, 1)), jnp.array([1.0]), jnp.zeros((1, 1)), jnp.array([0.0]))
    target, outside = part.target_distribution(jnp.stack([p1, p2]), batch, jnp.zeros(1))
    np.testing.assert_allclose(np.asarray(target[0]), [0.0, 0.4, 0.1, 0.4, 0.1], atol=1e-6)
    assert float(outside[0]) == 0.0
    # Terminal with r = 30: all mass at 30, clipped to 10; the whole mass lies outside.
    batch = batch._replace(reward=jnp.array([30.0]), terminated=jnp.array([1.0]))
    target, outside = part.target_distribution(jnp.stack([p1, p2]), batch, jnp.zeros(1))
    np.testing.assert_allclose(np.asarray(target[0]), [0, 0, 0, 0, 1.0], atol=1e-6)
    assert float(outside[0]) == pytest.approx(1.0)


def test_target_averages_the_two_critics_projections_numpy():
    """The part's loss against a NumPy computation from the same network outputs: the target is the
    mean of each critic's projected next distribution, shifted by ``r + gamma (1 - d) (-alpha log pi)``."""
    cfg = tiny_dist_config(v_min=-3.0, v_max=3.0, n_atoms=11, gamma=0.9, reward_scale=2.0)
    part = DistributionalCritic(CriticSettings.from_config(cfg))
    params, target_net, opt = part.init(jax.random.PRNGKey(0), HOPPER.obs_dim, HOPPER.act_dim)
    assert target_net is None
    batch = random_batch(HOPPER, 8)
    k = jax.random.split(jax.random.PRNGKey(1), 2)
    next_action = jax.random.uniform(k[0], (8, HOPPER.act_dim), minval=-1, maxval=1)
    log_prob = 0.3 * jax.random.normal(k[1], (8,))
    alpha = 0.7
    loss, (info, _) = part.joint_loss(
        params["params"], params["batch_stats"], batch, density_next(next_action, log_prob, alpha)
    )
    # The same training-mode pass, read directly.
    obs = jnp.concatenate([batch.obs, batch.next_obs])
    act = jnp.concatenate([batch.action, next_action])
    logits = np.asarray(part.net.apply(params, obs, act, train=True, mutable=["batch_stats"])[0], np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    atoms = np.linspace(-3, 3, 11)
    total, targets = 0.0, []
    for b in range(8):
        disc = 0.9 * (1 - float(batch.terminated[b]))
        shift = 2.0 * float(batch.reward[b]) + disc * (-alpha * float(log_prob[b]))
        t = 0.5 * (np_project(probs[0, 8 + b], atoms, shift, disc) + np_project(probs[1, 8 + b], atoms, shift, disc))
        targets.append(t)
        for c in range(2):
            p = probs[c, b]
            total += (-(t * np.log(p)).sum() + 0.005 * (p * np.log(p)).sum()) / 8
    assert float(loss) == pytest.approx(total, rel=1e-4)
    assert float(info["target_mean"]) == pytest.approx(float(np.mean(np.asarray(targets) @ atoms)), abs=1e-4)
    # q() is the expected value under the running statistics.
    q = part.q(params, batch.obs, batch.action)
    ev = np.asarray(part.net.apply(params, batch.obs, batch.action, train=False), np.float64)
    ev = np.exp(ev - ev.max(-1, keepdims=True))
    ev /= ev.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(q), ev @ atoms, rtol=1e-4, atol=1e-5)


def test_agent_state_holds_no_target_network():
    agent = make_agent(tiny_dist_config(), HOPPER)
    state = agent.init(jax.random.PRNGKey(0))
    assert state.critic_target is None
    state, metrics = agent.update(state, random_batch(HOPPER, BATCH))
    assert state.critic_target is None
    assert "outside_mass" in metrics and np.isfinite(float(metrics["critic_loss"]))
    logits = agent.critic.apply(state.critic_params, jnp.zeros((3, HOPPER.obs_dim)), jnp.zeros((3, HOPPER.act_dim)))
    assert logits.shape == (2, 3, 101)


@pytest.mark.parametrize(
    "fields, words",
    [
        (dict(v_min=5.0, v_max=5.0), "v_min must be < v_max"),
        (dict(v_min=1.0, v_max=-1.0), "v_min must be < v_max"),
        (dict(n_atoms=1), "n_atoms must be an int >= 2"),
    ],
)
def test_bad_support_one_line(fields, words):
    with pytest.raises(ValueError, match=words) as info:
        tiny_dist_config(**fields).validate()
    assert "\n" not in str(info.value)


def test_sql_refuses_the_distributional_critic():
    with pytest.raises(ValueError, match="no log-density") as info:
        tiny_config("sql", critic="distributional").validate()
    assert "\n" not in str(info.value)


def test_loop_warns_once_when_targets_leave_the_support():
    from s2ac.loop import TrainingLoop

    loop = TrainingLoop.__new__(TrainingLoop)
    loop.agent_config = tiny_dist_config()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        loop._check_support(np.array([0.5]))
        loop._check_support(np.array([0.9]))
    hits = [w for w in seen if issubclass(w.category, SupportWarning)]
    assert len(hits) == 1
    text = str(hits[0].message)
    assert "v_min" in text and "v_max" in text and "1600" in text and "-200" in text


def test_every_density_actor_runs_on_the_distributional_critic():
    for algo in ("sac", "s2ac"):
        agent = make_agent(tiny_dist_config(algo), HOPPER)
        state, metrics = agent.update(agent.init(jax.random.PRNGKey(0)), random_batch(HOPPER, BATCH))
        assert np.isfinite(float(metrics["critic_loss"])), algo
        assert dataclasses.asdict(agent.config)["critic"] == "distributional"
    assert WIDTH == agent.config.critic_hidden
