"""The command line: one flag per setting, the help's order and length, the usage's lists,
test_selection on every evaluation path, ``eval --video`` and ``plot``."""

import dataclasses
import json
import re

import jax
import numpy as np
import pytest
import tyro
from tiny import tiny_config

from s2ac.agents import ALGOS, algo_spec, config_class, make_agent_config
from s2ac.cli import EXPERIMENTS, HANDLERS, _preparse_train, main
from s2ac.cli_options import TOP_LEVEL_TRAIN_FIELDS, train_command, train_configs
from s2ac.config import TrainConfig, advanced_fields, make_train_config

MG = "s2ac/MultiGoal3-v0"
# The tiniest schedule: no update before the end, so a run compiles only its evaluation policy.
TINY = [
    "--preset", "quick", "--env", MG, "--total-steps", "200", "--no-progress", "--no-plots",
    "--train.learning-starts", "200", "--train.random-steps", "200", "--train.eval-freq", "100",
    "--train.eval-episodes", "1", "--train.checkpoint-freq", "200",
    "--agent.critic-hidden", "8", "8", "--agent.actor-hidden", "8", "8",
]  # fmt: skip


def tiny_run(path, seed, algo="sac"):
    assert main(["train", "--algo", algo, *TINY, "--seed", str(seed), "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tiny SAC runs on the 3-goal env (seeds 0, 1, 2)."""
    root = tmp_path_factory.mktemp("runs")
    return [tiny_run(root / f"sac-{seed}", seed) for seed in range(3)]


def help_text(capsys, monkeypatch, *argv):
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    assert info.value.code == 0
    return capsys.readouterr().out


def listed_flags(text):
    """The flags the help's option boxes list, in order (``--x, --no-x`` counts once)."""
    return re.findall(r"^(?:│ |  )(--[a-z0-9][a-z0-9.-]*)", text, flags=re.M)


# -- 1. one flag per setting ----------------------------------------------------------------


@pytest.mark.parametrize("algo", ALGOS)
def test_every_setting_has_exactly_one_flag(algo, capsys, monkeypatch):
    flags = listed_flags(help_text(capsys, monkeypatch, "train", "--algo", algo, "--help-all"))
    assert len(flags) == len(set(flags))
    pinned = algo_spec(algo).fixed_fields
    agent_fields = [f.name for f in dataclasses.fields(config_class(algo)) if f.name not in pinned]
    train_fields = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in TOP_LEVEL_TRAIN_FIELDS]
    expected = {"--algo", "--env", "--preset", "--total-steps", "--seed", "--out", "--resume"}
    expected |= {"--progress", "--plots", "--hyperparams"}
    expected |= {f"--agent.{n.replace('_', '-')}" for n in agent_fields}
    expected |= {f"--train.{n.replace('_', '-')}" for n in train_fields}
    assert set(flags) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["--train.env-id", "Pendulum-v1"],
        ["--train.seed", "3"],
        ["--train.total-steps", "10"],
        ["--act-with", "amortized"],
        ["--algo", "s2ac-phi", "--agent.init", "learned"],
    ],
)
def test_removed_duplicate_flags_fail(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", *argv, "--no-progress"])
    assert info.value.code == 2
    assert "Unrecognized" in capsys.readouterr().err


def test_single_flags_reach_the_configs():
    agent, train = make_agent_config("s2ac", "quick", "Pendulum-v1"), make_train_config("quick", "Pendulum-v1")
    default = train_command("s2ac", "quick", "Pendulum-v1", agent, train)
    argv = ["--env", "Pendulum-v1", "--total-steps", "7", "--seed", "3", "--train.log-every", "9"]
    argv += ["--agent.n-particles", "4", "--agent.remat-keep-matmuls", "True"]
    args = tyro.cli(type(default), default=default, args=argv)
    agent_cfg, train_cfg = train_configs(args, agent, train)
    assert (train_cfg.env_id, train_cfg.total_steps, train_cfg.seed, train_cfg.log_every) == ("Pendulum-v1", 7, 3, 9)
    assert agent_cfg.n_particles == 4 and agent_cfg.remat_keep_matmuls is True and agent_cfg.init == "learned"
    assert dataclasses.replace(agent_cfg, n_particles=agent.n_particles, remat_keep_matmuls=None) == agent


def test_first_parsing_stage_has_the_help_defaults():
    known = _preparse_train([])
    default = train_command(
        known.algo, known.preset, known.env, make_agent_config(known.algo, known.preset, known.env), TrainConfig()
    )
    assert (known.algo, known.preset, known.env) == (default.algo, default.preset, default.env)


# -- 2. the usage lists every command and experiment ---------------------------------------------


def test_usage_lists_every_command_and_experiment(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for name in [*HANDLERS, *EXPERIMENTS]:
        assert re.search(rf"^  {re.escape(name)} ", text, flags=re.M), name
    assert "sweep" in HANDLERS and "plot" in HANDLERS


# -- 3. the help: user-facing first, the advanced group on request -----------------------------------


def test_train_help_is_short_with_user_facing_flags_first(capsys, monkeypatch):
    text = help_text(capsys, monkeypatch, "train", "--help")
    assert (
        len(text.splitlines()) <= 150
    )  # 182 before the advanced group moved to --help-all; 140 before dime, s2ac-dist and the support fields
    flags = listed_flags(text)
    first = ["--algo", "--env", "--preset", "--total-steps", "--seed", "--out", "--resume"]
    assert flags[: len(first)] == first
    for knob in ("--agent.critic-lr", "--agent.actor-lr", "--agent.batch-size", "--agent.n-particles"):
        assert knob in flags and flags.index(knob) < flags.index("--train.learning-starts")
    assert "--agent.svgd-steps" in flags
    assert not {f"--agent.{n.replace('_', '-')}" for n in advanced_fields(config_class("s2ac"))} & set(flags)
    assert "--help-all" in text


@pytest.mark.parametrize("algo", ALGOS)
def test_help_all_lists_the_advanced_fields_last(algo, capsys, monkeypatch):
    text = help_text(capsys, monkeypatch, "train", "--algo", algo, "--help-all")
    advanced = {f"--agent.{n.replace('_', '-')}" for n in advanced_fields(config_class(algo))}
    assert advanced, algo
    flags = listed_flags(text)
    tail = flags[len(flags) - len(advanced) :]
    assert set(tail) == advanced and text.index("advanced options") < text.index(tail[0])
    assert text.index("advanced options") > text.index("--train.log-every")


# -- 4. test_selection on every evaluation path ---------------------------------------------------


def _s2ac_config(test_selection):
    # No SVGD step: the test is about the mode each evaluation path passes, and the sampler's steps
    # would make every act program it compiles several times larger.
    return tiny_config("s2ac", svgd_steps=0, test_selection=test_selection)


def test_test_selection_softmax_is_reachable_on_every_evaluation_path(tmp_path, monkeypatch):
    from s2ac.experiments.multigoal import run as multigoal_run
    from s2ac.experiments.multigoal.config import MultigoalBudget
    from s2ac.loop import Trainer

    cfg = _s2ac_config("softmax")
    train = make_train_config("quick", MG, eval_episodes=1, eval_freq=0, checkpoint_freq=0, buffer_size=1000)
    trainer = Trainer("s2ac", cfg, train, tmp_path / "run", progress=False, tensorboard=False)
    agent, state = trainer.agent, trainer.state

    # The deterministic action under "softmax" is not the "max" one.
    obs = jax.numpy.asarray(np.random.default_rng(0).uniform(-2, 2, (32, 2)), jax.numpy.float32)
    key = jax.random.PRNGKey(1)
    deterministic = agent.act(state, obs, key, mode=cfg.deterministic_mode)
    assert not np.allclose(deterministic, agent.act(state, obs, key, mode="max"))

    # The loop's evaluation (``s2ac train``, the class API, whose predict(deterministic=True) ``s2ac eval`` uses,
    # acts with the same ``deterministic_mode``).
    modes, act = [], agent.act
    monkeypatch.setattr(agent, "act", lambda *a, mode: modes.append(mode) or act(*a, mode=mode))
    trainer.evaluate(n_episodes=1)
    assert set(modes) == {"softmax", "random"}
    monkeypatch.setattr(agent, "act", act)

    # The multigoal experiment plays its "max" episodes (jax_loop.play_episodes) with the same mode.
    modes.clear()
    real = multigoal_run.play_episodes
    monkeypatch.setattr(multigoal_run, "play_episodes", lambda *a: modes.append(a[-1]) or real(*a))
    states = jax.tree_util.tree_map(lambda x: x[None], state)
    run = multigoal_run.TrainedRun("s2ac", MG, cfg, agent, states, {}, 0.0)
    multigoal_run.evaluate_run(run, MultigoalBudget(eval_episodes=1), jax.random.PRNGKey(0))
    assert modes == ["random", "softmax"] * 2  # plain and obstacle variants


# -- 5. eval --video ------------------------------------------------------------------------------


def test_eval_video_writes_mp4(runs, tmp_path, capsys):
    pytest.importorskip("moviepy")
    capsys.readouterr()
    assert main(["eval", str(runs[0]), "--video", str(tmp_path / "video"), "--episodes", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    videos = sorted((tmp_path / "video").glob("*.mp4"))
    assert [v.name for v in videos] == ["deterministic-0-episode-0.mp4", "stochastic-0-episode-0.mp4"]
    assert all(v.stat().st_size > 0 for v in videos) and out["videos"] == [str(v) for v in videos]


# -- 6. plot ---------------------------------------------------------------------------------------


def numpy_iqm(x):
    x = np.sort(np.asarray(x, float))
    cut = int(0.25 * len(x))
    return float(x[cut : len(x) - cut].mean())


def test_plot_compares_runs(runs, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "cmp" / "comparison.png"
    assert main(["plot", *map(str, runs), "--out", str(out), "--labels", "a", "a", "b", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert out.stat().st_size > 0 and out.with_suffix(".md").exists()
    assert json.loads(out.with_suffix(".json").read_text())["iqm"] == summary["iqm"]
    assert summary["metric"] == "eval/mean_reward"
    # Independently: last eval/mean_reward of each run, min-max normalised over the task's runs.
    finals = []
    for run in runs:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        finals.append([r["eval/mean_reward"] for r in rows if "eval/mean_reward" in r][-1])
    lo, hi = min(finals), max(finals)
    norm = [0.5 if hi == lo else (f - lo) / (hi - lo) for f in finals]
    for label, scores in (("a", norm[:2]), ("b", norm[2:])):
        got = summary["iqm"][label]
        assert got["iqm"] == pytest.approx(numpy_iqm(scores))
        assert got["ci_low"] <= got["iqm"] + 1e-12 and got["iqm"] <= got["ci_high"] + 1e-12
    assert main(["plot", *map(str, runs), "--labels", "a", "b", "--out", str(out)]) == 2
    assert "2 labels for 3 run folders" in capsys.readouterr().err


def test_iqm_and_stratified_interval_match_numpy():
    from s2ac.compare import RunCurve, summarise

    rng = np.random.default_rng(0)
    curves, finals = [], {}
    for env, n_runs in (("A-v0", 5), ("B-v0", 4), ("C-v0", 1)):
        for label in ("x", "y"):
            for seed in range(n_runs):
                final = float(rng.normal(10 if label == "x" else 0, 5) * (1 + len(env)))
                finals.setdefault(env, []).append((label, final))
                curves.append(RunCurve(None, label, env, seed, np.array([1.0, 2.0]), np.array([0.0, final])))
    summary = summarise(curves, "eval/mean_reward", resamples=500, seed=0)
    for label in ("x", "y"):
        pooled = []
        for rows in finals.values():
            values = [f for _, f in rows]
            lo, hi = min(values), max(values)
            pooled += [(f - lo) / (hi - lo) for lab, f in rows if lab == label]
        got = summary["iqm"][label]
        assert got["iqm"] == pytest.approx(numpy_iqm(pooled)) and got["n_runs"] == 10 and got["n_tasks"] == 3
        assert got["ci_low"] < got["iqm"] < got["ci_high"]
