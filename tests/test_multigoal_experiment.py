"""Multigoal reproduction: statistics, outcome metrics, budgets, CLI, and a tiny end-to-end run."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from s2ac.cli import MultigoalCommand
from s2ac.experiments import multigoal as mg
from s2ac.jax_loop import Rollouts, check_schedule

MG3 = "s2ac/MultiGoal3-v0"


def test_t_quantiles_and_intervals_match_scipy():
    for df in (1, 2, 4, 10, 29, 30, 31, 45, 200):
        assert mg.t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-3)
    x = np.array([0.2, 0.5, 0.45, 0.9, 0.1])
    mean, half, n = mg.mean_ci(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert n == 5 and mean == pytest.approx(x.mean()) and half == pytest.approx((hi - lo) / 2, rel=1e-3)
    # NaN seeds (e.g. no wall hit) are left out; one value has no interval.
    assert mg.mean_ci([np.nan, 0.3])[:1] == (0.3,) and math.isnan(mg.mean_ci([0.3])[1])
    assert mg.fmt_ci([np.nan, np.nan]) == "n/a"


def test_episode_metrics_counts_goals_and_wall_outcomes():
    goal = np.array([[0, 0, 2, -1], [1, 1, 1, 1]])
    hit = np.array([[True, False, True, True], [False, False, False, False]])
    ro = Rollouts(np.zeros((2, 31, 4, 2)), np.ones((2, 4)), np.full((2, 4), 30), goal, hit)
    met = mg.episode_metrics(ro, n_goals=3)
    np.testing.assert_allclose(met["goal_fractions"], [[0.5, 0, 0.25], [0, 1, 0]])
    np.testing.assert_allclose(met["n_goals_reached"], [2, 1])
    np.testing.assert_allclose(met["success_rate"], [0.75, 1.0])
    np.testing.assert_allclose(met["hit_wall"], [0.75, 0.0])
    np.testing.assert_allclose(met["hit_wall_and_goal"], [0.5, 0.0])
    assert met["goal_given_hit"][0] == pytest.approx(2 / 3) and math.isnan(met["goal_given_hit"][1])
    assert mg.outcome_labels(Rollouts(*(x[0] for x in ro))) == [
        "hit wall, reached goal",
        "never hit wall",
        "hit wall, reached goal",
        "hit wall, failed",
    ]


def test_budgets_are_valid_schedules():
    default, full = mg.MultigoalBudget(), mg.MultigoalBudget.full()
    for budget in (default, full):
        check_schedule(budget.train_config(MG3))
    # Rounds end at 50, 100, ..., 15000; the first with n >= 1000 is n = 1000: 281 rounds.
    assert default.n_updates == 281 * default.gradient_steps
    assert full.agent_config("s2ac", MG3).critic_hidden == (256, 256)


def test_cli_defaults_and_command_line():
    assert MultigoalCommand().algos == mg.DEFAULT_ALGOS and not MultigoalCommand().full
    cmd = mg.cli_command("results/multigoal", False, 5, list(mg.DEFAULT_ALGOS), None)
    assert cmd == "s2ac reproduce multigoal --seeds 5 --out results/multigoal"
    assert (
        mg.cli_command("out", True, 5, None, list(mg.FULL_ENVS))
        == "s2ac reproduce multigoal --full --seeds 5 --out out"
    )
    assert "--algos sac" in mg.cli_command("out", False, 2, ["sac"], None)


def test_coverage_counts_goals_with_at_least_five_percent_of_episodes():
    # 40 episodes: G1 30, G2 2 (5%), G3 1 (2.5%: noise), 7 failures.
    goals = np.array([[0] * 30 + [1] * 2 + [2] + [-1] * 7])
    ro = Rollouts(np.zeros((1, 2, 40, 2)), np.zeros((1, 40)), np.ones((1, 40)), goals, np.zeros((1, 40), bool))
    met = mg.episode_metrics(ro, 3)
    assert met["goals_covered"][0] == 2 and met["n_goals_reached"][0] == 3
    np.testing.assert_allclose(met["goal_fractions"][0], [0.75, 0.05, 0.025])
    np.testing.assert_allclose(met["success_rate"][0], 33 / 40)


def test_unknown_algos_are_skipped_and_bad_envs_rejected(tmp_path):
    ok, skipped = mg.available_algos(["sac", "no-such-algo"], MG3)
    assert ok == ["sac"] and "no-such-algo" in skipped
    with pytest.raises(ValueError, match="multigoal training env"):
        mg.run_multigoal(tmp_path, False, 2, ["sac"], ["s2ac/MultiGoal3Obstacle-v0"])


TINY = mg.MultigoalBudget(
    preset="quick",
    total_steps=400,
    random_steps=100,
    learning_starts=200,
    train_freq=50,
    gradient_steps=2,
    eval_episodes=6,
    entropy_draws=30,
    probe_samples=20,
    n_chunks=2,
    hidden=(16, 16),
    batch_size=16,
    reference_spacing=0.5,
    reference_episodes=400,
)


@pytest.mark.slow  # the experiment end to end (trains 2 algorithms)
def test_run_multigoal_end_to_end_tiny(tmp_path):
    summary = mg.run_multigoal(
        tmp_path, False, 2, ["s2ac-phi", "sac", "no-such-algo"], [MG3], budget=TINY, progress=False
    )
    assert summary["algos"] == ["s2ac-phi", "sac"] and "no-such-algo" in summary["skipped_algos"]
    for name in summary["files"]:
        assert (tmp_path / name).is_file() and (tmp_path / name).stat().st_size > 0, name
    assert len([f for f in summary["files"] if f.endswith(".png")]) == 5
    assert json.loads((tmp_path / "summary.json").read_text())["command"] == summary["command"]
    report = (tmp_path / "report.md").read_text()
    head = report.split("## Training")[0]
    assert report.startswith("# Multigoal") and summary["command"] in head
    assert "Hardware:" in head and "Wall time:" in head and "Budget per run: 400 env steps" in head
    assert "no-such-algo" in report and "not available (no tractable density)" not in report  # no SQL here
    reference = summary["envs"][MG3]["soft_optimal"]
    assert reference["spacing"] == 0.5 and sum(reference["goal_shares"]) == pytest.approx(reference["success"])
    assert "soft-optimal π* (reference)" in head and "distance to π*'s outcomes (TV)" in head

    res = summary["results"][MG3]
    for algo in ("s2ac-phi", "sac"):
        for variant in mg.VARIANTS:
            for mode in mg.MODES:
                met = res[algo]["eval"][variant][mode]
                fractions = np.asarray(met["goal_fractions"])
                assert fractions.shape == (2, 3)
                assert np.all(fractions.sum(axis=1) <= 1 + 1e-9)
                np.testing.assert_allclose(fractions.sum(axis=1), met["success_rate"])
        assert np.isfinite(np.asarray(res[algo]["entropy"]["knn"], float)).all()
    assert np.asarray(res["s2ac-phi"]["entropy"]["closed_form"]).shape == (2, 6)
    assert np.isfinite(np.asarray(res["s2ac-phi"]["entropy"]["exact"], float)).all()
    assert "log_prob" in res["sac"]["entropy"] and "closed_form" not in res["sac"]["entropy"]
    assert res["s2ac-phi"]["invertibility_margin"]["max"][0] > 0 and res["sac"]["invertibility_margin"] is None
