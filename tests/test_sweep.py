"""Sweeps on a local Ray: trials run, finished ones are skipped, partly finished ones are resumed."""

from __future__ import annotations

import dataclasses
import json

import pytest

ray = pytest.importorskip("ray")

from s2ac.logger import read_metrics  # noqa: E402
from s2ac.loop import Trainer  # noqa: E402
from s2ac.sweep import SweepConfig, read_ledger, run_sweep, summarize_runs, trial_configs, trial_specs  # noqa: E402

TINY = {"learning_starts": 50, "random_steps": 50, "eval_freq": 100, "eval_episodes": 1, "checkpoint_freq": 100}


@pytest.fixture(autouse=True)
def fresh_ray():
    """Every test starts and ends without a Ray instance (run_sweep starts its own)."""
    ray.shutdown()
    yield
    ray.shutdown()


def tiny_sweep(out, seeds=(0, 1), lockstep=False) -> SweepConfig:
    return SweepConfig(
        algos=("sac",),
        envs=("s2ac/MultiGoal3-v0",),
        seeds=seeds,
        presets=("quick",),
        total_steps=200,
        out=out,
        train_overrides=TINY,
        lockstep=lockstep,
    )


def statuses(out) -> list[tuple[str, str]]:
    return [(row["trial"], row["status"]) for row in read_ledger(out)]


@pytest.mark.parametrize(
    "lockstep",
    [
        # On Ray Tune (one Ray start for the three behaviours, ~50 s on 2 cores): make test-slow.
        pytest.param(False, marks=pytest.mark.slow, id="ray"),
        # In this process: the same ledger, resume and skip logic without Ray.
        pytest.param(True, id="lockstep"),
    ],
)
def test_sweep_resumes_a_partly_finished_trial_runs_the_rest_then_skips_them_all(tmp_path, lockstep):
    cfg = tiny_sweep(tmp_path, lockstep=lockstep)
    partial = trial_specs(cfg)[0]
    agent_config, train_config = trial_configs(partial)
    train_config = dataclasses.replace(train_config, total_steps=100)
    Trainer("sac", agent_config, train_config, partial.run_dir, progress=False, tensorboard=False).run()
    head = [r for r in read_metrics(partial.run_dir) if r["step"] <= 100]
    assert head and head[-1]["step"] == 100

    summary = run_sweep(cfg)
    assert summary["counts"] == {"finished": 2}
    for spec in trial_specs(cfg):
        rows = read_metrics(spec.run_dir)
        assert rows[-1]["step"] == 200
        assert json.loads((tmp_path / spec.trial_id / "config.json").read_text())["train"]["seed"] == spec.seed
    assert [r for r in read_metrics(partial.run_dir) if r["step"] <= 100] == head  # kept, not rewritten
    first = statuses(tmp_path)
    assert sorted(s for _, s in first) == ["finished", "finished", "started", "started"]
    started = {r["trial"]: r for r in read_ledger(tmp_path) if r["status"] == "started"}
    assert started[partial.trial_id]["resumed"] is True and started[partial.trial_id]["env_steps"] == 100
    assert all(t["final"]["step"] == 200 and "eval/mean_reward" in t["final"] for t in summary["trials"])
    assert (tmp_path / "ray").is_dir() != lockstep

    metrics_before = {s.trial_id: (tmp_path / s.trial_id / "metrics.jsonl").read_bytes() for s in trial_specs(cfg)}
    again = run_sweep(cfg)
    assert again["counts"] == {"skipped": 2}
    new_events = statuses(tmp_path)[len(first) :]
    assert sorted(s for _, s in new_events) == ["skipped", "skipped"]
    for tid, before in metrics_before.items():
        assert (tmp_path / tid / "metrics.jsonl").read_bytes() == before

    runs = summarize_runs(tmp_path)
    assert [(r["seed"], r["env_steps"], r["preset"]) for r in runs] == [(0, 200, "quick"), (1, 200, "quick")]


def test_sweep_rejects_unknown_override(tmp_path):
    with pytest.raises(ValueError, match="not an overridable"):
        run_sweep(SweepConfig(out=tmp_path, train_overrides={"no_such_field": 1}))


@pytest.mark.slow  # Ray end to end; lockstep resume itself is proved in test_lockstep
def test_run_mujoco_tiny_report(tmp_path):
    from s2ac.experiments.mujoco import run_mujoco

    summary = run_mujoco(tmp_path, envs=("Hopper-v5",), algos=("sac",), steps=300, seeds=(0,))
    assert (tmp_path / "report.md").is_file() and (tmp_path / "learning_curves.png").stat().st_size > 0
    assert len(summary["final_table"]) == 1
    saved = json.loads((tmp_path / "summary.json").read_text())
    (row,) = saved["final_table"]
    assert row["env_id"] == "Hopper-v5" and row["step"] == 300 and row["deterministic"]["n"] == 1
    report = (tmp_path / "report.md").read_text()
    assert "s2ac reproduce mujoco" in report and "trim_mean(x, 0.25)" in report
    final_section = report.split("## Final returns")[1].split("##")[0]
    assert sum(line.startswith("| sac") for line in final_section.splitlines()) == 1
    assert "| sac/Hopper-v5/corrected/seed0 | finished |" in report


@pytest.mark.slow  # Ray end to end; lockstep resume itself is proved in test_lockstep
def test_lockstep_sweep_groups_by_shape_stops_and_resumes(tmp_path):
    # Walker2d and HalfCheetah share shapes (one group of 2); Hopper is a group of its own.
    base = dict(
        algos=("sac",),
        envs=("Walker2d-v5", "HalfCheetah-v5", "Hopper-v5"),
        seeds=(0,),
        presets=("quick",),
        total_steps=120,
        out=tmp_path,
        train_overrides={**TINY, "eval_freq": 0},
        lockstep=True,
        tensorboard=False,
    )
    stopped = run_sweep(SweepConfig(**base, stop_after_s=1e-9))
    assert stopped["counts"] == {"stopped": 3}
    started = [r for r in read_ledger(tmp_path) if r["status"] == "started"]
    assert sorted(len(r["lockstep"]) for r in started) == [1, 2, 2]
    assert all(r["device"].startswith("cpu:") for r in started)

    finished = run_sweep(SweepConfig(**base))
    assert finished["counts"] == {"finished": 3}
    resumed = [r for r in read_ledger(tmp_path) if r["status"] == "started"][3:]
    assert all(r["resumed"] and r["env_steps"] == 1 for r in resumed)
    assert all(t["env_steps"] == 120 for t in finished["trials"])
    assert run_sweep(SweepConfig(**base))["counts"] == {"skipped": 3}


@pytest.mark.slow  # trains a full-size Hopper run on Ray first
def test_run_mujoco_report_only_tabulates_copied_runs_without_training(tmp_path):
    import shutil

    from s2ac.experiments.mujoco import run_mujoco

    ran = tmp_path / "ran"
    run_mujoco(ran, envs=("Hopper-v5",), algos=("sac",), steps=300, seeds=(0,))
    copied = tmp_path / "copied"  # config, metrics and ledger only, as when collected from other machines
    shutil.copytree(ran, copied, ignore=shutil.ignore_patterns("checkpoints", "tb", "ray"))
    events = len(read_ledger(copied))
    summary = run_mujoco(copied, envs=("Hopper-v5",), algos=("sac",), steps=300, seeds=(0,), report_only=True)
    assert len(read_ledger(copied)) == events  # nothing ran
    assert summary["final_table"][0]["deterministic"]["n"] == 1
    report = (copied / "report.md").read_text()
    assert "--report-only" in report and "trained nothing" in report
    assert "| sac/Hopper-v5/corrected/seed0 | finished | 300 |" in report


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"stop_after_s": 10.0}, "lockstep groups only"),
        ({"stop_after_s": float("nan"), "lockstep": True}, "positive number of seconds"),
        ({"stop_after_s": -1.0, "lockstep": True}, "positive number of seconds"),
    ],
)
def test_sweep_rejects_bad_stop_after_s(tmp_path, fields, message):
    with pytest.raises(ValueError, match=message):
        run_sweep(SweepConfig(out=tmp_path, **fields))
