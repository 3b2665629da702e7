"""Figures of the multigoal reproduction: test trajectories, policy samples over Q, goal histograms, the
obstacle variant and learning curves (matplotlib ``Figure`` objects, no pyplot state)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from s2ac.envs import draw_multigoal
from s2ac.envs.multigoal import MultiGoalSpec
from s2ac.experiments.multigoal.config import MODES, VARIANTS
from s2ac.experiments.stats import mean_ci

if TYPE_CHECKING:  # the jax_loop calls stay in multigoal/run.py
    from s2ac.jax_loop import Rollouts


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _save(fig, path: Path, dpi: int = 100) -> str:
    fig.savefig(path, dpi=dpi)
    return path.name


def _goal_colors(n_goals: int) -> list[str]:
    return [f"C{i}" for i in range(n_goals)]


def plot_trajectories(path: Path, task: MultiGoalSpec, rollouts: dict[str, dict[str, Rollouts]]) -> str:
    """One column per method, rows ``random`` / ``max``: first seed's test paths on the env drawing."""
    algos = list(rollouts)
    fig = _figure(2.4 * len(algos), 5.0)
    axes = fig.subplots(2, len(algos), squeeze=False)
    colors = _goal_colors(len(task.goals))
    for col, algo in enumerate(algos):
        for row, mode in enumerate(MODES):
            ax = axes[row, col]
            draw_multigoal(ax, task, contour_levels=10, resolution=61)
            ro = rollouts[algo][mode]
            for e in range(ro.positions.shape[1]):
                g = int(ro.goal[e])
                ax.plot(
                    *ro.positions[: ro.lengths[e] + 1, e].T, lw=0.6, alpha=0.6, color=colors[g] if g >= 0 else "0.4"
                )
            ax.set_title(f"{algo} ({mode}, {ro.positions.shape[1]} ep.)", fontsize=8)
            ax.tick_params(labelsize=6)
    fig.suptitle(f"{task.name}: test trajectories, first seed (colour = goal reached, grey = none)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_probe_samples(
    path: Path, task: MultiGoalSpec, probes: dict[str, tuple[np.ndarray, np.ndarray]], res_lim: float
) -> str:
    """Rows = methods, columns = probe states: ``min_k Q_k(s, .)`` contours and policy samples (red)."""
    algos = list(probes)
    n_probe = len(task.probe_states)
    fig = _figure(1.75 * n_probe, 1.75 * len(algos) + 0.4)
    axes = fig.subplots(len(algos), n_probe, squeeze=False)
    for r, algo in enumerate(algos):
        samples, q = probes[algo]
        axis = np.linspace(-res_lim, res_lim, q.shape[-1])
        for c in range(n_probe):
            ax = axes[r, c]
            ax.contourf(axis, axis, q[c], levels=15, cmap="viridis")
            ax.scatter(samples[c, :, 0], samples[c, :, 1], s=1.5, c="red", alpha=0.6, linewidths=0)
            ax.set_xlim(-res_lim, res_lim)
            ax.set_ylim(-res_lim, res_lim)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                px, py = task.probe_states[c]
                ax.set_title(f"s=({px:g},{py:g})", fontsize=7)
            if c == 0:
                ax.set_ylabel(algo, fontsize=8)
    fig.suptitle(
        f"{task.name}: min Q(s, a) over the action box [-1, 1]² (a1 right, a2 up; yellow = high), "
        "policy samples (red), first seed",
        fontsize=9,
    )
    fig.tight_layout()
    return _save(fig, path)


def plot_goal_histograms(path: Path, task: MultiGoalSpec, eval_metrics: dict[str, dict]) -> str:
    """Fraction of test episodes per goal (and none), mean +- 95% CI over seeds; panels variant x mode."""
    algos = list(eval_metrics)
    labels = [f"G{i + 1}" for i in range(len(task.goals))] + ["none"]
    fig = _figure(9.0, 5.2)
    axes = fig.subplots(2, 2, squeeze=False)
    width = 0.8 / len(algos)
    x = np.arange(len(labels))
    for r, variant in enumerate(VARIANTS):
        for c, mode in enumerate(MODES):
            ax = axes[r, c]
            for i, algo in enumerate(algos):
                met = eval_metrics[algo][variant][mode]
                per_seed = np.concatenate([met["goal_fractions"], 1.0 - met["success_rate"][:, None]], axis=1)
                stats = [mean_ci(per_seed[:, j]) for j in range(len(labels))]
                means = [s[0] for s in stats]
                errs = [0.0 if not math.isfinite(s[1]) else s[1] for s in stats]
                ax.bar(x + (i - (len(algos) - 1) / 2) * width, means, width, yerr=errs, label=algo, capsize=1.5)
            ax.set_xticks(x, labels)
            ax.set_ylim(0, 1)
            ax.set_title(f"{variant}, {mode} policy", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{task.name}: fraction of test episodes ending at each goal", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


OUTCOME_STYLE = {
    "hit wall, reached goal": "tab:green",
    "hit wall, failed": "tab:red",
    "never hit wall": "tab:blue",
}


def outcome_labels(ro: Rollouts) -> list[str]:
    """The obstacle outcome of each episode (:data:`OUTCOME_STYLE` keys)."""
    keys = list(OUTCOME_STYLE)
    return [keys[2] if not h else keys[0] if g >= 0 else keys[1] for g, h in zip(ro.goal, ro.hit_wall)]


def plot_obstacle(path: Path, task: MultiGoalSpec, rollouts: dict[str, Rollouts]) -> str:
    """First seed's stochastic test paths with the wall, coloured by outcome."""
    algos = list(rollouts)
    fig = _figure(2.4 * len(algos), 2.9)
    axes = fig.subplots(1, len(algos), squeeze=False)[0]
    for ax, algo in zip(axes, algos):
        ro = rollouts[algo]
        draw_multigoal(ax, task, contour_levels=10, resolution=61)
        for e, label in enumerate(outcome_labels(ro)):
            ax.plot(*ro.positions[: ro.lengths[e] + 1, e].T, lw=0.6, alpha=0.6, color=OUTCOME_STYLE[label])
        ax.set_title(algo, fontsize=8)
        ax.tick_params(labelsize=6)
    handles = [axes[0].plot([], [], color=c, label=k)[0] for k, c in OUTCOME_STYLE.items()]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7)
    fig.suptitle(f"{task.name}: stochastic policy with the wall (trained without it), first seed", fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return _save(fig, path)


def plot_learning_curves(path: Path, histories: dict[str, dict[str, dict[str, np.ndarray]]]) -> str:
    """Training return and goal rate per chunk (mean over seeds, band = min..max), one column per env."""
    envs = list(histories)
    fig = _figure(4.6 * len(envs), 5.4)
    axes = fig.subplots(2, len(envs), squeeze=False)
    for c, env_id in enumerate(envs):
        for algo, h in histories[env_id].items():
            for r, key in enumerate(("ep_return", "goal_rate")):
                y = h[key]
                mean = np.nanmean(y, axis=1)
                line = axes[r, c].plot(h["step"], mean, label=algo, lw=1.2)[0]
                axes[r, c].fill_between(
                    h["step"], np.nanmin(y, axis=1), np.nanmax(y, axis=1), color=line.get_color(), alpha=0.15
                )
        axes[0, c].set_title(env_id, fontsize=9)
        axes[0, c].set_ylabel("training episode return")
        axes[1, c].set_ylabel("training goal rate")
        axes[1, c].set_xlabel("env steps")
        for ax in axes[:, c]:
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def write_env_figures(
    out: Path, slug: str, task: MultiGoalSpec, obstacle_task: MultiGoalSpec, per_algo: dict
) -> list[str]:
    """The four figures of one env; ``per_algo[algo] = (first-seed rollouts, probe plot data, eval metrics)``."""
    first = {a: v[0] for a, v in per_algo.items()}
    return [
        plot_trajectories(out / f"{slug}_trajectories.png", task, {a: r["plain"] for a, r in first.items()}),
        plot_probe_samples(out / f"{slug}_probe_q.png", task, {a: v[1] for a, v in per_algo.items()}, task.max_action),
        plot_goal_histograms(out / f"{slug}_goal_histogram.png", task, {a: v[2] for a, v in per_algo.items()}),
        plot_obstacle(
            out / f"{slug}_obstacle.png", obstacle_task, {a: r["obstacle"]["random"] for a, r in first.items()}
        ),
    ]
