"""Figures of a training run: learning curves, and for multigoal envs trajectories and
policy samples over Q contours at the probe states. Headless (Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from s2ac.logger import read_metrics

CURVES = (
    ("eval/mean_reward", "eval/stochastic_mean_reward", "rollout/ep_rew_mean"),
    ("train/critic_loss", "train/actor_loss"),
    ("train/entropy", "train/entropy_bound"),
    ("train/alpha", "train/particle_spread", "train/bandwidth", "train/invertibility_margin"),
)


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (figures are written to files)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(run_dir: Path, title: str = "") -> Path:
    """One panel per metric group of :data:`CURVES`, read from ``metrics.jsonl``."""
    plt = pyplot()
    rows = read_metrics(run_dir)
    fig, axes = plt.subplots(1, len(CURVES), figsize=(4.2 * len(CURVES), 3.4))
    for ax, keys in zip(axes, CURVES):
        for key in keys:
            pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                steps, values = zip(*pts)
                ax.plot(steps, values, label=key, marker="." if key.startswith("eval/") else None)
        ax.set_xlabel("env steps")
        if ax.get_legend_handles_labels()[0]:  # a run that ended before its first evaluation has no eval curve
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title or Path(run_dir).name)
    fig.tight_layout()
    path = Path(run_dir) / "learning_curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def policy_samples(agent: Any, state: Any, obs: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` stochastic actions at one observation (any agent: ``act`` with mode ``random``)."""
    import jax
    import jax.numpy as jnp

    batch = jnp.broadcast_to(jnp.asarray(obs, jnp.float32), (n, obs.shape[-1]))
    return np.asarray(agent.act(state, batch, jax.random.PRNGKey(seed), mode="random"))


def critic_grid(agent: Any, state: Any, obs: np.ndarray, low: float, high: float, res: int = 61) -> np.ndarray:
    """``min_k Q_k(s, a)`` on a ``res x res`` grid of 2-D actions."""
    import jax.numpy as jnp

    axis = np.linspace(low, high, res, dtype=np.float32)
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    q = agent.q(state.critic_params, jnp.broadcast_to(jnp.asarray(obs), (len(grid), obs.shape[-1])), grid)
    return np.asarray(jnp.min(q, axis=0)).reshape(res, res)


def plot_multigoal(
    run_dir: Path, agent: Any, state: Any, env_id: str, trajectories: list[np.ndarray], goals: list[int]
) -> list[Path]:
    """Trajectories on the env coloured by the goal they reach (with the count per goal), and policy
    samples over Q contours at each probe state."""
    from s2ac.envs import multigoal_spec
    from s2ac.envs.multigoal import draw_multigoal

    plt = pyplot()
    spec = multigoal_spec(env_id)
    paths = []

    fig, ax = plt.subplots(figsize=(5, 5))
    draw_multigoal(ax, spec)
    for path, goal in zip(trajectories, goals):
        ax.plot(path[:, 0], path[:, 1], lw=0.8, alpha=0.7, color=f"C{goal}" if goal >= 0 else "0.5")
    for g in range(len(spec.goals)):
        ax.plot([], [], color=f"C{g}", label=f"G{g + 1}: {goals.count(g)}")
    ax.plot([], [], color="0.5", label=f"none: {goals.count(-1)}")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"{len(trajectories)} stochastic episodes (colour = goal reached)")
    fig.tight_layout()
    paths.append(Path(run_dir) / "trajectories.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    probes = np.asarray(spec.probe_states, np.float32)
    fig, axes = plt.subplots(1, len(probes), figsize=(3.2 * len(probes), 3.3))
    lim = spec.max_action
    for i, (ax, probe) in enumerate(zip(np.atleast_1d(axes), probes)):
        q = critic_grid(agent, state, probe, -lim, lim)
        ax.contourf(
            np.linspace(-lim, lim, q.shape[0]), np.linspace(-lim, lim, q.shape[1]), q, levels=20, cmap="viridis"
        )
        samples = policy_samples(agent, state, probe, 200, seed=i)
        ax.scatter(samples[:, 0], samples[:, 1], s=4, c="red", alpha=0.6)
        ax.set_title(f"s = ({probe[0]:g}, {probe[1]:g})", fontsize=9)
        ax.set_aspect("equal")
    fig.suptitle("min Q(s, a) contours (yellow = high) and 200 policy samples (red)")
    fig.tight_layout()
    paths.append(Path(run_dir) / "particles_on_q.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths
