"""Vectorized multigoal training loop: buffer contents, schedule, seed-vmap equivalence, learning."""

import dataclasses
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny import tiny_config

from s2ac.agents import make_agent
from s2ac.config import make_train_config
from s2ac.envs import jax_env_for, make_env
from s2ac.evaluate import GymEpisodes, evaluation_seeds, run_episodes
from s2ac.jax_loop import (
    env_spec_of,
    init_seed_state,
    make_chunk_fn,
    metric_shapes,
    play_episodes,
    stack_trees,
    train_vectorized,
    unstack_tree,
)
from s2ac.replay import replay_add, replay_init, replay_sample
from s2ac.types import Batch

MG3 = "s2ac/MultiGoal3-v0"


class ScriptedAgent:
    """Heads straight for ``target``; ``update`` counts calls and records the batches' rewards."""

    def __init__(self, spec, target=(5.0, 0.0), batch_size=8):
        self.spec = spec
        self.config = SimpleNamespace(batch_size=batch_size)
        self.target = jnp.asarray(target, jnp.float32)

    def init(self, key):
        return {"updates": jnp.zeros((), jnp.int32)}

    def update(self, state, batch: Batch):
        return {"updates": state["updates"] + 1}, {"reward_mean": jnp.mean(batch.reward)}

    def act(self, state, obs, key, mode):
        return jnp.clip(self.target - obs, -1.0, 1.0)


def tiny_schedule(**fields):
    base = dict(total_steps=300, random_steps=100, learning_starts=120, train_freq=20, gradient_steps=3)
    base.update(fields)
    return make_train_config("quick", MG3, **base)


def run_scripted_chunk(cfg, seed=0):
    task = jax_env_for(MG3)
    agent = ScriptedAgent(env_spec_of(task))
    state = init_seed_state(agent, task, seed, cfg.total_steps)
    shapes = metric_shapes(agent, state.agent_state, agent.spec, agent.config.batch_size)
    chunk = make_chunk_fn(agent, task, cfg, cfg.total_steps // cfg.train_freq, shapes)
    state, (ep, tr) = jax.jit(chunk)(state, jnp.asarray(0, jnp.int32))
    return state, ep, tr


def test_buffer_holds_exactly_the_transitions_taken_and_replays_in_gymnasium():
    cfg = tiny_schedule()
    state, ep, tr = run_scripted_chunk(cfg)
    buf = jax.device_get(state.buffer)
    env = make_env(MG3)
    obs, _ = env.reset()
    n_terminated = n_truncated = 0
    for i in range(cfg.total_steps):
        np.testing.assert_array_equal(buf.obs[i], obs)
        action = buf.action[i]
        if i < cfg.random_steps:  # warm-up: uniform in the box, not the scripted policy
            assert np.all(np.abs(action) <= 1.0)
        else:
            np.testing.assert_allclose(action, np.clip(np.array([5.0, 0.0]) - obs, -1, 1), atol=1e-6)
        obs, reward, terminated, truncated, _ = env.step(action)
        np.testing.assert_array_equal(buf.next_obs[i], obs)
        assert buf.reward[i] == pytest.approx(reward, abs=1e-5)
        # Only `terminated` is stored: a time-limit truncation is not terminal.
        assert buf.terminated[i] == float(terminated)
        n_terminated += terminated
        n_truncated += truncated and not terminated
        if terminated or truncated:
            obs, _ = env.reset()
    assert n_terminated > 10 and n_truncated >= 1  # both kinds of episode end were exercised
    assert int(ep.episodes) == n_terminated + n_truncated
    assert int(ep.goals) == n_terminated


def test_update_schedule_matches_the_host_loop():
    cfg = tiny_schedule()
    state, _, tr = run_scripted_chunk(cfg)
    # s2ac.train: after env step n, train iff n % train_freq == 0 and n >= learning_starts.
    rounds = sum(1 for n in range(1, cfg.total_steps + 1) if n % cfg.train_freq == 0 and n >= cfg.learning_starts)
    assert int(tr.rounds) == rounds
    assert int(state.agent_state["updates"]) == rounds * cfg.gradient_steps


def test_replay_ring_buffer_wraps_and_samples_only_filled_slots():
    buf = replay_init(4, 2, 2)
    for step in range(6):
        buf = replay_add(buf, jnp.asarray(step), jnp.full(2, step), jnp.zeros(2), float(step), jnp.zeros(2), False)
    # Steps 4 and 5 overwrote slots 0 and 1.
    np.testing.assert_array_equal(np.asarray(buf.reward), [4.0, 5.0, 2.0, 3.0])
    buf = replay_init(100, 2, 2)
    for step in range(3):
        buf = replay_add(buf, jnp.asarray(step), jnp.zeros(2), jnp.zeros(2), step + 1.0, jnp.zeros(2), True)
    batch = replay_sample(buf, jax.random.PRNGKey(0), jnp.asarray(3), 5, 64)
    assert batch.reward.shape == (5, 64)
    assert set(np.unique(np.asarray(batch.reward))) == {1.0, 2.0, 3.0}


def test_play_episodes_match_gymnasium_episodes():
    for env_id, target in (("s2ac/MultiGoal3-v0", (5.0, 0.0)), ("s2ac/MultiGoal4Obstacle-v0", (0.0, 5.0))):
        task = jax_env_for(env_id)
        agent = ScriptedAgent(env_spec_of(task), target)
        states = jax.tree_util.tree_map(lambda x: x[None], agent.init(None))
        ro = play_episodes(agent, states, task, jax.random.PRNGKey(0), 3, "max")
        policy = lambda obs, t, target=target: np.clip(np.asarray(target) - obs, -1, 1)  # noqa: E731
        envs = GymEpisodes([make_env(env_id) for _ in range(3)], evaluation_seeds(0, 3))
        ref = run_episodes(envs, policy, keep_trajectories=True)
        np.testing.assert_allclose(ro.returns[0], ref.returns, rtol=1e-5)
        np.testing.assert_array_equal(ro.lengths[0], ref.lengths)
        np.testing.assert_array_equal(ro.goal[0], ref.goals)
        np.testing.assert_array_equal(ro.hit_wall[0], ref.hit_wall)
        np.testing.assert_allclose(ro.positions[0, : ref.lengths[0] + 1, 0], ref.trajectories[0], atol=1e-6)
    # The scripted run into the 4-goal wall is blocked: it hits the wall and never reaches a goal.
    assert ro.hit_wall.all() and (ro.goal == -1).all()


def tiny_agent(algo):
    """The suite's tiny config of ``algo`` (tests/tiny.py) on the 3-goal env."""
    return tiny_config(algo)


def test_vmap_over_seeds_equals_separate_single_seed_runs():
    agent_cfg = tiny_agent("s2ac-phi")
    cfg = tiny_schedule(total_steps=240, random_steps=60, learning_starts=100, train_freq=20, gradient_steps=2)
    seeds = [0, 1, 2]
    together, hist = train_vectorized(agent_cfg, cfg, MG3, seeds, n_chunks=3, progress=False)
    for i, seed in enumerate(seeds):
        alone, hist_alone = train_vectorized(agent_cfg, cfg, MG3, [seed], n_chunks=3, progress=False)
        for a, b in zip(jax.tree_util.tree_leaves(unstack_tree(together, i)), jax.tree_util.tree_leaves(alone)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b)[0], rtol=1e-4, atol=1e-5)
        for key in ("ep_return", "episodes", "train/critic_loss"):
            np.testing.assert_allclose(hist[key][:, i], hist_alone[key][:, 0], rtol=1e-4, atol=1e-4)
    # Different seeds really differ.
    assert not np.allclose(hist["ep_return"][:, 0], hist["ep_return"][:, 1])


@pytest.mark.slow  # a learning check
def test_one_seed_learns_on_a_tiny_budget():
    agent_cfg = dataclasses.replace(tiny_agent("sac"), critic_hidden=(32, 32), actor_hidden=(32, 32), batch_size=32)
    cfg = make_train_config(
        "quick", MG3, total_steps=3000, random_steps=500, learning_starts=500, train_freq=50, gradient_steps=20
    )
    trained, hist = train_vectorized(agent_cfg, cfg, MG3, [0], n_chunks=6, progress=False)
    assert hist["step"][-1] == 3000 and np.isfinite(hist["train/critic_loss"][-1, 0])
    task = jax_env_for(MG3)
    agent = make_agent(agent_cfg, env_spec_of(task))
    untrained = stack_trees([agent.init(jax.random.PRNGKey(0))])
    key = jax.random.PRNGKey(1)
    before = play_episodes(agent, untrained, task, key, 10, "random").returns.mean()
    after = play_episodes(agent, trained, task, key, 10, "random").returns.mean()
    # The untrained policy pays ~ -1500 in action and distance costs; 1000 updates cut that to ~ -400.
    assert after > before + 500, (before, after)


def test_schedule_errors_are_clear():
    cfg = make_train_config("quick", MG3, total_steps=1010, train_freq=50)
    with pytest.raises(ValueError, match="multiple of train_freq"):
        train_vectorized(tiny_agent("sac"), cfg, MG3, [0], progress=False)
    with pytest.raises(ValueError, match="at least one seed"):
        train_vectorized(tiny_agent("sac"), tiny_schedule(), MG3, [], progress=False)
    with pytest.raises(ValueError, match="not a multigoal env"):
        train_vectorized(tiny_agent("sac"), tiny_schedule(), "Pendulum-v1", [0], progress=False)


def test_jax_loop_writes_run_folders_in_the_host_loops_format(tmp_path):
    from s2ac.api import Algorithm
    from s2ac.logger import read_metrics
    from s2ac.loop import Trainer

    agent_cfg = tiny_agent("sac")
    cfg = tiny_schedule(total_steps=200, random_steps=60, learning_starts=100, train_freq=20, gradient_steps=2)
    dirs = [tmp_path / "jax" / f"seed{s}" for s in (0, 1)]
    states, _ = train_vectorized(
        agent_cfg, cfg, MG3, [0, 1], n_chunks=2, progress=False, run_dirs=dirs, tensorboard=False
    )
    host_dir = tmp_path / "host"
    host_cfg = dataclasses.replace(cfg, total_steps=140, eval_freq=0)  # three update rounds
    Trainer("sac", agent_cfg, host_cfg, host_dir, progress=False, tensorboard=False).run()
    host_keys = {k for row in read_metrics(host_dir) for k in row if k.startswith(("train/", "rollout/"))}
    for i, run_dir in enumerate(dirs):
        rows = read_metrics(run_dir)
        assert [r["step"] for r in rows] == [100, 200]
        keys = {k for row in rows for k in row}
        assert host_keys <= keys, host_keys - keys  # every host-loop metric name, same meaning of train/*
        assert rows[-1]["train/n_updates"] == 6 * cfg.gradient_steps  # rounds after env steps 100, 120, ..., 200
        model = Algorithm.load(run_dir)  # the checkpoint loads as any run's
        assert model.algo == "sac" and model.seed == i
        for a, b in zip(jax.tree_util.tree_leaves(model.state), jax.tree_util.tree_leaves(unstack_tree(states, i))):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
