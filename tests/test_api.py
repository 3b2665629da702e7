"""The class API as a Stable-Baselines3 user drives it, SB3's own helpers included."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import warnings
import zipfile

import gymnasium as gym
import jax
import numpy as np
import pytest

from s2ac import S2AC, SAC, SQL, Algorithm
from s2ac.callbacks import BaseCallback, CallbackList, CheckpointCallback, EvalCallback
from s2ac.loop import Trainer

# A tiny SAC schedule on Pendulum: training starts at step 100, 5 updates every 50 steps.
TINY = dict(
    preset="quick",
    learning_starts=100,
    random_steps=100,
    train_freq=50,
    gradient_steps=5,
    eval_freq=0,
    checkpoint_freq=0,
    batch_size=32,
    policy_kwargs=dict(net_arch=[32, 32]),
    verbose=0,
)
pytestmark = pytest.mark.xdist_group("api")


def leaves_equal(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))


def test_learn_twice_equals_one_longer_learn_and_the_trainer():
    split = SAC("Pendulum-v1", seed=3, **TINY)
    split.learn(200).learn(200, reset_num_timesteps=False)
    straight = SAC("Pendulum-v1", seed=3, **TINY)
    straight.learn(400)
    assert leaves_equal(split.get_parameters(), straight.get_parameters())
    assert split.num_timesteps == straight.num_timesteps == 400
    # The model runs the CLI's loop: the same run through Trainer gives the same weights.
    trainer = Trainer("sac", straight.config, straight.train_config(400), None, progress=False)
    trainer.run()
    assert leaves_equal(jax.device_get(trainer.state), jax.device_get(straight.state))


def test_load_then_learn_continues_from_the_loaded_weights_and_step_count(tmp_path):
    model = SAC("MlpPolicy", "Pendulum-v1", seed=0, **TINY)
    model.learn(300)
    saved = model.save(tmp_path / "sac_pendulum")
    assert saved == tmp_path / "sac_pendulum.zip" and saved.is_file() and zipfile.is_zipfile(saved)
    loaded = SAC.load(tmp_path / "sac_pendulum")
    assert leaves_equal(loaded.get_parameters(), model.get_parameters())
    assert loaded.num_timesteps == 300 and loaded.schedule == model.schedule and loaded.preset == "quick"
    assert loaded.config == model.config
    before = loaded.get_parameters()
    loaded.learn(40, reset_num_timesteps=False)  # no training round falls in steps 301..340
    assert loaded.num_timesteps == 340
    assert leaves_equal(loaded.get_parameters(), before)  # continued from the loaded weights, not a fresh init
    loaded.learn(60, reset_num_timesteps=False)  # a round at 350 and 400: the weights move on from there
    assert not leaves_equal(loaded.get_parameters(), before)
    fresh = SAC("Pendulum-v1", seed=0, **TINY)
    assert not leaves_equal(fresh.get_parameters(), before)
    loaded.learn(50)  # SB3's default resets the counter, not the weights
    assert loaded.num_timesteps == 50 and loaded.counters.env_steps == 450


def test_the_replay_buffer_saves_and_loads_as_in_sb3(tmp_path):
    model = SAC("Pendulum-v1", seed=0, **TINY)
    with pytest.raises(ValueError, match="no replay buffer yet"):
        model.save_replay_buffer(tmp_path / "buffer.npz")
    model.learn(300)
    model.save(tmp_path / "model")
    model.save_replay_buffer(tmp_path / "buffer.npz")
    loaded = SAC.load(tmp_path / "model")
    loaded.load_replay_buffer(tmp_path / "buffer.npz")
    loaded.learn(50, reset_num_timesteps=False)  # a training round at 350, from the loaded transitions
    assert len(loaded.replay_buffer) == 350
    np.testing.assert_array_equal(loaded.replay_buffer.obs[:300], model.replay_buffer.obs[:300])
    assert loaded.counters.updates == model.counters.updates + 5


def test_load_of_a_run_folder_then_learn_is_the_straight_longer_run(tmp_path):
    straight = SAC("Pendulum-v1", seed=1, run_dir=tmp_path / "straight", **TINY)
    straight.learn(400)
    SAC("Pendulum-v1", seed=1, run_dir=tmp_path / "run", **TINY).learn(230)
    resumed = SAC.load(tmp_path / "run")
    assert resumed.num_timesteps == 230
    resumed.learn(170, reset_num_timesteps=False)
    assert leaves_equal(resumed.get_parameters(), straight.get_parameters())


def test_a_model_folder_of_earlier_versions_still_loads(tmp_path):
    from s2ac import checkpoint as ckpt
    from s2ac.runs import RUN_CONFIG_FILE, run_config_dict

    model = SAC("Pendulum-v1", seed=2, **TINY)
    folder = tmp_path / "old-model"  # what save() wrote before it wrote one zip
    trainer_state = {"env_id": model.env_id, "preset": model.preset, "seed": model.seed}
    ckpt.save_checkpoint(folder, 0, jax.device_get(model.state), trainer_state, np.savez, keep=1)
    config = run_config_dict("sac", model.config, model.train_config(1))
    (folder / RUN_CONFIG_FILE).write_text(json.dumps(config))
    loaded = SAC.load(folder)
    assert leaves_equal(loaded.get_parameters(), model.get_parameters()) and loaded.num_timesteps == 0
    loaded.learn(120)  # a new run from those weights; nothing is written into the old folder
    assert sorted(p.name for p in folder.iterdir()) == ["ckpt-000000000", RUN_CONFIG_FILE, "latest"]


def test_the_env_passed_is_the_env_trained_on(tmp_path):
    env = gym.wrappers.RecordEpisodeStatistics(gym.make("Pendulum-v1", max_episode_steps=50))
    model = SAC("MlpPolicy", env, seed=0, **TINY)
    infos, dones = [], []

    def record(locals_, globals_):
        infos.append(locals_["infos"][0])
        dones.append(bool(locals_["dones"][0]))
        return True

    model.learn(150, callback=record)
    assert model.get_env() is env
    ends = [i for i, d in enumerate(dones) if d]
    assert ends == [49, 99, 149]  # 50-step episodes: the make kwarg was kept
    assert all("episode" in infos[i] for i in ends)  # the wrapper was kept
    returns, lengths = model.evaluate(n_episodes=2)  # evaluation copies keep the make kwargs too
    assert list(lengths) == [50, 50]


class NaNRewardAt(gym.Wrapper):
    def __init__(self, env, step):
        super().__init__(env)
        self.at, self.t = step, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        return obs, (float("nan") if self.t == self.at else reward), terminated, truncated, info


def test_a_diverging_run_without_a_folder_says_it_has_no_checkpoint():
    from s2ac.runs import TrainingDiverged

    model = SAC(NaNRewardAt(gym.make("Pendulum-v1"), 30), **TINY)
    with pytest.raises(TrainingDiverged, match=r"at env step 30; .*last good checkpoint: none \(this run writes no"):
        model.learn(100)


def test_a_factory_and_a_vector_env():
    model = SAC(lambda: gym.make("Pendulum-v1", max_episode_steps=20), seed=0, **TINY)
    assert model.get_env().spec.max_episode_steps == 20
    assert list(model.evaluate(n_episodes=1)[1]) == [20]
    with pytest.raises(ValueError, match="vector envs are not supported"):
        SAC(gym.make_vec("Pendulum-v1", num_envs=2), **TINY)
    with pytest.raises(ValueError, match="vector envs are not supported"):
        SAC(lambda: gym.make_vec("Pendulum-v1", num_envs=2), **TINY)


class StopAt(BaseCallback):
    def __init__(self, n):
        super().__init__()
        self.n, self.calls = n, []

    def _on_training_start(self):
        self.calls.append("start")

    def _on_step(self):
        return self.n_calls < self.n

    def _on_training_end(self):
        self.calls.append("end")


def test_callback_false_stops_and_the_hooks_run_in_order():
    model = SAC("Pendulum-v1", seed=0, **TINY)
    stop = StopAt(120)
    other = StopAt(10**9)
    model.learn(500, callback=CallbackList([stop, other]))
    assert model.num_timesteps == 120 and stop.n_calls == other.n_calls == 120
    assert stop.calls == other.calls == ["start", "end"] and stop.model is model
    with pytest.raises(TypeError, match="callback must be"):
        model.learn(10, callback=42)


def test_our_eval_and_checkpoint_callbacks(tmp_path):
    model = SAC("Pendulum-v1", seed=0, **TINY)
    evaluation = EvalCallback(eval_freq=100, n_eval_episodes=2, best_model_save_path=tmp_path / "best", verbose=0)
    checkpoints = CheckpointCallback(save_freq=150, save_path=tmp_path / "ckpts", name_prefix="sac")
    model.learn(300, callback=[evaluation, checkpoints])
    assert evaluation.evaluations_timesteps == [100, 200, 300]
    assert all(len(r) == 2 for r in evaluation.evaluations_results)
    assert (tmp_path / "best" / "best_model.zip").is_file()
    assert sorted(p.name for p in (tmp_path / "ckpts").iterdir()) == ["sac_150_steps.zip", "sac_300_steps.zip"]
    assert "eval/mean_reward" in model.logger.rows[-1]
    assert SAC.load(tmp_path / "ckpts" / "sac_150_steps").num_timesteps == 150


def test_sb3_evaluate_policy_and_its_callbacks_drive_an_s2ac_model(tmp_path):
    from stable_baselines3.common.callbacks import CheckpointCallback as SB3Checkpoint
    from stable_baselines3.common.callbacks import EvalCallback as SB3Eval
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    # No SVGD step (q0's particles, picked by Q): what is tested is SB3's helpers driving the model, and
    # the sampler's steps would make every program this test compiles several times larger.
    model = S2AC("MlpPolicy", "Pendulum-v1", seed=0, n_particles=4, svgd_steps=0, **TINY)
    eval_env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SB3 notes that our training env is not a VecEnv
        sb3_eval = SB3Eval(eval_env, eval_freq=100, n_eval_episodes=2, log_path=str(tmp_path / "log"), warn=False,
                           verbose=0)  # fmt: skip
        sb3_ckpt = SB3Checkpoint(save_freq=100, save_path=str(tmp_path / "sb3"), name_prefix="s2ac")
        model.learn(200, callback=[sb3_eval, sb3_ckpt])
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=4, deterministic=True, warn=False)
    assert list(sb3_eval.evaluations_timesteps) == [100, 200] and np.isfinite(sb3_eval.last_mean_reward)
    assert np.load(tmp_path / "log" / "evaluations.npz")["results"].shape == (2, 2)
    assert sorted(p.name for p in (tmp_path / "sb3").iterdir()) == ["s2ac_100_steps.zip", "s2ac_200_steps.zip"]
    assert np.isfinite(mean) and mean < 0  # Pendulum's rewards are <= 0
    # Deterministic S²AC actions are repeatable for a given observation and model.
    obs = np.asarray(eval_env.reset(), np.float32)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


def test_constructor_names_as_in_sb3(tmp_path):
    model = SAC("Pendulum-v1", learning_rate=3e-4, buffer_size=5000, gamma=0.95, tau=0.01, ent_coef="auto_0.5",
                train_freq=(10, "step"), gradient_steps=-1, **{k: v for k, v in TINY.items() if k != "train_freq"
                                                               and k != "gradient_steps"})  # fmt: skip
    cfg, sched = model.config, model.train_config(100)
    assert cfg.critic_lr == cfg.actor_lr == cfg.alpha_lr == 3e-4 and cfg.gamma == 0.95 and cfg.tau == 0.01
    assert cfg.auto_alpha and cfg.alpha == 0.5 and cfg.actor_hidden == cfg.critic_hidden == (32, 32)
    assert sched.buffer_size == 5000 and sched.train_freq == 10 and sched.gradient_steps == 10
    with pytest.raises(TypeError, match="did you mean 'learning_rate'"):
        SAC("Pendulum-v1", learning_rat=1e-3)
    with pytest.raises(TypeError, match="did you mean 'n_particles'"):
        S2AC("Pendulum-v1", n_particle=4)
    assert S2AC("Pendulum-v1", ent_coef="auto").config.auto_alpha  # S²AC tunes alpha on its closed-form entropy
    with pytest.raises(ValueError, match="keep alpha fixed"):
        SQL("Pendulum-v1", ent_coef="auto")  # no log-density to tune it on
    with pytest.raises(ValueError, match="critic_lr"):
        SAC("Pendulum-v1", learning_rate=-1.0)  # refused at construction, not at learn()
    with pytest.raises(ValueError, match="configures 'sac', not 's2ac'"):
        S2AC("Pendulum-v1", SAC("Pendulum-v1").config)
    assert S2AC("Pendulum-v1", {"n_particles": 7}).config.n_particles == 7
    with pytest.raises(TypeError, match="unknown S2ACConfig field 'n_partcles'"):
        S2AC("Pendulum-v1", {"n_partcles": 7})
    assert isinstance(SAC("Pendulum-v1", seed=None).seed, int)


def test_no_files_unless_asked_and_tensorboard_log_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(tmp_path)
    model = SAC("Pendulum-v1", seed=0, **TINY)
    model.learn(120)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"] and not any((tmp_path / "tmp").iterdir())
    logged = SAC("Pendulum-v1", seed=0, tensorboard_log=tmp_path / "tb", **{**TINY, "log_every": 50})
    logged.learn(120)
    logged.learn(60)  # the same run folder: one model is one run
    again = SAC("Pendulum-v1", seed=0, tensorboard_log=tmp_path / "tb", **{**TINY, "log_every": 50})
    again.learn(120)
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == ["SAC_1", "SAC_2"]
    rows = (tmp_path / "tb" / "SAC_1" / "metrics.jsonl").read_text().splitlines()
    assert [int(r.split(",")[0].split(":")[1]) for r in rows] == [50, 100, 150]


def test_short_learn_warns_about_the_random_phase():
    model = SAC("Pendulum-v1", **{**TINY, "random_steps": 500})
    with pytest.warns(UserWarning, match="uniform random actions"):
        model.learn(100)


def test_parameters_policy_and_set_env():
    model = SAC("Pendulum-v1", seed=0, **TINY)
    other = SAC("Pendulum-v1", seed=5, **TINY)
    other.set_parameters(model.get_parameters())
    obs = np.zeros(3, np.float32)
    np.testing.assert_array_equal(other.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    with pytest.raises(ValueError, match="entries"):
        other.set_parameters({"actor_params": model.get_parameters()["actor_params"]})
    assert model.policy.agent is model.agent and model.policy.deterministic_mode == "max"
    model.learn(120)
    model.set_env(gym.make("Pendulum-v1", max_episode_steps=30))
    model.learn(60, reset_num_timesteps=False)
    assert model.num_timesteps == 180 and model.get_env().spec.max_episode_steps == 30
    with pytest.raises(ValueError, match="spaces"):
        model.set_env("MountainCarContinuous-v0")


def test_save_refuses_a_folder_and_load_refuses_another_algorithm(tmp_path):
    model = SAC("Pendulum-v1", **TINY)
    (tmp_path / "run.zip").mkdir()
    with pytest.raises(IsADirectoryError, match="folder"):
        model.save(tmp_path / "run.zip")
    path = model.save(tmp_path / "sac")
    with pytest.raises(ValueError, match="holds a SAC"):
        S2AC.load(path)
    assert type(Algorithm.load(path)) is SAC
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(Exception, match="not a readable s2ac model file"):
        SAC.load(path)


def test_import_s2ac_registers_its_envs():
    code = "import gymnasium as gym, s2ac; print(gym.make('s2ac/MultiGoal3-v0').spec.max_episode_steps)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "30"
    code = "import gymnasium as gym; print(gym.make('s2ac:s2ac/MultiGoal3-v0').spec.id)"  # no import needed
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "s2ac/MultiGoal3-v0"
