"""``s2ac reproduce peers``: the across-task statistics against hand computations and SciPy, and the
report written from run folders (made by hand here: the harness's training is tested elsewhere)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from s2ac.cli import main
from s2ac.experiments import peers
from s2ac.sweep import append_ledger


def test_improvement_probability_by_hand():
    # x = 1: beats neither 2; x = 2: ties both (half each); x = 3: beats both -> (0 + 1 + 2) / 6
    assert peers.improvement_probability(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0])) == pytest.approx(0.5)
    assert peers.improvement_probability(np.array([5.0]), np.array([1.0, 2.0])) == 1.0
    assert peers.improvement_probability(np.array([0.0]), np.array([1.0, 2.0])) == 0.0


def test_improvement_probability_is_the_normalised_mann_whitney_statistic():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 7).astype(float), rng.integers(0, 5, 9).astype(float)  # with ties
    u = stats.mannwhitneyu(x, y).statistic
    assert peers.improvement_probability(x, y) == pytest.approx(u / (len(x) * len(y)))


def test_probability_of_improvement_averages_tasks_and_its_interval_holds_the_point():
    x = [np.array([3.0, 4.0, 5.0]), np.array([0.0, 1.0, 2.0])]
    y = [np.array([1.0, 2.0, 2.5]), np.array([5.0, 6.0, 7.0])]
    point, low, high = peers.probability_of_improvement(x, y, resamples=300)
    assert point == pytest.approx(0.5)  # 1 on the first task, 0 on the second
    assert low <= point <= high and 0.0 <= low and high <= 1.0


def test_normalise_per_task_uses_every_method_of_the_task():
    scores = {"a": {"t": np.array([0.0, 10.0])}, "b": {"t": np.array([5.0]), "u": np.array([3.0, 3.0])}}
    out = peers.normalise_per_task(scores)
    np.testing.assert_allclose(out["a"]["t"], [0.0, 1.0])
    np.testing.assert_allclose(out["b"]["t"], [0.5])
    np.testing.assert_allclose(out["b"]["u"], [0.5, 0.5])  # min = max


def fake_run(out, algo, env, preset, seed, ret, status="finished"):
    trial = f"{algo}/{env}/{preset}/seed{seed}"
    run_dir = out / trial
    run_dir.mkdir(parents=True)
    train = {"env_id": env, "seed": seed, "total_steps": 100}
    (run_dir / "config.json").write_text(json.dumps({"algo": algo, "train": train}))
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 100, "eval/mean_reward": ret}) + "\n")
    append_ledger(out / "ledger.jsonl", trial, status, env_steps=100)


def test_report_from_run_folders_names_each_method_and_skips_unfinished_runs(tmp_path, capsys):
    for seed in (0, 1):
        fake_run(tmp_path, "sac", "Pendulum-v1", "quick", seed, -200.0 - seed)
        fake_run(tmp_path, "crossq", "Pendulum-v1", "quick", seed, -150.0 - seed)
    fake_run(tmp_path, "crossq", "Pendulum-v1", "quick", 2, 1e9, status="stopped")  # not finished: left out
    fake_run(tmp_path, "sac", "Pendulum-v1", "quick", 2, -202.0)
    code = main(["reproduce", "peers", "--out", str(tmp_path), "--algos", "sac", "crossq", "--envs", "Pendulum-v1",
                 "--steps", "100", "--seeds", "0", "1", "2", "--report-only"])  # fmt: skip
    assert code == 0
    summary = json.loads((tmp_path / "peers.json").read_text())
    assert summary["per_task"]["crossq"]["Pendulum-v1"]["returns"] == [-150.0, -151.0]
    assert summary["aggregate"]["crossq"]["p_improve"] == 1.0
    assert "p_improve" not in summary["aggregate"]["sac"]
    report = capsys.readouterr().out
    assert "| crossq | -150.5 ± " in report and "P(better than sac)" in report
    assert (tmp_path / "peers.png").exists()


def test_gpu_plan_fits_a_window_and_resumes(tmp_path, capsys):
    assert main(["reproduce", "peers", "--out", str(tmp_path), "--gpu-plan"]) == 0
    script = (tmp_path / "gpu_plan.sh").read_text()
    assert script == capsys.readouterr().out.rstrip("\n") + "\n"
    assert "--lockstep --stop-after-s" in script and "timeout 660 s2ac reproduce peers" in script
    assert "--envs Hopper-v5 Walker2d-v5" in script and "--steps 100000" in script
