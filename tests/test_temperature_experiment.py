"""``s2ac reproduce temperature``: rows read from run folders (written by hand here: the loop's training is
tested elsewhere), the report, and the command's registration."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from s2ac.experiments import temperature


def _write_run(run_dir, final_return, entropies, alphas):
    run_dir.mkdir(parents=True)
    rows = [
        {"step": 100 * (i + 1), "train/entropy": e, "train/alpha": a} for i, (e, a) in enumerate(zip(entropies, alphas))
    ]
    rows.append({"step": 1000, "eval/mean_reward": final_return, "eval/stochastic_mean_reward": final_return - 5})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_gym_row_reads_the_last_evaluation_and_the_last_logged_entropy(tmp_path):
    label = "s2ac, tuned alpha"
    entropies = [5.0, 4.0, 3.0, 2.0, 1.0, 0.0, -1.0]  # the last ENTROPY_WINDOW = 5 average to 1.0
    for seed, ret in enumerate((-150.0, -170.0)):
        _write_run(temperature._run_dir(tmp_path, label, "Pendulum-v1", seed), ret, entropies, [0.1] * 7)
    row = temperature.gym_row(tmp_path, label, "Pendulum-v1", (0, 1))
    assert row["return"] == [-150.0, -170.0]
    assert row["stochastic_return"] == [-155.0, -175.0]
    assert row["entropy"] == pytest.approx([1.0, 1.0])
    assert row["alpha"] == pytest.approx([0.1, 0.1])
    text = temperature.report_markdown(
        {"command": "c", "seeds": [0, 1], "preset": "quick", "gym_steps": {}, "rows": [row], "wall_s": 1.0}
    )
    mean, half = -160.0, 12.706 * np.std([-150.0, -170.0], ddof=1) / np.sqrt(2)
    assert f"{mean:.1f} ± {half:.1f}" in text
    assert "| Pendulum-v1 | s2ac, tuned alpha |" in text


def test_variants_compare_one_algorithm_with_its_temperature_fixed_and_tuned():
    (fixed_algo, fixed), (tuned_algo, tuned) = (
        temperature.VARIANTS["s2ac, fixed alpha"],
        temperature.VARIANTS["s2ac, tuned alpha"],
    )
    assert fixed_algo == tuned_algo == "s2ac"
    assert fixed == {"auto_alpha": False} and tuned == {"auto_alpha": True}


def test_multigoal_variants_change_only_their_fields():
    from s2ac.experiments.multigoal.config import MultigoalBudget

    base = MultigoalBudget().agent_config("s2ac", temperature.MULTIGOAL_ENV)
    tuned = MultigoalBudget(agent_fields=(("auto_alpha", True),)).agent_config("s2ac", temperature.MULTIGOAL_ENV)
    assert tuned.auto_alpha and not base.auto_alpha
    assert tuned == dataclasses.replace(base, auto_alpha=True)


def test_temperature_is_a_reproduce_experiment():
    from s2ac.cli import EXPERIMENTS

    assert "temperature" in EXPERIMENTS
