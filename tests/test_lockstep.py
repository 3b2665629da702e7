"""Lockstep runs: each member equals its ordinary run, resume is exact mid-episode, bad groups are named."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from test_train import Crash, comparable, read_rows, tiny_agent, tiny_train

from s2ac import checkpoint as ckpt
from s2ac.envs import make_env
from s2ac.envs.snapshot import restore_env, snapshot_env
from s2ac.loop import Trainer, TrainingLoop

pytestmark = pytest.mark.xdist_group("lockstep")  # the two-member SAC loops compile once for the file


def train_cfg(env_id, seed, **fields):
    return dataclasses.replace(tiny_train(**fields), env_id=env_id, seed=seed)


def max_relative_difference(rows_a, rows_b):
    assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b]
    worst = 0.0
    for a, b in zip(comparable(rows_a), comparable(rows_b)):
        assert set(a) == set(b)
        for key, value in a.items():
            if value is not None:
                worst = max(worst, abs(value - b[key]) / (1e-6 + abs(b[key])))
    return worst


@pytest.mark.parametrize("algo", [pytest.param("s2ac", marks=pytest.mark.slow), "sac"])
def test_each_member_equals_its_ordinary_run(tmp_path, algo):
    # Two seeds of the 3-goal env: same schedule, keys and host RNG streams as Trainer; only the
    # batched kernels' rounding differs, so rows agree to float precision over a short run.
    env = "s2ac/MultiGoal3-v0"
    cfgs = [train_cfg(env, seed, total=400) for seed in (0, 1)]
    dirs = [tmp_path / f"lockstep{seed}" for seed in (0, 1)]
    agent = tiny_agent(algo)
    group = TrainingLoop(algo, agent, cfgs, dirs, progress=False, tensorboard=False)
    group.run()
    for i, cfg in enumerate(cfgs):
        single = Trainer(algo, agent, cfg, tmp_path / f"single{i}", progress=False, tensorboard=False)
        single.run()
        assert max_relative_difference(read_rows(dirs[i]), read_rows(tmp_path / f"single{i}")) < 1e-3
        ours = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda x, i=i: x[i], group.states.critic_params))
        for x, y in zip(ours, jax.tree_util.tree_leaves(single.state.critic_params)):
            np.testing.assert_allclose(x, y, atol=1e-4)
        assert any("eval/mean_reward" in row for row in read_rows(dirs[i]))


def test_resume_mid_episode_equals_an_uninterrupted_run(tmp_path):
    # Hopper episodes end at irregular steps, so the checkpoint at step 450 is mid-episode for
    # both members; the env's MuJoCo state, observation and pending action come back with it.
    cfgs = [train_cfg("Hopper-v5", seed, total=600) for seed in (0, 1)]

    def group(name, **kwargs):
        dirs = [tmp_path / name / f"seed{c.seed}" for c in cfgs]
        return TrainingLoop("sac", tiny_agent("sac"), cfgs, dirs, progress=False, tensorboard=False, **kwargs)

    group("straight").run()

    def crash_at_500(step, rows):
        if step == 500:
            raise Crash

    with pytest.raises(Crash):
        group("crashed", callback=crash_at_500).run()
    resumed = group("crashed", resume=True)
    assert resumed.resumed_at == 450
    assert any(m.ep_len > 0 for m in resumed.members)  # really mid-episode
    resumed.run()
    for seed in (0, 1):
        crashed_rows = comparable(read_rows(tmp_path / "crashed" / f"seed{seed}"))
        assert crashed_rows == comparable(read_rows(tmp_path / "straight" / f"seed{seed}"))
    straight = group("straight", resume=True)
    for x, y in zip(jax.tree_util.tree_leaves(resumed.states), jax.tree_util.tree_leaves(straight.states)):
        np.testing.assert_array_equal(x, y)


def test_extending_a_finished_run_equals_the_longer_run(tmp_path):
    # The final checkpoint is mid-episode and holds the next action, so raising total_steps and
    # resuming continues exactly.
    def group(name, total, **kwargs):
        cfgs = [train_cfg("Hopper-v5", seed, total=total) for seed in (0, 1)]
        dirs = [tmp_path / name / f"seed{seed}" for seed in (0, 1)]
        return TrainingLoop("sac", tiny_agent("sac"), cfgs, dirs, progress=False, tensorboard=False, **kwargs)

    group("long", 500).run()
    group("extended", 320).run()
    extended = group("extended", 500, resume=True)
    assert extended.resumed_at == 320
    extended.run()
    for seed in (0, 1):
        rows = comparable(read_rows(tmp_path / "extended" / f"seed{seed}"))
        assert rows == comparable(read_rows(tmp_path / "long" / f"seed{seed}"))


def test_members_may_be_different_envs_of_the_same_shapes(tmp_path):
    cfgs = [train_cfg("Walker2d-v5", 0, total=120, eval_freq=0), train_cfg("HalfCheetah-v5", 3, total=120, eval_freq=0)]
    dirs = [tmp_path / "walker", tmp_path / "cheetah"]
    result = TrainingLoop("sac", tiny_agent("sac"), cfgs, dirs, progress=False, tensorboard=False).run()
    assert result["env_steps"] == 120 and not result["stopped"]
    for run_dir, cfg in zip(dirs, cfgs):
        assert json.loads((run_dir / "config.json").read_text())["train"]["env_id"] == cfg.env_id
        assert ckpt.latest_valid_checkpoint(run_dir / "checkpoints") is not None


def test_stop_after_s_checkpoints_and_stops(tmp_path):
    cfgs = [train_cfg("s2ac/MultiGoal3-v0", 0, total=600)]
    trainer = TrainingLoop(
        "sac", tiny_agent("sac"), cfgs, [tmp_path / "run"], progress=False, tensorboard=False, stop_after_s=1e-9
    )
    result = trainer.run()
    assert result["stopped"] and result["env_steps"] == 1
    assert ckpt.latest_valid_checkpoint(tmp_path / "run" / "checkpoints").name == ckpt.checkpoint_name(1)


def test_bad_groups_are_refused_with_the_reason(tmp_path):
    agent = tiny_agent("sac")
    with pytest.raises(ValueError, match="same shapes"):
        TrainingLoop(
            "sac", agent, [train_cfg("Hopper-v5", 0), train_cfg("Walker2d-v5", 0)], [tmp_path / "a", tmp_path / "b"]
        )
    with pytest.raises(ValueError, match="schedule: train_freq"):
        cfgs = [train_cfg("Hopper-v5", 0), train_cfg("Hopper-v5", 1, train_freq=7)]
        TrainingLoop("sac", agent, cfgs, [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ValueError, match="distinct"):
        TrainingLoop("sac", agent, [train_cfg("Hopper-v5", 0)] * 2, [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ValueError, match="stop_after_s"):
        TrainingLoop("sac", agent, [train_cfg("Hopper-v5", 0)], [tmp_path / "a"], stop_after_s=float("nan"))


def test_members_resuming_from_different_steps_are_refused(tmp_path):
    agent = tiny_agent("sac")
    for seed, total in ((0, 150), (1, 300)):
        cfg = train_cfg("s2ac/MultiGoal3-v0", seed, total=total)
        TrainingLoop("sac", agent, [cfg], [tmp_path / f"seed{seed}"], progress=False, tensorboard=False).run()
    cfgs = [train_cfg("s2ac/MultiGoal3-v0", seed, total=600) for seed in (0, 1)]
    with pytest.raises(ckpt.CheckpointError, match=r"one env step.*\[150, 300\]"):
        TrainingLoop("sac", agent, cfgs, [tmp_path / "seed0", tmp_path / "seed1"], resume=True)


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Ant-v5", "s2ac/MultiGoal3-v0"])
def test_env_snapshot_restores_the_exact_next_steps(env_id):
    rng = np.random.default_rng(0)
    env = make_env(env_id)
    env.reset(seed=1)
    for _ in range(5):
        env.step(rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32))
    copy = make_env(env_id)
    copy.reset(seed=99)
    restore_env(copy, snapshot_env(env))
    for _ in range(40):
        action = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
        a, b = env.step(action), copy.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4]
        if a[2] or a[3]:
            break
    with pytest.raises(ValueError, match="snapshot is of"):
        restore_env(make_env("Walker2d-v5" if env_id != "Walker2d-v5" else "Hopper-v5"), snapshot_env(env))
