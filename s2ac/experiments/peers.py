"""The head-to-head: SAC, CrossQ, S²AC on both critics, DIME and SAC-NF on one budget and protocol.

:func:`run_peers` trains every method through the MuJoCo harness (:func:`s2ac.experiments.mujoco.run_mujoco`:
a Ray sweep, or lockstep groups with ``stop_after_s`` so that a cut-off run resumes when the same
command is run again), then adds the across-task statistics of Agarwal et al. (2021, "Deep RL at
the Edge of the Statistical Precipice") to its report:

* per (method, task): the final deterministic return, mean ± 95% Student-t half-width over seeds;
* per method: the IQM of the per-task min-max normalised final returns (:mod:`s2ac.compare`) with a
  95% stratified-bootstrap interval (seeds resampled within each task);
* per method: the probability of improvement over SAC (:func:`probability_of_improvement`) with a
  95% stratified-bootstrap interval.

Protocol: every method is evaluated the same way, every ``eval_freq`` env steps over
:data:`s2ac.experiments.mujoco.EVAL_EPISODES` episodes with its deterministic action (SVGD's particle
of highest Q for S²AC, the mean for Gaussians), and the stochastic policy reported beside it; the
tables use the deterministic return of the last evaluation.

Two sizes: :data:`CPU_SUBSET` (small tasks, short budgets, 3 seeds: about an hour on 2 cores) and
:func:`gpu_plan` (Hopper-v5 and Walker2d-v5 at 100k steps in lockstep groups, cut into GPU windows).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2ac.compare import CONFIDENCE, iqm_interval, stratified_interval
from s2ac.experiments.mujoco import DETERMINISTIC, run_mujoco
from s2ac.experiments.reporting import json_safe, markdown_table
from s2ac.experiments.stats import fmt_ci, seed_stats

PEER_ALGOS: tuple[str, ...] = ("sac", "crossq", "s2ac", "s2ac-crossq", "dime", "sac-nf")
"""The methods compared; SAC is the baseline of the probability of improvement."""
BASELINE = "sac"
RESAMPLES = 2000
"""Bootstrap resamples for every interval."""


@dataclass(frozen=True)
class PeersPlan:
    """One size of the comparison."""

    envs: tuple[str, ...]
    steps: int
    seeds: tuple[int, ...]
    preset: str
    note: str


CPU_SUBSET = PeersPlan(
    envs=("Pendulum-v1", "InvertedPendulum-v5"),
    steps=5_000,
    seeds=(0, 1, 2),
    preset="quick",
    note="small tasks at 5k env steps, quick presets, 3 seeds in lockstep groups",
)
GPU_PLAN = PeersPlan(
    envs=("Hopper-v5", "Walker2d-v5"),
    steps=100_000,
    seeds=(0, 1, 2),
    preset="corrected",
    note="Hopper-v5 and Walker2d-v5 at 100k env steps, 3 seeds in lockstep groups",
)


# -- statistics ----------------------------------------------------------------------------


def improvement_probability(x: np.ndarray, y: np.ndarray) -> float:
    """``P(X > Y) + P(X = Y)/2`` for one task, X and Y drawn from the runs ``x`` and ``y``: the
    Mann-Whitney U statistic of ``x`` against ``y`` divided by ``len(x) * len(y)``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    greater = (x[:, None] > y[None, :]).mean()
    ties = (x[:, None] == y[None, :]).mean()
    return float(greater + 0.5 * ties)


def probability_of_improvement(
    x_by_task: list[np.ndarray], y_by_task: list[np.ndarray], resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """Average over tasks of :func:`improvement_probability` (Agarwal et al. 2021, eq. for P(X > Y)),
    and its :data:`CONFIDENCE` percentile interval from a stratified bootstrap: each task's runs of
    each method are resampled with replacement on their own."""
    point = float(np.mean([improvement_probability(x, y) for x, y in zip(x_by_task, y_by_task)]))
    samples = [np.asarray(s, float) for pair in zip(x_by_task, y_by_task) for s in pair]
    if all(len(s) < 2 for s in samples):
        return point, point, point

    def statistic(*resampled: np.ndarray) -> float:
        pairs = zip(resampled[0::2], resampled[1::2])
        return float(np.mean([improvement_probability(x, y) for x, y in pairs]))

    low, high = stratified_interval(samples, statistic, resamples, seed, vectorized=False)
    return point, low, high


def normalise_per_task(scores: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """``(x - min) / (max - min)`` per task over every run of every method (0.5 where min = max),
    ``scores[method][task]`` the final returns of the seeds."""
    tasks = {t for per_task in scores.values() for t in per_task}
    out: dict[str, dict[str, np.ndarray]] = {m: {} for m in scores}
    for task in tasks:
        pooled = np.concatenate([per_task[task] for per_task in scores.values() if task in per_task])
        low, high = pooled.min(), pooled.max()
        for method, per_task in scores.items():
            if task in per_task:
                x = per_task[task]
                out[method][task] = np.full_like(x, 0.5) if high == low else (x - low) / (high - low)
    return out


def final_scores(runs: list[dict], preset: str) -> dict[str, dict[str, np.ndarray]]:
    """``scores[method][env]``: the last deterministic evaluation return of each finished seed; a
    method is its algorithm's name, with ``:preset`` where that is not the plan's ``preset``."""
    scores: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        value = run["final"].get(DETERMINISTIC)
        method = run["algo"] if run["preset"] == preset else f"{run['algo']}:{run['preset']}"
        if value is not None and math.isfinite(value):
            scores.setdefault(method, {}).setdefault(run["env_id"], []).append(float(value))
    return {m: {t: np.asarray(v) for t, v in per.items()} for m, per in scores.items()}


def aggregate(scores: dict[str, dict[str, np.ndarray]], baseline: str = BASELINE, seed: int = 0) -> dict[str, Any]:
    """Per method: IQM of normalised scores with its interval, and P(method > baseline) with its
    interval over the tasks both ran."""
    normalised = normalise_per_task(scores)
    rows = {}
    for method, per_task in normalised.items():
        tasks = sorted(per_task)
        point, low, high = iqm_interval([per_task[t] for t in tasks], RESAMPLES, seed)
        row: dict[str, Any] = {"iqm": point, "iqm_low": low, "iqm_high": high, "tasks": tasks}
        shared = [t for t in tasks if t in scores.get(baseline, {})]
        if method != baseline and shared:
            p, p_low, p_high = probability_of_improvement(
                [scores[method][t] for t in shared], [scores[baseline][t] for t in shared], seed=seed
            )
            row.update(p_improve=p, p_improve_low=p_low, p_improve_high=p_high)
        rows[method] = row
    return rows


# -- report --------------------------------------------------------------------------------


def per_task_table(scores: dict[str, dict[str, np.ndarray]]) -> str:
    tasks = sorted({t for per in scores.values() for t in per})
    rows = []
    for method, per_task in scores.items():
        cells = [fmt_ci(per_task[t], 1) + f" (n={len(per_task[t])})" if t in per_task else "n/a" for t in tasks]
        rows.append([method, *cells])
    return markdown_table(["method", *tasks], rows)


def aggregate_table(rows: dict[str, dict[str, Any]]) -> str:
    out = []
    for method, r in rows.items():
        p = (
            f"{r['p_improve']:.2f} [{r['p_improve_low']:.2f}, {r['p_improve_high']:.2f}]"
            if "p_improve" in r
            else "(baseline)"
        )
        out.append([method, f"{r['iqm']:.2f} [{r['iqm_low']:.2f}, {r['iqm_high']:.2f}]", p])
    return markdown_table(["method", "IQM of normalised return [95% CI]", f"P(better than {BASELINE}) [95% CI]"], out)


def peers_markdown(summary: dict[str, Any], per_task: str, agg: str) -> str:
    return "\n".join(
        [
            "# Peers: one budget, one protocol",
            "",
            f"Command: `{summary['command']}`",
            "",
            f"Plan: {summary['note']}. Budget {summary['steps']:,} env steps per run, seeds {summary['seeds']}, "
            f"preset `{summary['preset']}` for every method. Evaluation: deterministic action, "
            "last evaluation of each run (the MuJoCo report beside this file has the stochastic returns, "
            "the curves and each trial's status).",
            "",
            "## Final deterministic return per task (mean ± 95% t half-width over seeds)",
            "",
            per_task,
            "",
            "## Across tasks",
            "",
            "Scores normalised per task by the min and max final return over every run of the task. "
            f"Intervals: {CONFIDENCE:.0%} percentile, stratified bootstrap ({RESAMPLES} resamples, seeds "
            "resampled within each task). P(better than SAC): the probability that a run of the method "
            "beats a run of SAC on a task drawn at random (ties count half).",
            "",
            agg,
            "",
            "![peers](peers.png)",
            "",
        ]
    )


def plot_peers(path: Path, rows: dict[str, dict[str, Any]]) -> None:
    """IQM and probability of improvement per method, with their intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(rows)
    y = np.arange(len(methods))
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 0.5 * len(methods) + 1.5), sharey=True)
    for i, m in enumerate(methods):
        r = rows[m]
        color = f"C{i}"  # one colour per method in both panels
        left.errorbar(r["iqm"], i, xerr=[[r["iqm"] - r["iqm_low"]], [r["iqm_high"] - r["iqm"]]], fmt="o", color=color)
        if "p_improve" in r:
            p, lo, hi = r["p_improve"], r["p_improve_low"], r["p_improve_high"]
            right.errorbar(p, i, xerr=[[p - lo], [hi - p]], fmt="o", color=color)
    left.set(yticks=y, yticklabels=methods, xlabel="IQM of normalised final return", xlim=(-0.05, 1.05))
    left.invert_yaxis()  # the baseline on top, as in the tables
    right.axvline(0.5, color="grey", lw=0.8)
    right.set(xlabel=f"P(better than {BASELINE})", xlim=(-0.05, 1.05))
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- entry points --------------------------------------------------------------------------


def peers_command(out_dir: Path, plan: PeersPlan, algos, lockstep: bool, stop_after_s: float | None) -> str:
    parts = ["s2ac reproduce peers", f"--out {out_dir}", "--envs " + " ".join(plan.envs), "--algos " + " ".join(algos)]
    parts += [f"--steps {plan.steps}", "--seeds " + " ".join(map(str, plan.seeds)), f"--preset {plan.preset}"]
    if lockstep:
        parts.append("--lockstep")
    if stop_after_s is not None:
        parts.append(f"--stop-after-s {stop_after_s:g}")
    return " ".join(parts)


def run_peers(
    out_dir: str | Path,
    plan: PeersPlan = CPU_SUBSET,
    algos: tuple[str, ...] = PEER_ALGOS,
    lockstep: bool = False,
    stop_after_s: float | None = None,
    report_only: bool = False,
) -> dict[str, Any]:
    """Train (or continue) every method of ``algos`` (``algo:preset`` pins a preset other than the
    plan's) under ``plan`` in ``out_dir``, then write
    ``peers.md``, ``peers.json`` and ``peers.png`` beside the MuJoCo harness's report."""
    out_dir = Path(out_dir)
    harness = run_mujoco(
        out_dir,
        envs=plan.envs,
        algos=tuple(a if ":" in a else f"{a}:{plan.preset}" for a in algos),  # ``algo:preset`` keeps its own
        steps=plan.steps,
        seeds=plan.seeds,
        lockstep=lockstep,
        stop_after_s=stop_after_s,
        report_only=report_only,
    )
    from s2ac.sweep import summarize_runs

    finished = {t["trial"] for t in harness["trials"] if t["status"] in ("finished", "skipped")}
    runs = [r for r in summarize_runs(out_dir) if r["trial"] in finished]  # a stopped group's runs wait
    found = final_scores(runs, plan.preset)
    order = [*algos, *sorted(set(found) - set(algos))]
    scores = {m: found[m] for m in order if m in found}  # the command's order: the baseline first
    rows = aggregate(scores)
    summary = {
        "command": peers_command(out_dir, plan, algos, lockstep, stop_after_s),
        "note": plan.note,
        "steps": plan.steps,
        "seeds": list(plan.seeds),
        "preset": plan.preset,
        "envs": list(plan.envs),
        "per_task": {
            m: {t: seed_stats(v) | {"returns": v.tolist()} for t, v in per.items()} for m, per in scores.items()
        },
        "aggregate": rows,
        "trials": harness["trials"],
        "counts": harness["counts"],
    }
    (out_dir / "peers.md").write_text(peers_markdown(summary, per_task_table(scores), aggregate_table(rows)))
    (out_dir / "peers.json").write_text(json.dumps(json_safe(summary), indent=2))
    if rows:
        plot_peers(out_dir / "peers.png", rows)
    return summary


SLOWEST_GPU_RATE = 218.0
"""Env steps/s per run of S²AC's slowest lockstep group measured on one H100 (218–274 across groups)."""


def gpu_plan(
    out_dir: str | Path,
    algos: tuple[str, ...] = PEER_ALGOS,
    window_s: float = 900,
    start_s: float = 240,
    rate: float = SLOWEST_GPU_RATE,
) -> str:
    """The shell script that runs :data:`GPU_PLAN` in GPU windows of ``window_s`` seconds, of which
    ``start_s`` go to starting the machine: the whole plan as one lockstep command whose groups each
    stop after their share of the window and checkpoint, so the next window's identical command
    continues them. ``rate`` (env steps/s per run) sizes the estimate of how many windows it takes.
    Returns the script's text."""
    groups = len(algos) * len(GPU_PLAN.envs)
    per_group = max(30.0, (window_s - start_s - 60) / groups)  # 60 s for imports and the report
    windows = math.ceil(GPU_PLAN.steps / (rate * per_group))
    command = peers_command(Path(out_dir), GPU_PLAN, algos, lockstep=True, stop_after_s=per_group)
    return "\n".join(
        [
            "#!/usr/bin/env bash",
            f"# {GPU_PLAN.note}: {groups} lockstep groups (method x env), each stopped after {per_group:.0f} s",
            f"# of a {window_s:.0f} s window and checkpointed; run this same script in the next window to",
            "# continue (finished trials are skipped). The report is rewritten after every window.",
            f"# At {rate:.0f} env steps/s per run (the slowest S²AC group measured) a group advances about",
            f"# {rate * per_group:,.0f} steps per window: about {windows} windows for the whole plan.",
            "set -euo pipefail",
            f"timeout {window_s - start_s:.0f} {command}",
            "",
        ]
    )


__all__ = [
    "CPU_SUBSET",
    "GPU_PLAN",
    "PEER_ALGOS",
    "PeersPlan",
    "aggregate",
    "gpu_plan",
    "improvement_probability",
    "probability_of_improvement",
    "run_peers",
]
