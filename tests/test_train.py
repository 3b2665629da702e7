"""Training loop: exact resume, atomic checkpoints, divergence guard, bad input, CLI and class API."""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest
from tiny import MG, TINY_SCHEDULE, tiny_config, tiny_train

from s2ac import checkpoint as ckpt
from s2ac.agents import make_agent_config
from s2ac.config import make_train_config
from s2ac.envs import make_env
from s2ac.loop import Trainer
from s2ac.runs import TrainingDiverged

__all__ = ["Crash", "comparable", "read_rows", "tiny_agent", "tiny_train"]


def tiny_agent(algo="s2ac", **fields):
    """The suite's tiny config of ``algo`` (tests/tiny.py) on the 3-goal env."""
    return tiny_config(algo, **fields)


def comparable(rows):
    """Metric rows without wall-clock quantities."""
    return [
        {k: v for k, v in r.items() if not k.startswith("time/fps") and not k.startswith("time/updates_per_s")}
        for r in rows
    ]


def read_rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


class Crash(Exception):
    pass


@pytest.mark.xdist_group("tiny-loop")  # the tests that compile the tiny config's loop share a process
@pytest.mark.parametrize("algo", ["s2ac", "sac"])
def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, algo):
    straight = tmp_path / "straight"
    Trainer(algo, tiny_agent(algo), tiny_train(), straight, progress=False, tensorboard=False).run()

    def crash_at_500(step, row):
        if step == 500:
            raise Crash

    crashed = tmp_path / "crashed"
    with pytest.raises(Crash):
        Trainer(
            algo, tiny_agent(algo), tiny_train(), crashed, progress=False, tensorboard=False, callback=crash_at_500
        ).run()
    assert ckpt.latest_valid_checkpoint(crashed / "checkpoints") is not None
    resumed = Trainer(algo, tiny_agent(algo), tiny_train(), crashed, resume=True, progress=False, tensorboard=False)
    assert resumed.resumed_from is not None and resumed.counters.env_steps < 500
    resumed.run()
    assert comparable(read_rows(crashed)) == comparable(read_rows(straight))
    a = jax.tree_util.tree_leaves(resumed.state.critic_params)
    ref = Trainer(algo, tiny_agent(algo), tiny_train(), straight, resume=True, progress=False, tensorboard=False)
    b = jax.tree_util.tree_leaves(ref.state.critic_params)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_extending_a_finished_single_run_equals_the_longer_run(tmp_path):
    # Pendulum episodes are 200 steps, so the run of 300 ends mid-episode; its final checkpoint holds
    # the env state, observation and pending action, and the extension continues that episode.
    def train(total):
        return make_train_config("quick", "Pendulum-v1", **{**TINY_SCHEDULE, "total_steps": total})

    agent = tiny_agent("sac")
    Trainer("sac", agent, train(450), tmp_path / "straight", progress=False, tensorboard=False).run()
    Trainer("sac", agent, train(300), tmp_path / "extended", progress=False, tensorboard=False).run()
    extended = Trainer("sac", agent, train(450), tmp_path / "extended", resume=True, progress=False, tensorboard=False)
    assert extended.members[0].ep_len == 100  # really mid-episode
    extended.run()
    assert comparable(read_rows(tmp_path / "extended")) == comparable(read_rows(tmp_path / "straight"))
    straight = Trainer("sac", agent, train(450), tmp_path / "straight", resume=True, progress=False, tensorboard=False)
    for x, y in zip(jax.tree_util.tree_leaves(extended.state), jax.tree_util.tree_leaves(straight.state)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.xdist_group("tiny-loop")
def test_same_seed_same_metrics_different_seed_different(tmp_path):
    rows = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        Trainer(
            "s2ac-phi",
            tiny_agent("s2ac-phi"),
            tiny_train(300, seed=seed),
            tmp_path / name,
            progress=False,
            tensorboard=False,
        ).run()
        rows.append(comparable(read_rows(tmp_path / name)))
    assert rows[0] == rows[1]
    assert rows[0] != rows[2]


def test_divergence_guard_names_the_quantity_and_keeps_the_last_checkpoint(tmp_path):
    trainer = Trainer("sac", tiny_agent("sac"), tiny_train(), tmp_path, progress=False, tensorboard=False)
    original = trainer._train
    calls = {"n": 0}

    def poisoned(state, batches):
        calls["n"] += 1
        state, metrics = original(state, batches)
        if calls["n"] >= 15:
            metrics = dict(metrics, critic_loss=metrics["critic_loss"] * np.nan)
        return state, metrics

    trainer._train = poisoned
    with pytest.raises(TrainingDiverged, match="critic_loss") as info:
        trainer.run()
    last = ckpt.latest_valid_checkpoint(tmp_path / "checkpoints")
    assert last is not None and str(last) in str(info.value)
    ckpt.verify_checkpoint(last)


def test_checkpoint_write_is_atomic_and_corruption_is_detected(tmp_path):
    trainer = Trainer("sac", tiny_agent("sac"), tiny_train(200), tmp_path, progress=False, tensorboard=False)
    trainer.run()
    root = tmp_path / "checkpoints"
    good = ckpt.latest_valid_checkpoint(root)

    def failing_saver(path):
        path.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        ckpt.save_checkpoint(root, 999, jax.device_get(trainer.state), {}, failing_saver)
    assert ckpt.latest_valid_checkpoint(root) == good
    assert not [p for p in root.iterdir() if ".tmp-" in p.name]
    assert (root / ckpt.LATEST).read_text() == good.name

    state_file = good / ckpt.STATE_FILE
    data = bytearray(state_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    state_file.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match="state.msgpack"):
        ckpt.verify_checkpoint(good)
    with pytest.warns(UserWarning, match="corrupt"):
        fallback = ckpt.latest_valid_checkpoint(root)
    assert fallback != good


@pytest.mark.xdist_group("tiny-loop")
def test_resume_refuses_another_config_and_fresh_run_refuses_a_used_folder(tmp_path):
    Trainer("s2ac", tiny_agent(), tiny_train(200), tmp_path, progress=False, tensorboard=False).run()
    with pytest.raises(ckpt.CheckpointError, match="n_particles"):
        Trainer("s2ac", tiny_agent(n_particles=5), tiny_train(200), tmp_path, resume=True, progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer("s2ac", tiny_agent(), tiny_train(200), tmp_path, progress=False)
    # Extending a finished run is allowed (total_steps may change).
    Trainer("s2ac", tiny_agent(), tiny_train(260), tmp_path, resume=True, progress=False, tensorboard=False).run()


def test_bad_env_ids_are_named():
    with pytest.raises(ValueError, match="NoSuchEnv"):
        make_env("NoSuchEnv-v0")
    with pytest.raises(ValueError, match="discrete"):
        Trainer("sac", tiny_agent("sac"), make_train_config("quick", "CartPole-v1"), "/tmp/never-used", progress=False)


# One fast row per algorithm. SAC, SQL and SAC-NF train on Hopper (the MuJoCo path of the loop). The
# S²AC family trains on the 3-goal env, where its compiled loop (tiny config, 10 updates a round, 2
# evaluation episodes) is the one the resume and class-API tests compile; its Hopper rows are slow:
# its update and act at Hopper's shapes are tested in test_amortized.py and test_agents.py, the loop on
# MuJoCo by the other Hopper rows. The 4-goal rows are slow.
FAST_ROW_ENV = {"sac": "Hopper-v5", "sql": "Hopper-v5", "sac-nf": "Hopper-v5"}


@pytest.mark.xdist_group("tiny-loop")
@pytest.mark.parametrize(
    ("algo", "env_id"),
    [
        pytest.param(algo, env, marks=() if env == FAST_ROW_ENV.get(algo, MG) else pytest.mark.slow)
        for env in ("Hopper-v5", MG, "s2ac/MultiGoal4-v0")
        for algo in ("s2ac", "s2ac-phi", "s2ac-amortized", "sac", "sql", "sac-nf")
    ],
)
def test_every_algorithm_trains_a_few_hundred_steps(tmp_path, algo, env_id):
    train = make_train_config(
        "quick",
        env_id,
        total_steps=300,
        learning_starts=100,
        random_steps=100,
        train_freq=50,
        gradient_steps=TINY_SCHEDULE["gradient_steps"],
        eval_freq=300,
        eval_episodes=TINY_SCHEDULE["eval_episodes"],
        checkpoint_freq=0,
        log_every=100,
    )
    trainer = Trainer(algo, tiny_agent(algo), train, tmp_path, progress=False, tensorboard=False)
    result = trainer.run()
    assert result["env_steps"] == 300 and result["updates"] == 5 * TINY_SCHEDULE["gradient_steps"]
    rows = read_rows(tmp_path)
    last = rows[-1]
    assert np.isfinite(last["train/critic_loss"]) and np.isfinite(last["eval/mean_reward"])
    ckpt.verify_checkpoint(ckpt.latest_valid_checkpoint(tmp_path / "checkpoints"))


# -- CLI and class API ---------------------------------------------------------------------


def test_cli_train_eval_bench(tmp_path, capsys):
    from s2ac.cli import main

    out = tmp_path / "run"
    argv = [
        "train",
        "--algo",
        "sac",
        "--preset",
        "quick",
        "--env",
        MG,
        "--total-steps",
        "300",
        "--seed",
        "1",
        "--out",
        str(out),
        "--no-progress",
        "--train.learning-starts",
        "100",
        "--train.random-steps",
        "100",
        "--train.eval-freq",
        "300",
        "--train.eval-episodes",
        "1",
        "--agent.batch-size",
        "24",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["env_steps"] == 300
    assert {"learning_curves.png", "trajectories.png", "particles_on_q.png"} <= set(os.listdir(out))
    assert json.loads((out / "config.json").read_text())["agent"]["batch_size"] == 24

    assert main(["eval", str(out), "--episodes", "2", "--json"]) == 0
    evaluation = json.loads(capsys.readouterr().out)
    assert "mean_reward" in evaluation["deterministic"] and "success_rate" in evaluation["stochastic"]
    assert main(["eval", str(out), "--episodes", "4", "--env", "s2ac/MultiGoal3Obstacle-v0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["env"] == "s2ac/MultiGoal3Obstacle-v0"

    bench_argv = ["bench", "update", "--algo", "sac-nf", "--hidden", "16", "--repeats", "2", "--batch", "16"]
    assert main([*bench_argv, "--json"]) == 0
    bench = json.loads(capsys.readouterr().out)
    assert bench["flops"] > 0 and bench["median_ms"] > 0 and bench["ratio_to_sac"] > 0
    assert main(["bench", "act", "--env", MG, "--steps", "20", "--algos", "sac", "sql", "--json"]) == 0
    acting = json.loads(capsys.readouterr().out)
    assert set(acting["algos"]) == {"sac", "sql"}
    assert acting["algos"]["sac"]["throughput_vs_sac"] == 1.0

    with pytest.raises(SystemExit, match="unknown --algo"):
        main(["train", "--algo", "ppo"])
    assert main(["train", "--env", "NoSuchEnv-v0", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "NoSuchEnv" in capsys.readouterr().err


def test_cli_algo_amortized_selects_the_amortized_agent(tmp_path, capsys):
    from s2ac.cli import main

    out = tmp_path / "amortized"
    argv = [
        "train",
        "--algo",
        "s2ac-amortized",
        "--preset",
        "quick",
        "--total-steps",
        "120",
        "--out",
        str(out),
        "--no-progress",
        "--no-plots",
        "--train.learning-starts",  # no update and no policy action: what is tested is the agent chosen
        "120",
        "--train.random-steps",
        "120",
        "--train.eval-freq",
        "0",
        "--train.train-freq",
        "20",
    ]
    assert main(argv) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["algo"] == "s2ac-amortized" and saved["agent"]["act_with"] == "amortized"


@pytest.mark.xdist_group("tiny-loop")
def test_class_api_learn_predict_save_load(tmp_path):
    from s2ac import S2AC

    model = S2AC(
        MG,
        tiny_agent(),
        preset="quick",
        seed=0,
        run_dir=tmp_path / "run",
        learning_starts=100,
        random_steps=100,
        eval_freq=0,
        checkpoint_freq=0,
    )
    model.learn(300, progress_bar=False)
    obs = np.zeros(2, np.float32)
    action, _ = model.predict(obs, deterministic=True, key=jax.random.PRNGKey(0))
    assert action.shape == (2,) and np.all(np.abs(action) <= 1)
    model.save(tmp_path / "saved")
    loaded = S2AC.load(tmp_path / "saved")
    again, _ = loaded.predict(obs, deterministic=True, key=jax.random.PRNGKey(0))
    np.testing.assert_allclose(action, again)
    from_run = S2AC.load(tmp_path / "run")
    np.testing.assert_allclose(from_run.predict(obs, deterministic=True, key=jax.random.PRNGKey(0))[0], action)
    # SB3's signature: (observation, state, episode_start, deterministic) -> (action, state).
    first, state = model.predict(obs, "rnn-state", np.ones(1, bool), True)
    assert state == "rnn-state"
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], first)  # repeatable
    draws = [model.predict(obs)[0] for _ in range(3)]
    assert not np.allclose(draws[0], draws[1])  # stochastic calls differ
    with pytest.raises(ValueError, match="observation must have shape"):
        model.predict(np.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        model.predict(np.array([np.nan, 0.0], np.float32))


@pytest.mark.parametrize("algo", ["s2ac", "s2ac-phi", "sac"])
def test_cli_help_lists_every_config_field(algo, capsys):
    from s2ac.cli import main

    with pytest.raises(SystemExit) as info:
        main(["train", "--algo", algo, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "--agent.alpha" in text and "--total-steps" in text and "--train.total-steps" not in text
    if algo != "sac":
        assert "--agent.svgd-step-control" in text and "--agent.n-particles" in text


def test_episode_stats_summary_hand_values():
    from s2ac.evaluate import EpisodeStats

    stats = EpisodeStats(
        returns=[1.0, 3.0, 5.0, 7.0], lengths=[2, 4, 6, 8], goals=[0, 2, -1, 0], hit_wall=[True, False, True, True]
    )
    out = stats.summary("")
    assert out["mean_reward"] == 4.0 and out["mean_ep_length"] == 5.0
    assert out["success_rate"] == 0.75 and out["n_goals_reached"] == 2.0
    assert out["goal_0_fraction"] == 0.5 and out["goal_2_fraction"] == 0.25
    assert out["wall_hit_rate"] == 0.75 and out["goal_after_wall_hit"] == 2 / 3


@pytest.mark.parametrize(
    "argv",
    [
        ["sweep", "--help"],
        ["reproduce", "mujoco", "--help"],
        ["reproduce", "runtime", "--help"],
        ["reproduce", "multigoal", "--help"],
        ["reproduce", "entropy-toy", "--help"],
        ["bench", "act", "--help"],
    ],
)
def test_every_command_has_help(argv, capsys):
    from s2ac.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    assert "--out" in capsys.readouterr().out or argv[0] == "bench"


def test_every_evaluation_path_acts_with_test_selection(tmp_path):
    from s2ac import S2AC

    cfg = dataclasses.replace(tiny_agent("s2ac"), test_selection="softmax")
    trainer = Trainer("s2ac", cfg, tiny_train(), tmp_path / "run", progress=False, tensorboard=False)
    assert trainer.eval_modes == {"deterministic": "softmax", "stochastic": "random"}
    assert S2AC(MG, cfg, run_dir=tmp_path / "api").config.deterministic_mode == "softmax"
    assert make_agent_config("sac", "quick", MG).deterministic_mode == "max"
