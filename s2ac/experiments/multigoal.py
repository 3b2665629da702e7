"""Multigoal reproduction: mode coverage, per-state entropy and obstacle robustness (REFERENCE.md §3).

For every algorithm (S²AC(phi), S²AC(phi,theta), SAC, and SQL / SAC-NF when
:func:`s2ac.agents.make_agent_config` knows them) and every env (the 3-goal max-entropy env and
the 4-goal env), :func:`run_multigoal`

1. trains one agent per seed with the vmapped pure-JAX loop (:func:`s2ac.jax_loop.train_vectorized`);
2. runs test episodes of the stochastic (``"random"``) and deterministic (``"max"``) policy on the
   env and on its evaluation-only obstacle variant: fraction of episodes ending at each goal,
   distinct goals reached, return, length, and with the wall the fraction of episodes that hit it
   and still reach a goal (REFERENCE.md §3 "Metrics the paper reports");
3. estimates the per-state entropy ``-mean log pi`` at the env's six probe states from the agent's
   own log-density: S²AC through ``sample_particles(...).log_prob`` (closed form, REFERENCE.md §1) and
   through the exact per-particle log-det (same parameters, ``log_density="exact"``); SAC and SAC-NF
   through ``sample_action``; SQL has no tractable density. A Kozachenko-Leonenko k-NN entropy of the
   policy's samples is given for every method as a density-free reference;
4. writes figures, ``summary.json`` and ``report.md`` (mean +- 95% t-interval over seeds).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from s2ac.agents import Agent, make_agent, make_agent_config
from s2ac.config import QUICK_MULTIGOAL_GRADIENT_STEPS, AgentConfig, make_train_config
from s2ac.envs import MULTIGOAL_SPECS, draw_multigoal, jax_env_for
from s2ac.envs.multigoal import MultiGoalSpec
from s2ac.evaluate import COVERAGE_SHARE
from s2ac.experiments.entropy_toy import knn_entropy
from s2ac.experiments.reporting import json_safe, markdown_table
from s2ac.jax_loop import Rollouts, env_spec_of, play_episodes, train_vectorized, unstack_tree

Array = jax.Array

DEFAULT_ALGOS: tuple[str, ...] = ("s2ac-phi", "s2ac", "sac", "sql", "sac-nf")
"""Methods compared by the poster's multigoal figure (REFERENCE.md §1 "Baselines")."""
DEFAULT_ENVS: tuple[str, ...] = ("s2ac/MultiGoal3-v0",)
"""The default budget's env: the 3-goal max-entropy env (REFERENCE.md §3)."""
FULL_ENVS: tuple[str, ...] = ("s2ac/MultiGoal3-v0", "s2ac/MultiGoal4-v0")
"""``--full`` also trains on the 4-goal env."""
DEFAULT_GRADIENT_STEPS = QUICK_MULTIGOAL_GRADIENT_STEPS
"""Updates per 50 env steps in the default budget: the quick preset's (the demo's) schedule."""
OBSTACLE_VARIANT: dict[str, str] = {
    "s2ac/MultiGoal3-v0": "s2ac/MultiGoal3Obstacle-v0",
    "s2ac/MultiGoal4-v0": "s2ac/MultiGoal4Obstacle-v0",
}
"""Evaluation-only wall variant of each training env (REFERENCE.md §3 "Obstacle variants")."""
MODES: tuple[str, ...] = ("random", "max")
"""Test policies: a random particle / a policy draw, and the highest-Q particle / the mean action."""
VARIANTS: tuple[str, ...] = ("plain", "obstacle")
KNN_K = 3
"""Neighbour order of the sample-based entropy reference."""
CLI_BASE = "s2ac reproduce multigoal"


# ----------------------------------------------------------------------------- budget


@dataclass(frozen=True)
class MultigoalBudget:
    """Training schedule, evaluation sizes and network preset of one reproduction.

    The defaults are the command's default budget: every method x 5 seeds on the 3-goal env in
    about 15 minutes on 2 CPU cores (measured numbers in the README); :meth:`full` is the long run.
    """

    preset: str = "quick"
    """Agent preset of :func:`s2ac.agents.make_agent_config` (``quick``: 2 x 32 networks, batch 50 on multigoal)."""
    total_steps: int = 10_000
    """Env steps per run (authors: 500k; REFERENCE.md §2)."""
    random_steps: int = 2_000
    """Uniform random actions for this many first steps (authors: 10,000)."""
    learning_starts: int = 1_000
    """No update before this many env steps (authors: 1,000)."""
    train_freq: int = 50
    """Updates happen every ``train_freq`` env steps (authors: 50)."""
    gradient_steps: int = DEFAULT_GRADIENT_STEPS
    """Updates per round (authors: 50, i.e. one update per env step)."""
    eval_episodes: int = 50
    """Test episodes per (seed, policy mode, env variant)."""
    entropy_draws: int = 200
    """Policy draws per probe state for the entropy estimates."""
    probe_samples: int = 200
    """Policy samples per probe state drawn over the Q contours."""
    n_chunks: int = 20
    """Host syncs (progress / history rows) per run."""
    hidden: tuple[int, ...] | None = None
    """Override of every network's hidden widths (tests); None keeps the preset's."""
    batch_size: int | None = None
    """Override of the minibatch size (tests); None keeps the preset's (authors: 100)."""

    @classmethod
    def full(cls) -> MultigoalBudget:
        """``--full``: the corrected preset's 2 x 256 networks and the authors' update ratio on 100k env steps."""
        return cls(
            preset="corrected",
            total_steps=100_000,
            random_steps=10_000,
            learning_starts=1_000,
            train_freq=50,
            gradient_steps=50,
            eval_episodes=100,
            entropy_draws=500,
            probe_samples=200,
            n_chunks=40,
        )

    @property
    def n_updates(self) -> int:
        """Gradient steps per run (rounds ending at ``n * train_freq >= learning_starts``)."""
        rounds = self.total_steps // self.train_freq
        first = max(1, -(-self.learning_starts // self.train_freq))
        return max(0, rounds - first + 1) * self.gradient_steps

    def agent_config(self, algo: str, env_id: str) -> AgentConfig:
        """The preset's config of ``algo`` with this budget's network / batch overrides."""
        config = make_agent_config(algo, self.preset, env_id)
        fields: dict[str, Any] = {}
        if self.hidden is not None:
            fields.update(critic_hidden=self.hidden, actor_hidden=self.hidden)
            if any(f.name == "flow_hidden" for f in dataclasses.fields(config)):
                fields["flow_hidden"] = self.hidden
        if self.batch_size is not None:
            fields["batch_size"] = self.batch_size
        config = dataclasses.replace(config, **fields)
        config.validate()
        return config

    def train_config(self, env_id: str):
        return make_train_config(
            self.preset,
            env_id,
            total_steps=self.total_steps,
            random_steps=self.random_steps,
            learning_starts=self.learning_starts,
            train_freq=self.train_freq,
            gradient_steps=self.gradient_steps,
            buffer_size=max(self.total_steps, 1),
        )


def available_algos(algos: list[str], env_id: str) -> tuple[list[str], dict[str, str]]:
    """Split ``algos`` into those :func:`make_agent_config` accepts and the skipped ones (with the reason)."""
    ok, skipped = [], {}
    for algo in algos:
        try:
            make_agent_config(algo, "quick", env_id)
        except ValueError as err:
            skipped[algo] = str(err)
        else:
            ok.append(algo)
    return ok, skipped


# ----------------------------------------------------------------------------- statistics

# Two-sided 95% Student-t quantiles t_{0.975, df} for df = 1..30 (standard tables).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile_975(df: int) -> float:
    """``t_{0.975, df}``: table up to 30, Cornish-Fisher expansion beyond (error < 1e-3)."""
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values) -> tuple[float, float, int]:
    """Mean, 95% t-interval half-width and count of the finite entries of ``values`` (seeds)."""
    x = np.asarray(values, np.float64).ravel()
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    return float(x.mean()), t_quantile_975(n - 1) * float(x.std(ddof=1)) / math.sqrt(n), n


def fmt_ci(values, digits: int = 2) -> str:
    """``"mean ± half-width"`` over seeds (``n/a`` if no finite value)."""
    mean, half, n = mean_ci(values)
    if n == 0:
        return "n/a"
    if not math.isfinite(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


# ----------------------------------------------------------------------------- training


class TrainedRun(NamedTuple):
    """One algorithm trained on one env for every seed."""

    algo: str
    env_id: str
    config: AgentConfig
    agent: Agent
    states: Any  # stacked over seeds
    history: dict[str, np.ndarray]
    wall_s: float


def train_algo(algo: str, env_id: str, budget: MultigoalBudget, seeds: list[int], progress: bool = True) -> TrainedRun:
    """Train ``algo`` on ``env_id`` for all ``seeds`` in one vmapped program."""
    config = budget.agent_config(algo, env_id)
    t0 = time.perf_counter()
    states, history = train_vectorized(
        config,
        budget.train_config(env_id),
        env_id,
        seeds,
        n_chunks=budget.n_chunks,
        progress=progress,
        description=f"{algo} {env_id} x{len(seeds)} seeds",
    )
    jax.block_until_ready(states)
    agent = make_agent(config, env_spec_of(jax_env_for(env_id)))
    return TrainedRun(algo, env_id, config, agent, states, history, time.perf_counter() - t0)


# ----------------------------------------------------------------------------- evaluation


def episode_metrics(ro: Rollouts, n_goals: int) -> dict[str, np.ndarray]:
    """Per-seed outcome statistics of rollouts with leading axes ``(seeds, episodes)``."""
    goal = np.asarray(ro.goal)
    hit = np.asarray(ro.hit_wall)
    reached = goal >= 0
    fractions = np.stack([np.mean(goal == g, axis=1) for g in range(n_goals)], axis=1)
    hit_rate = hit.mean(axis=1)
    escape = (hit & reached).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        escape_given_hit = np.where(hit_rate > 0, escape / hit_rate, np.nan)
    return {
        "goal_fractions": fractions,
        "success_rate": reached.mean(axis=1),
        "goals_covered": (fractions >= COVERAGE_SHARE).sum(axis=1).astype(np.float64),
        "n_goals_reached": (fractions > 0).sum(axis=1).astype(np.float64),
        "mean_return": np.asarray(ro.returns).mean(axis=1),
        "mean_length": np.asarray(ro.lengths).mean(axis=1),
        "hit_wall": hit_rate,
        "hit_wall_and_goal": escape,
        "goal_given_hit": escape_given_hit,
    }


def evaluate_run(run: TrainedRun, budget: MultigoalBudget, key: Array) -> tuple[dict, dict]:
    """Test episodes for both env variants and both policy modes.

    Returns ``(metrics, first_seed)``: ``metrics[variant][mode]`` per-seed statistics, and the
    first seed's rollouts (for the figures).
    """
    metrics: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    first: dict[str, dict[str, Rollouts]] = {}
    env_ids = {"plain": run.env_id, "obstacle": OBSTACLE_VARIANT[run.env_id]}
    for v_index, (variant, env_id) in enumerate(env_ids.items()):
        task = jax_env_for(env_id)
        metrics[variant], first[variant] = {}, {}
        for m_index, mode in enumerate(MODES):
            k = jax.random.fold_in(jax.random.fold_in(key, v_index), m_index)
            ro = play_episodes(run.agent, run.states, task, k, budget.eval_episodes, mode)
            metrics[variant][mode] = episode_metrics(ro, len(task.goals))
            first[variant][mode] = Rollouts(*(x[0] for x in ro))
    return metrics, first


def entropy_estimators(agent: Agent) -> list[str]:
    """Which density-based entropy estimates ``agent`` supports (the k-NN reference always applies)."""
    if hasattr(agent, "sample_particles"):
        return ["closed_form", "exact"]
    if hasattr(agent, "sample_action"):
        return ["log_prob"]
    return []


def _repeat_probes(task: MultiGoalSpec, n: int) -> Array:
    """Each probe state repeated ``n`` times: ``(probes * n, 2)``, probe-major."""
    return jnp.repeat(jnp.asarray(task.probe_states, jnp.float32), n, axis=0)


def probe_entropies(
    run: TrainedRun, task: MultiGoalSpec, key: Array, draws: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``-mean log pi(a|s)`` at each probe state: arrays ``(seeds, probes)`` per estimator, and the
    first seed's ``draws`` policy samples per probe ``(probes, draws, 2)``.

    ``closed_form`` / ``exact``: S²AC's particles and their log-density by the poster's closed form
    and by the exact per-particle log-det of the same SVGD steps (same key, same particles);
    ``log_prob``: a sampler with a tractable density (SAC, SAC-NF); ``knn``: Kozachenko-Leonenko
    entropy of ``draws`` samples of ``act(mode="random")`` (density-free, every method).
    All probe states go through one batched call per seed (the sampler treats rows independently).
    """
    agent, kinds = run.agent, entropy_estimators(run.agent)
    n_probe = len(task.probe_states)
    m = getattr(run.config, "n_particles", 1)
    rows = -(-draws // m)
    if "exact" in kinds:
        exact_agent = make_agent(dataclasses.replace(run.config, log_density="exact"), agent.spec)
        closed_fn, exact_fn = jax.jit(agent.sample_particles), jax.jit(exact_agent.sample_particles)
    if "log_prob" in kinds:
        sample_fn = jax.jit(agent.sample_action)
    knn_fn = jax.jit(jax.vmap(lambda x: knn_entropy(x, KNN_K)))
    n_seeds = jax.tree_util.tree_leaves(run.states)[0].shape[0]
    out: dict[str, list] = {}
    first_samples = None
    for i in range(n_seeds):
        state = unstack_tree(run.states, i)
        k_density, k_knn = jax.random.split(jax.random.fold_in(key, i))
        est = {}
        if "exact" in kinds:
            obs = _repeat_probes(task, rows)
            closed = closed_fn(state.init_params, state.critic_params, obs, k_density)
            exact = exact_fn(state.init_params, state.critic_params, obs, k_density).log_prob
            est["closed_form"] = -jnp.mean(closed.log_prob.reshape(n_probe, -1), axis=1)
            est["exact"] = -jnp.mean(exact.reshape(n_probe, -1), axis=1)
            # The margin of the very steps behind these densities (worst particle set and step per probe).
            est["margin"] = jnp.max(closed.invertibility_margin.reshape(n_probe, -1), axis=1)
        if "log_prob" in kinds:
            _, log_prob = sample_fn(state.actor_params, _repeat_probes(task, draws), k_density)
            est["log_prob"] = -jnp.mean(log_prob.reshape(n_probe, -1), axis=1)
        samples = agent.act(state, _repeat_probes(task, draws), k_knn, mode="random").reshape(n_probe, draws, -1)
        est["knn"] = knn_fn(samples)
        for name, value in jax.device_get(est).items():
            out.setdefault(name, []).append(np.asarray(value))
        if first_samples is None:
            first_samples = np.asarray(samples)
    return {k: np.stack(v) for k, v in out.items()}, first_samples


def q_grids(run: TrainedRun, task: MultiGoalSpec, res: int = 41) -> np.ndarray:
    """First seed: ``min_k Q_k(s, a)`` on a ``res x res`` grid of the action box at each probe state."""
    state = unstack_tree(run.states, 0)
    lim = task.max_action
    axis = jnp.linspace(-lim, lim, res)
    grid = jnp.stack(jnp.meshgrid(axis, axis), -1).reshape(-1, 2)

    def one(probe):
        q = run.agent.critic.apply(state.critic_params, jnp.broadcast_to(probe, (grid.shape[0], 2)), grid)
        return jnp.min(q, axis=0).reshape(res, res)

    return np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(task.probe_states, jnp.float32)))


def margin_summary(history: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """Per-seed invertibility margin ``eps ||d phi / d a||`` of the SVGD steps (S²AC only), or None.

    ``final``: mean over the last chunk's updates of the per-update maximum over the batch;
    ``max``: the largest value seen during training.
    """
    if "train/invertibility_margin" not in history:
        return None
    out = {
        "final": history["train/invertibility_margin"][-1],
        "max": np.nanmax(history["train/invertibility_margin_max"], axis=0),
    }
    for key, name in (
        ("invalid_state_fraction", "invalid_state_fraction_max"),
        ("actor_invertibility_margin", "actor_max"),
    ):
        if f"train/{key}_max" in history:
            out[name] = np.nanmax(history[f"train/{key}_max"], axis=0)
    return out


# ----------------------------------------------------------------------------- figures


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


# ----------------------------------------------------------------------------- report


def _arr(values) -> np.ndarray:
    """JSON lists (``None`` for NaN) back to float arrays."""
    return np.asarray([[math.nan if v is None else v for v in row] if isinstance(row, list) else row for row in values])


def _nan_arr(values) -> np.ndarray:
    return np.asarray([math.nan if v is None else v for v in values], np.float64)


def coverage_table(env: dict, goals: int, variant: str, mode: str) -> str:
    """Markdown: per method, goal fractions, distinct goals, success, return, length (and wall stats)."""
    header = ["method"] + [f"G{i + 1}" for i in range(goals)] + ["distinct goals", "success", "return", "length"]
    if variant == "obstacle":
        header += ["hit wall", "hit wall & goal", "goal given hit"]
    rows = []
    for algo, res in env.items():
        met = res["eval"][variant][mode]
        fr = _arr(met["goal_fractions"])
        row = [algo] + [fmt_ci(fr[:, g]) for g in range(goals)]
        row += [fmt_ci(_nan_arr(met[k])) for k in ("n_goals_reached", "success_rate")]
        row += [fmt_ci(_nan_arr(met["mean_return"]), 0), fmt_ci(_nan_arr(met["mean_length"]), 1)]
        if variant == "obstacle":
            row += [fmt_ci(_nan_arr(met[k])) for k in ("hit_wall", "hit_wall_and_goal", "goal_given_hit")]
        rows.append(row)
    return markdown_table(header, rows)


ESTIMATOR_LABELS = {
    "closed_form": "closed form (poster)",
    "exact": "exact log-det",
    "log_prob": "exact log-density",
    "knn": f"k-NN of samples (k={KNN_K})",
}


def entropy_table(env: dict, probes: list[tuple[float, float]]) -> str:
    """Markdown: rows (method, estimator), columns probe states; mean +- CI over seeds.

    S²AC density estimates come with the largest invertibility margin of the SVGD steps that produced
    them (a row of its own); a cell whose margin reached 1 in any seed is marked INVALID.
    """
    header = ["method", "estimator"] + [f"({x:g}, {y:g})" for x, y in probes]
    rows = []
    for algo, res in env.items():
        ent = res["entropy"]
        margin = _arr(ent["margin"]) if "margin" in ent else None
        for name in ("closed_form", "exact", "log_prob", "knn"):
            if name in ent:
                values = _arr(ent[name])
                cells = [fmt_ci(values[:, p]) for p in range(len(probes))]
                if margin is not None and name in ("closed_form", "exact"):
                    cells = [c + (" INVALID" if np.nanmax(margin[:, p]) >= 1 else "") for p, c in enumerate(cells)]
                rows.append([algo, ESTIMATOR_LABELS[name]] + cells)
        if margin is not None:
            rows.append(
                [algo, "margin of those steps (max)"] + [f"{np.nanmax(margin[:, p]):.2f}" for p in range(len(probes))]
            )
        if not set(ent) - {"knn"}:
            rows.append([algo, "own log-density"] + ["not available (no tractable density)"] + [""] * (len(probes) - 1))
    return markdown_table(header, rows)


def margin_table(results: dict) -> str:
    """Markdown: the full invertibility margin of the target-particle steps (and the actor's, adaptive rule)."""
    rows = []
    for env_id, env in results.items():
        for algo, res in env.items():
            mg = res["invertibility_margin"]
            if mg is None:
                rows.append([env_id, algo, "n/a (no SVGD density)", "n/a", "n/a", "n/a"])
                continue
            actor = fmt_ci(_nan_arr(mg["actor_max"])) if "actor_max" in mg else "— (no actor pass, or fixed step)"
            rows.append(
                [
                    env_id,
                    algo,
                    fmt_ci(_nan_arr(mg["final"])),
                    _validity_label(mg),
                    actor,
                    fmt_ci(_nan_arr(mg["invalid_state_fraction_max"]), 3)
                    if "invalid_state_fraction_max" in mg
                    else "n/a",
                ]
            )
    header = [
        "env",
        "method",
        "margin, last chunk",
        "margin, max over training",
        "actor-pass margin, max",
        "states with margin >= 1 (worst round)",
    ]
    return markdown_table(header, rows)


def _probe_mean(values) -> np.ndarray:
    """Per-seed mean over the probe states of a ``(seeds, probes)`` entropy table."""
    return np.nanmean(_arr(values), axis=1)


def _covered_all(met: dict, goals: int) -> str:
    """``"k/n"``: seeds whose stochastic policy covers every goal (>= COVERAGE_SHARE of episodes each)."""
    covered = _nan_arr(met["goals_covered"])
    return f"{int(np.sum(covered >= goals))}/{covered.size}"


def _worst_margin(margin: dict | None) -> float | None:
    """The largest training margin over seeds, or None for a method without SVGD density."""
    return None if margin is None else float(np.nanmax(_nan_arr(margin["max"])))


def _validity_label(margin: dict | None) -> str:
    worst = _worst_margin(margin)
    if worst is None:
        return "n/a (no SVGD density)"
    return f"{worst:.2f}" + (" INVALID" if worst >= 1 else "")


def headline_table(results: dict) -> str:
    """Markdown: one row per (env, method) with the numbers the paper's multigoal claims rest on."""
    header = [
        "env",
        "method",
        "goal shares (stochastic)",
        "seeds covering all goals",
        "goals covered",
        "success",
        "goal given wall hit",
        "entropy: own density",
        "entropy: exact log-det",
        "entropy: k-NN",
        "max margin in training",
        "distinct goals (secondary)",
    ]
    rows = []
    for env_id, env in results.items():
        for algo, res in env.items():
            plain, wall = res["eval"]["plain"]["random"], res["eval"]["obstacle"]["random"]
            fr = _arr(plain["goal_fractions"])
            ent = res["entropy"]
            own = ent.get("closed_form", ent.get("log_prob"))
            worst = _worst_margin(res["invertibility_margin"])
            tag = " INVALID" if worst is not None and worst >= 1 else ""
            rows.append(
                [
                    env_id.removeprefix("s2ac/"),
                    algo,
                    " / ".join(f"{np.nanmean(fr[:, g]):.2f}" for g in range(fr.shape[1])),
                    _covered_all(plain, fr.shape[1]),
                    fmt_ci(_nan_arr(plain["goals_covered"])),
                    fmt_ci(_nan_arr(plain["success_rate"])),
                    fmt_ci(_nan_arr(wall["goal_given_hit"])),
                    "n/a" if own is None else fmt_ci(_probe_mean(own)) + tag,
                    fmt_ci(_probe_mean(ent["exact"])) + tag if "exact" in ent else "—",
                    fmt_ci(_probe_mean(ent["knn"])),
                    _validity_label(res["invertibility_margin"]),
                    fmt_ci(_nan_arr(plain["n_goals_reached"])),
                ]
            )
    return markdown_table(header, rows)


def training_table(results: dict) -> str:
    rows = []
    for env_id, env in results.items():
        for algo, res in env.items():
            ft = res["final_train"]
            rows.append(
                [
                    env_id,
                    algo,
                    fmt_ci(_nan_arr(ft["ep_return"]), 0),
                    fmt_ci(_nan_arr(ft["goal_rate"])),
                    f"{res['train_wall_s']:.0f}",
                    f"{res['eval_wall_s']:.0f}",
                ]
            )
    header = ["env", "method", "train return (last chunk)", "train goal rate (last chunk)", "train s", "eval s"]
    return markdown_table(header, rows)


def report_markdown(summary: dict) -> str:
    """The human-readable report of :func:`run_multigoal`."""
    b = summary["budget"]
    mach = summary["machine"]
    seeds = summary["seeds"]
    updates = summary["n_updates"]
    out = [
        "# Multigoal: mode coverage, per-state entropy, obstacle robustness",
        "",
        f"- Command: `{summary['command']}`",
        f"- Budget per run: {b['total_steps']:,} env steps ({b['random_steps']:,} uniform random), updates from step "
        f"{b['learning_starts']:,}, {b['gradient_steps']} updates every {b['train_freq']} steps "
        f"({b['gradient_steps'] / b['train_freq']:.2g} updates per env step; {updates:,} updates of batch "
        f"{summary['batch_size']}); preset `{b['preset']}` networks. The authors used 500k env steps and one update "
        "per env step (REFERENCE.md §2).",
        f"- Seeds: {len(seeds)} per (method, env): {seeds}. Test episodes: {b['eval_episodes']} per seed, policy mode "
        f"and env variant; entropy: {b['entropy_draws']} draws per probe state and seed.",
        f"- Hardware: {mach['cpu_count']}-core {mach['arch']} CPU ({mach['platform']}), jax {mach['jax']} "
        f"({mach['backend']} backend).",
        f"- Wall time: {summary['timing_s']['total']:.0f} s in all (training {summary['timing_s']['train']:.0f} s, "
        f"evaluation {summary['timing_s']['eval']:.0f} s, figures {summary['timing_s']['figures']:.0f} s).",
        f"- Methods: {', '.join(summary['algos'])}.",
    ]
    if summary["skipped_algos"]:
        out.append(
            "- Skipped (not known to `make_agent_config`): "
            + "; ".join(f"`{a}` ({why})" for a, why in summary["skipped_algos"].items())
        )
    out += [
        "",
        "All numbers: mean ± 95% t-interval over seeds. `random` = the training policy (S²AC: a random "
        "particle; SAC / SAC-NF: a policy draw; SQL: one amortized sample); `max` = S²AC / SQL: the "
        "highest-min-Q particle, SAC / SAC-NF: the mean action through the squash (and flows). "
        "The obstacle is present only at test time (REFERENCE.md §3). `goals covered`: goals that receive at "
        f"least {COVERAGE_SHARE:.0%} of a seed's stochastic test episodes; `distinct goals`: goals reached in at "
        "least one episode (secondary: noise can reach a goal once).",
        "",
        "## Headline",
        "",
        "Stochastic (`random`) policy. Entropy: mean over the six probe states of −E log π (nats); "
        "own density = S²AC closed form / SAC, SAC-NF exact log-density. Margin: last chunk (see the end).",
        "",
        headline_table(summary["results"]),
        "",
        "## Training",
        "",
        training_table(summary["results"]),
        "",
        "![learning curves](learning_curves.png)",
        "",
    ]
    for env_id, env in summary["results"].items():
        info = summary["envs"][env_id]
        slug = info["slug"]
        goals = info["goals"]
        out += [f"## {env_id}", "", "Goals: " + ", ".join(f"G{i + 1} = {tuple(g)}" for i, g in enumerate(goals)), ""]
        for variant in VARIANTS:
            for mode in MODES:
                title = "with the wall " + str(tuple(map(tuple, info["wall"]))) if variant == "obstacle" else "no wall"
                out += [
                    f"### Goals reached, {title}, `{mode}` policy",
                    "",
                    coverage_table(env, len(goals), variant, mode),
                ]
                out.append("")
        out += [
            "### Per-state entropy −E log π(a|s) of the executed action (nats)",
            "",
            entropy_table(env, info["probe_states"]),
            "",
            f"![trajectories]({slug}_trajectories.png)",
            "",
            f"![policy samples over Q]({slug}_probe_q.png)",
            "",
            f"![goal histograms]({slug}_goal_histogram.png)",
            "",
            f"![obstacle]({slug}_obstacle.png)",
            "",
        ]
    out += [
        "## Invertibility of the SVGD steps",
        "",
        "The change-of-variables density needs each step a ↦ a + εφ(a) to be invertible, sufficient: "
        'ε‖∂φ/∂a‖₂ < 1 (REFERENCE.md §1 "Invertibility"). Margin = that quantity, maximum over the batch '
        "and step per update (the full per-particle Jacobian, self term included), maximised over each round "
        "of updates, then averaged over a chunk (`last chunk`) or maximised over training. At 1 or above the "
        "closed-form and exact densities are not densities of the particles, and every entropy they produce "
        "is labelled INVALID. The corrected and quick presets use the adaptive step rule "
        "(`s2ac.stein.controlled_step`), which keeps every step below its target margin (0.5).",
        "",
        margin_table(summary["results"]),
        "",
        "## Notes",
        "",
    ]
    out += [f"- {note}" for note in summary["notes"]]
    return "\n".join(out) + "\n"


def _machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "arch": platform.machine(),
        "platform": platform.platform(terse=True),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
    }


def cli_command(out_dir: Path, full: bool, seeds: int, algos: list[str] | None, envs: list[str] | None) -> str:
    """The ``s2ac reproduce multigoal`` command line equivalent to a :func:`run_multigoal` call."""
    parts = [CLI_BASE] + (["--full"] if full else []) + ["--seeds", str(seeds), "--out", Path(out_dir).as_posix()]
    if algos is not None and list(algos) != list(DEFAULT_ALGOS):
        parts += ["--algos", *algos]
    if envs is not None and list(envs) != list(FULL_ENVS if full else DEFAULT_ENVS):
        parts += ["--envs", *envs]
    return " ".join(parts)


NOTES = [
    "Per-state entropy is of the executed (squashed) action in the box [-1, 1]², so it can be negative.",
    "S²AC closed form and exact log-det use the same particles (same key); they differ by the first-order "
    "approximation and the dropped self term (REFERENCE.md §1). Neither is trustworthy where the invertibility "
    "margin exceeds 1.",
    "The k-NN reference (Kozachenko-Leonenko) uses only sample positions; it is biased for few samples and for "
    "actions piled up at the box edge, but applies to every method, SQL included.",
    "SQL's amortized sampler has no tractable log-density, so its own-density entropy is not available.",
    "SAC's and SAC-NF's `max` policies are deterministic, so all their test episodes coincide; S²AC's and SQL's "
    "`max` still draw fresh particles.",
    "Training runs on the pure-JAX env (s2ac.jax_loop), vmapped over seeds; test episodes on the same "
    "dynamics (s2ac.envs.multigoal_jax), which the env tests check against the Gymnasium env.",
]


def budget_note(budget: MultigoalBudget) -> str:
    """Why the schedule is what it is (the report's first note)."""
    if budget.preset != "quick":
        return (
            f"Schedule: the authors' update ratio ({budget.gradient_steps} updates every {budget.train_freq} "
            f"steps) on {budget.total_steps:,} of their 500k env steps."
        )
    return (
        f"Default schedule: {budget.gradient_steps} updates every {budget.train_freq} env steps instead of the "
        "authors' one per step, so that 5 methods x 5 seeds on the 3-goal env fit in about 15 minutes on 2 CPU "
        "cores: an S²AC(phi,theta) update (m = 10, L = 10, second order through the sampler, adaptive step, "
        "2 x 32 networks, batch 50) costs about 23 ms per seed there. All methods get the same env steps and "
        "updates; none is converged, so these numbers compare methods at equal small budgets, not the paper's "
        "final policies. `--full` runs 100k steps."
    )


# ----------------------------------------------------------------------------- driver


def _slug(env_id: str) -> str:
    return MULTIGOAL_SPECS[env_id].name


def run_multigoal(
    out_dir: str | Path,
    full: bool = False,
    seeds: int = 5,
    algos: list[str] | None = None,
    envs: list[str] | None = None,
    *,
    budget: MultigoalBudget | None = None,
    progress: bool = True,
) -> dict:
    """Train, evaluate and report every (algo, env) with ``seeds`` seeds; write figures, ``summary.json``
    and ``report.md`` into ``out_dir`` and return the summary (JSON-ready).

    ``algos`` defaults to :data:`DEFAULT_ALGOS`; names :func:`make_agent_config` rejects are skipped and
    listed in ``summary["skipped_algos"]``. ``full`` selects :meth:`MultigoalBudget.full` and both envs;
    ``budget`` overrides either schedule (tests).
    """
    t_start = time.perf_counter()
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive int; got {seeds!r}")
    env_ids = list(envs) if envs else list(FULL_ENVS if full else DEFAULT_ENVS)
    for env_id in env_ids:
        if env_id not in OBSTACLE_VARIANT:
            raise ValueError(f"unknown multigoal training env {env_id!r}; expected one of {list(OBSTACLE_VARIANT)}")
    requested = list(algos) if algos else list(DEFAULT_ALGOS)
    run_algos, skipped = available_algos(requested, env_ids[0])
    if not run_algos:
        raise ValueError(f"none of the algos {requested} is available: {skipped}")
    budget = budget or (MultigoalBudget.full() if full else MultigoalBudget())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_list = list(range(seeds))
    key = jax.random.PRNGKey(12345)
    timing = {"train": 0.0, "eval": 0.0, "figures": 0.0}
    results: dict[str, dict[str, Any]] = {}
    histories: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    files: list[str] = []
    env_info: dict[str, Any] = {}

    for e_index, env_id in enumerate(env_ids):
        task, obstacle_task = jax_env_for(env_id), jax_env_for(OBSTACLE_VARIANT[env_id])
        slug = _slug(env_id)
        env_info[env_id] = {
            "slug": slug,
            "goals": task.goals,
            "probe_states": task.probe_states,
            "wall": obstacle_task.wall,
        }
        results[env_id], histories[env_id] = {}, {}
        first_rollouts, probe_plots, eval_all = {}, {}, {}
        for a_index, algo in enumerate(run_algos):
            run = train_algo(algo, env_id, budget, seed_list, progress)
            timing["train"] += run.wall_s
            t0 = time.perf_counter()
            k_run = jax.random.fold_in(jax.random.fold_in(key, e_index), a_index)
            k_eval, k_ent = jax.random.split(k_run)
            metrics, first = evaluate_run(run, budget, k_eval)
            entropy, samples = probe_entropies(run, task, k_ent, budget.entropy_draws)
            probe_plots[algo] = (samples[:, : budget.probe_samples], q_grids(run, task))
            eval_wall = time.perf_counter() - t0
            timing["eval"] += eval_wall
            first_rollouts[algo], eval_all[algo] = first, metrics
            histories[env_id][algo] = run.history
            results[env_id][algo] = {
                "agent_config": dataclasses.asdict(run.config),
                "train_wall_s": run.wall_s,
                "eval_wall_s": eval_wall,
                "final_train": {k: run.history[k][-1] for k in ("ep_return", "goal_rate", "ep_length")},
                "invertibility_margin": margin_summary(run.history),
                "eval": metrics,
                "entropy": entropy,
                "entropy_not_available": not entropy_estimators(run.agent),
                "history": {k: v for k, v in run.history.items()},
            }
        t0 = time.perf_counter()
        files.append(
            plot_trajectories(
                out / f"{slug}_trajectories.png", task, {a: first_rollouts[a]["plain"] for a in run_algos}
            )
        )
        files.append(plot_probe_samples(out / f"{slug}_probe_q.png", task, probe_plots, task.max_action))
        files.append(plot_goal_histograms(out / f"{slug}_goal_histogram.png", task, eval_all))
        files.append(
            plot_obstacle(
                out / f"{slug}_obstacle.png",
                obstacle_task,
                {a: first_rollouts[a]["obstacle"]["random"] for a in run_algos},
            )
        )
        timing["figures"] += time.perf_counter() - t0

    t0 = time.perf_counter()
    files.append(plot_learning_curves(out / "learning_curves.png", histories))
    timing["figures"] += time.perf_counter() - t0
    timing["total"] = time.perf_counter() - t_start
    summary = {
        "experiment": "multigoal",
        "command": cli_command(out, full, seeds, algos, envs),
        "full": full,
        "seeds": seed_list,
        "machine": _machine(),
        "budget": dataclasses.asdict(budget),
        "n_updates": budget.n_updates,
        "batch_size": budget.agent_config(run_algos[0], env_ids[0]).batch_size,
        "algos": run_algos,
        "skipped_algos": skipped,
        "envs": env_info,
        "results": results,
        "timing_s": timing,
        "notes": [budget_note(budget)] + NOTES,
        "files": files + ["summary.json", "report.md"],
    }
    summary = json_safe(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "report.md").write_text(report_markdown(summary))
    return summary


__all__ = [
    "DEFAULT_ALGOS",
    "DEFAULT_ENVS",
    "MultigoalBudget",
    "available_algos",
    "episode_metrics",
    "mean_ci",
    "probe_entropies",
    "run_multigoal",
    "t_quantile_975",
]
