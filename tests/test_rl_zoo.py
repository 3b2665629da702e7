"""An RL Zoo user's settings: a hyper-parameter YAML (normalize, a lin_ schedule, policy_kwargs as a
string) through ``s2ac train --hyperparams`` and through the class API give the same run; the
normalisation statistics survive save, load and resume exactly; the schedule is linear to 0."""

from __future__ import annotations

import json

import jax
import numpy as np
import optax
import pytest
from flax import serialization
from test_faults import one_error_line, run_cli

from s2ac import SAC
from s2ac import checkpoint as ckpt
from s2ac.hyperparams import env_block, model_kwargs, parse_policy_kwargs
from s2ac.loop import Trainer
from s2ac.normalize import RunningMeanStd
from s2ac.schedules import parse_learning_rate, run_updates

ZOO_YAML = """\
CartPole-v1:
  n_timesteps: 1000
  policy: 'MlpPolicy'
Pendulum-v1:
  n_timesteps: 300
  policy: 'MlpPolicy'
  learning_rate: lin_1e-3
  normalize: true
  policy_kwargs: "dict(net_arch=[16, 16])"
  buffer_size: 10000
  batch_size: 32
  learning_starts: 100
  train_freq: 50
  gradient_steps: 5
  ent_coef: 'auto'
  gamma: 0.98
  tau: 0.02
  random_steps: 100
  eval_freq: 0
  checkpoint_freq: 150
"""
pytestmark = pytest.mark.xdist_group("rl_zoo")


def leaves_equal(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))


@pytest.fixture(scope="module")
def zoo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("zoo") / "sac.yml"
    path.write_text(ZOO_YAML)
    return path


@pytest.fixture(scope="module")
def cli_run(zoo_file, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("zoo_cli") / "run"
    args = ["train", "--algo", "sac", "--env", "Pendulum-v1", "--preset", "quick", "--hyperparams", zoo_file,
            "--out", run_dir, "--no-progress", "--no-plots"]  # fmt: skip
    code, lines = run_cli(args)
    assert code == 0, lines
    return run_dir


def test_the_yaml_through_the_cli_and_the_class_api_is_the_same_run(zoo_file, cli_run):
    saved = json.loads((cli_run / "config.json").read_text())
    assert saved["agent"]["lr_schedule"] == "linear" and saved["agent"]["critic_lr"] == 1e-3
    assert saved["agent"]["critic_hidden"] == [16, 16] and saved["agent"]["gamma"] == 0.98
    assert saved["train"]["normalize_obs"] and saved["train"]["normalize_reward"]
    assert saved["train"]["total_steps"] == 300
    kwargs, steps = model_kwargs(env_block(zoo_file, "Pendulum-v1"))
    model = SAC("MlpPolicy", "Pendulum-v1", preset="quick", seed=0, verbose=0, **kwargs)
    model.learn(steps)
    final = ckpt.list_checkpoints(cli_run / "checkpoints")[0]
    assert final.name == ckpt.checkpoint_name(300)
    cli_state = ckpt.load_agent_state(final, model.state)
    assert leaves_equal(jax.device_get(cli_state), jax.device_get(model.state))
    cli_stats = ckpt.load_trainer_state(final)["normalizer"]
    assert model.normalizer.state_dict() == cli_stats
    # The statistics moved off their start, and the observations the agent sees are normalised.
    assert np.all(np.asarray(cli_stats["obs_rms"]["var"]) != 1.0) and cli_stats["obs_rms"]["count"] > 300


def test_statistics_survive_save_load_and_resume_exactly(zoo_file, cli_run, tmp_path):
    kwargs, _ = model_kwargs(env_block(zoo_file, "Pendulum-v1"))
    model = SAC.load(cli_run)  # a run folder: its checkpoint's statistics
    stats = ckpt.load_trainer_state(ckpt.list_checkpoints(cli_run / "checkpoints")[0])["normalizer"]
    assert model.normalizer.state_dict() == stats
    zipped = SAC.load(model.save(tmp_path / "model"))
    assert zipped.normalizer.state_dict() == stats
    obs = np.asarray([[0.3, -0.9, 1.5], [1.0, 0.0, -7.0]], np.float32)
    a1, _ = model.predict(obs, deterministic=True)
    a2, _ = zipped.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    # predict normalises: feeding the normalised observation to the raw policy gives the same action.
    raw = model.policy.predict(zipped.normalizer.obs(obs), jax.random.PRNGKey(model.seed + 1), True)
    np.testing.assert_array_equal(a1, raw)
    # Resume: stop at env step 150 (a checkpoint with the statistics), resume, equal the straight run.
    straight = SAC("MlpPolicy", "Pendulum-v1", preset="quick", seed=0, verbose=0, **kwargs)
    config, train = straight.config, straight.train_config(300)
    first = Trainer("sac", config, train, tmp_path / "run", progress=False, on_step=lambda s: s.env_step < 150)
    assert first.run()["env_steps"] == 150
    resumed = Trainer("sac", config, train, tmp_path / "run", progress=False, resume=True)
    assert resumed.members[0].normalizer.state_dict() == first.members[0].normalizer.state_dict()
    resumed.run()
    final = ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")[0]
    ref = ckpt.list_checkpoints(cli_run / "checkpoints")[0]
    assert (final / ckpt.STATE_FILE).read_bytes() == (ref / ckpt.STATE_FILE).read_bytes()
    assert ckpt.load_trainer_state(final)["normalizer"] == ckpt.load_trainer_state(ref)["normalizer"]


def test_the_linear_schedule_reaches_zero_at_the_runs_last_update(cli_run):
    """The Adam step at update k uses lr0 (1 - k/K): the saved optimiser counts K updates, and the
    optax schedule, evaluated independently, is 0 there."""
    final = ckpt.list_checkpoints(cli_run / "checkpoints")[0]
    saved = serialization.msgpack_restore((final / ckpt.STATE_FILE).read_bytes())
    train = json.loads((cli_run / "config.json").read_text())["train"]
    horizon = json.loads((cli_run / "config.json").read_text())["agent"]["lr_schedule_updates"]
    assert horizon == 5 * (300 // 50 - (100 - 1) // 50) == 25  # rounds at steps 100, 150, ..., 300
    assert horizon == run_updates(type("T", (), train)())
    counts = [int(v) for k, v in _flat(saved) if k.endswith("count")]
    assert counts and max(counts) == horizon
    schedule = optax.linear_schedule(1e-3, 0.0, horizon)
    assert float(schedule(horizon)) == 0.0 and float(schedule(0)) == pytest.approx(1e-3)


def _flat(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _flat(v, f"{prefix}/{k}")
    else:
        yield prefix, tree


def test_running_statistics_match_numpy_over_the_whole_stream():
    rng = np.random.default_rng(0)
    stream = rng.normal(3.0, 2.0, size=(257, 4))
    rms = RunningMeanStd.zeros((4,))
    for chunk in np.array_split(stream, 9):
        rms.update(chunk)
    # The prior count 1e-4 at mean 0, var 1 moves the estimates by O(1e-6).
    np.testing.assert_allclose(rms.mean, stream.mean(0), rtol=1e-5)
    np.testing.assert_allclose(rms.var, stream.var(0), rtol=1e-5)


def test_learning_rate_forms_of_sb3_and_the_zoo():
    assert parse_learning_rate(3e-4) == (3e-4, "constant")
    assert parse_learning_rate("lin_7.3e-4") == (7.3e-4, "linear")
    assert parse_learning_rate(lambda p: p * 1e-3) == (1e-3, "linear")
    assert parse_learning_rate(lambda p: 1e-3) == (1e-3, "constant")
    with pytest.raises(ValueError, match="constant or linear"):
        parse_learning_rate(lambda p: p**2 * 1e-3)
    with pytest.raises(ValueError, match="expected a number, 'lin_<rate>'"):
        parse_learning_rate("cos_1e-3")


def test_policy_kwargs_strings_are_read_not_evaluated():
    assert parse_policy_kwargs("dict(net_arch=[400, 300], activation_fn=nn.ReLU)") == {
        "net_arch": [400, 300],
        "activation_fn": "nn.ReLU",
    }
    assert parse_policy_kwargs("{'net_arch': dict(pi=[64], qf=[400, 300])}") == {
        "net_arch": {"pi": [64], "qf": [400, 300]}
    }
    with pytest.raises(ValueError, match="not a literal"):
        parse_policy_kwargs("dict(net_arch=__import__('os').getcwd())")


def test_unsupported_and_unknown_keys_are_refused_in_one_line(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("Pendulum-v1:\n  use_sde: true\n  n_envs: 4\n  learning_rate: 1e-3\n")
    code, lines = run_cli(["train", "--algo", "sac", "--env", "Pendulum-v1", "--hyperparams", path, "--out",
                           tmp_path / "run"])  # fmt: skip
    assert code == 2
    line = one_error_line(lines)
    assert "keys s2ac does not support: n_envs (" in line and "use_sde (gSDE exploration)" in line
    path.write_text("Pendulum-v1:\n  learning_rat: 1e-3\n  policy_kwargs: 'dict(log_std_init=-3)'\n")
    code, lines = run_cli(["train", "--algo", "sac", "--env", "Pendulum-v1", "--hyperparams", path])
    assert code == 2 and "policy_kwargs keys s2ac does not support: log_std_init" in one_error_line(lines)
    path.write_text("Pendulum-v1:\n  learning_rat: 1e-3\n")
    code, lines = run_cli(["train", "--algo", "sac", "--env", "Pendulum-v1", "--hyperparams", path])
    assert code == 2 and "unknown keys 'learning_rat' (did you mean 'learning_rate'" in one_error_line(lines)
    code, lines = run_cli(["train", "--algo", "sac", "--env", "Pendulum-v0", "--hyperparams", path])
    assert code == 2 and "has no block for 'Pendulum-v0'; did you mean 'Pendulum-v1'?" in one_error_line(lines)
    assert not (tmp_path / "run").exists()


def test_tensorboard_runs_are_numbered_as_in_sb3(tmp_path):
    tiny = dict(preset="quick", learning_starts=100, random_steps=100, eval_freq=0, checkpoint_freq=0,
                batch_size=32, policy_kwargs=dict(net_arch=[16, 16]), verbose=0)  # fmt: skip
    model = SAC("Pendulum-v1", tensorboard_log=tmp_path, **tiny)
    model.learn(100, tb_log_name="pendulum")
    saved = model.save(tmp_path / "model")
    SAC.load(saved, tensorboard_log=tmp_path).learn(100, tb_log_name="pendulum")
    SAC("Pendulum-v1", tensorboard_log=tmp_path, **tiny).learn(100)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["SAC_1", "pendulum_1", "pendulum_2"]
