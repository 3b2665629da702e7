"""Training and evaluation of the multigoal reproduction, and :func:`run_multigoal`, which writes it all.

Every call into :mod:`s2ac.jax_loop` (``train_vectorized``, ``play_episodes``, ``Rollouts``,
``env_spec_of``, ``unstack_tree``) is in this module.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from s2ac.agents import Agent, make_agent
from s2ac.config import AgentConfig
from s2ac.envs import jax_env_for
from s2ac.envs.multigoal import MultiGoalSpec
from s2ac.experiments.estimators import knn_entropy
from s2ac.experiments.multigoal.config import (
    DEFAULT_ALGOS,
    DEFAULT_ENVS,
    FULL_ENVS,
    KNN_K,
    MODES,
    OBSTACLE_VARIANT,
    MultigoalBudget,
    available_algos,
    env_slug,
)
from s2ac.experiments.multigoal.metrics import entropy_estimators, episode_metrics, margin_summary
from s2ac.experiments.multigoal.plots import plot_learning_curves, write_env_figures
from s2ac.experiments.multigoal.report import NOTES, budget_note, cli_command, report_markdown
from s2ac.experiments.multigoal.soft_optimal import soft_optimal_reference
from s2ac.experiments.reporting import json_safe
from s2ac.jax_loop import Rollouts, env_spec_of, play_episodes, train_vectorized, unstack_tree
from s2ac.machine import machine_info, pick

Array = jax.Array

MACHINE_KEYS = ("cpu_count", "arch", "platform", "jax", "backend")
"""The :func:`s2ac.machine.machine_info` entries the summary records."""


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
    """Train ``algo`` on ``env_id`` for all ``seeds`` in one vmapped program.

    ``train_vectorized`` returns the states, not the agent: the one agent of the evaluation is made here,
    from the same config and env spec (agents are pure functions of their config).
    """
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


def n_seeds_of(run: TrainedRun) -> int:
    """Length of the leading seed axis of the stacked states."""
    return jax.tree_util.tree_leaves(run.states)[0].shape[0]


# ----------------------------------------------------------------------------- evaluation


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
            # "max" names the deterministic policy: the config's deterministic_mode (S²AC: test_selection).
            act_mode = run.config.deterministic_mode if mode == "max" else mode
            ro = play_episodes(run.agent, run.states, task, k, budget.eval_episodes, act_mode)
            metrics[variant][mode] = episode_metrics(ro, len(task.goals))
            first[variant][mode] = Rollouts(*(x[0] for x in ro))
    return metrics, first


def _repeat_probes(task: MultiGoalSpec, n: int) -> Array:
    """Each probe state repeated ``n`` times: ``(probes * n, 2)``, probe-major."""
    return jnp.repeat(jnp.asarray(task.probe_states, jnp.float32), n, axis=0)


def _density_estimators(run: TrainedRun, task: MultiGoalSpec, draws: int):
    """``(state, key) -> {estimator: (probes,) array}`` of the agent's own log-density (none for SQL).

    S²AC: ``closed_form`` (the mean-field closed form) and ``exact`` (the per-particle Jacobian's log-det,
    a conditional density below the truth; keys kept for earlier summaries) come from the same particles
    (same key); the second needs the config with ``log_density="per_particle"``, a second agent over the
    same parameters.
    """
    agent, kinds, n_probe = run.agent, entropy_estimators(run.agent), len(task.probe_states)
    if "exact" in kinds:
        rows = -(-draws // run.config.n_particles)  # particle sets per probe: at least ``draws`` particles
        exact_agent = make_agent(dataclasses.replace(run.config, log_density="per_particle"), agent.spec)
        closed_fn, exact_fn = jax.jit(agent.sample_particles), jax.jit(exact_agent.sample_particles)

        def particles(state, key) -> dict[str, Array]:
            obs = _repeat_probes(task, rows)
            closed = closed_fn(state.init_params, state.critic_params, obs, key)
            exact = exact_fn(state.init_params, state.critic_params, obs, key).log_prob
            return {
                "closed_form": -jnp.mean(closed.log_prob.reshape(n_probe, -1), axis=1),
                "exact": -jnp.mean(exact.reshape(n_probe, -1), axis=1),
                # The margin of the very steps behind these densities (worst particle set and step per probe).
                "margin": jnp.max(closed.invertibility_margin.reshape(n_probe, -1), axis=1),
            }

        return particles
    if "log_prob" in kinds or "lower_bound" in kinds:
        sample_fn = jax.jit(agent.sample_action)
        name = "log_prob" if "log_prob" in kinds else "lower_bound"

        def log_prob(state, key) -> dict[str, Array]:
            _, lp = sample_fn(state.actor_params, _repeat_probes(task, draws), key)
            return {name: -jnp.mean(lp.reshape(n_probe, -1), axis=1)}

        return log_prob
    return lambda state, key: {}


def probe_entropies(
    run: TrainedRun, task: MultiGoalSpec, key: Array, draws: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``-mean log pi(a|s)`` at each probe state: arrays ``(seeds, probes)`` per estimator, and the
    first seed's ``draws`` policy samples per probe ``(probes, draws, 2)``.

    ``closed_form`` / ``exact``: S²AC's particles and their log-density by the poster's closed form
    and by the exact per-particle log-det of the same SVGD steps (same key, same particles);
    ``log_prob``: a sampler with a tractable density (SAC, SAC-NF); ``lower_bound``: DIME's entropy
    lower bound (D6)-(D8); ``knn``: Kozachenko-Leonenko
    entropy of ``draws`` samples of ``act(mode="random")`` (density-free, every method).
    All probe states go through one batched call per seed (the sampler treats rows independently).
    """
    n_probe = len(task.probe_states)
    density = _density_estimators(run, task, draws)
    knn_fn = jax.jit(jax.vmap(lambda x: knn_entropy(x, KNN_K)))
    out: dict[str, list] = {}
    first_samples = None
    for i in range(n_seeds_of(run)):
        state = unstack_tree(run.states, i)
        k_density, k_knn = jax.random.split(jax.random.fold_in(key, i))
        est = density(state, k_density)
        samples = run.agent.act(state, _repeat_probes(task, draws), k_knn, mode="random").reshape(n_probe, draws, -1)
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
        q = run.agent.q(state.critic_params, jnp.broadcast_to(probe, (grid.shape[0], 2)), grid)
        return jnp.min(q, axis=0).reshape(res, res)

    return np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(task.probe_states, jnp.float32)))


# ----------------------------------------------------------------------------- driver


def _evaluate_algo(run: TrainedRun, budget: MultigoalBudget, task: MultiGoalSpec, key: Array) -> tuple[dict, tuple]:
    """The summary entry of one trained run, and ``(first-seed rollouts, probe plot data, metrics)`` for figures."""
    t0 = time.perf_counter()
    k_eval, k_ent = jax.random.split(key)
    metrics, first = evaluate_run(run, budget, k_eval)
    entropy, samples = probe_entropies(run, task, k_ent, budget.entropy_draws)
    probe_plot = (samples[:, : budget.probe_samples], q_grids(run, task))
    result = {
        "agent_config": dataclasses.asdict(run.config),
        "train_wall_s": run.wall_s,
        "eval_wall_s": time.perf_counter() - t0,
        "final_train": {k: run.history[k][-1] for k in ("ep_return", "goal_rate", "ep_length")},
        "invertibility_margin": margin_summary(run.history),
        "eval": metrics,
        "entropy": entropy,
        "entropy_not_available": not entropy_estimators(run.agent),
        "history": {k: v for k, v in run.history.items()},
    }
    return result, (first, probe_plot, metrics)


def _run_env(
    e_index: int, env_id: str, algos: list[str], budget: MultigoalBudget, seeds: list[int], ctx: dict
) -> dict[str, Any]:
    """Train, evaluate and draw every algo on one env; results, histories, files and timing go into ``ctx``."""
    task, obstacle_task = jax_env_for(env_id), jax_env_for(OBSTACLE_VARIANT[env_id])
    slug = env_slug(env_id)
    results, histories, per_algo = {}, {}, {}
    for a_index, algo in enumerate(algos):
        run = train_algo(algo, env_id, budget, seeds, ctx["progress"])
        ctx["timing"]["train"] += run.wall_s
        k_run = jax.random.fold_in(jax.random.fold_in(ctx["key"], e_index), a_index)
        results[algo], per_algo[algo] = _evaluate_algo(run, budget, task, k_run)
        ctx["timing"]["eval"] += results[algo]["eval_wall_s"]
        histories[algo] = run.history
    t0 = time.perf_counter()
    ctx["files"] += write_env_figures(ctx["out"], slug, task, obstacle_task, per_algo)
    ctx["timing"]["figures"] += time.perf_counter() - t0
    ctx["results"][env_id], ctx["histories"][env_id] = results, histories
    info = {"slug": slug, "goals": task.goals, "probe_states": task.probe_states, "wall": obstacle_task.wall}
    if budget.reference_spacing is not None:
        t0 = time.perf_counter()
        config = budget.agent_config(algos[0], env_id)  # every method shares the temperature and discount
        info["soft_optimal"] = soft_optimal_reference(
            task,
            config.reward_scale,
            config.alpha,
            config.gamma,
            budget.reference_spacing,
            budget.reference_episodes,
            jax.random.fold_in(ctx["key"], 1000 + e_index),
        )
        ctx["timing"]["reference"] = ctx["timing"].get("reference", 0.0) + time.perf_counter() - t0
    return info


def _resolve(full: bool, seeds: int, algos, envs, budget) -> tuple[list[str], list[str], dict, MultigoalBudget]:
    """Checked ``(env ids, algos to run, skipped algos with reasons, budget)`` of a :func:`run_multigoal` call."""
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
    return env_ids, run_algos, skipped, budget or (MultigoalBudget.full() if full else MultigoalBudget())


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
    env_ids, run_algos, skipped, budget = _resolve(full, seeds, algos, envs, budget)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_list = list(range(seeds))
    timing = {"train": 0.0, "eval": 0.0, "figures": 0.0}
    ctx = dict(key=jax.random.PRNGKey(12345), out=out, progress=progress, timing=timing)
    ctx.update(results={}, histories={}, files=[])
    env_info = {env_id: _run_env(e, env_id, run_algos, budget, seed_list, ctx) for e, env_id in enumerate(env_ids)}

    t0 = time.perf_counter()
    ctx["files"].append(plot_learning_curves(out / "learning_curves.png", ctx["histories"]))
    timing["figures"] += time.perf_counter() - t0
    timing["total"] = time.perf_counter() - t_start
    summary = {
        "experiment": "multigoal",
        "command": cli_command(out, full, seeds, algos, envs),
        "full": full,
        "seeds": seed_list,
        "machine": pick(machine_info(), MACHINE_KEYS),
        "budget": dataclasses.asdict(budget),
        "n_updates": budget.n_updates,
        "batch_size": budget.agent_config(run_algos[0], env_ids[0]).batch_size,
        "algos": run_algos,
        "skipped_algos": skipped,
        "envs": env_info,
        "results": ctx["results"],
        "timing_s": timing,
        "notes": [budget_note(budget)] + NOTES,
        "files": ctx["files"] + ["summary.json", "report.md"],
    }
    summary = json_safe(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "report.md").write_text(report_markdown(summary))
    return summary
