"""Comparing run folders (``s2ac plot``): learning curves per (algorithm, env) and an aggregate of
final returns across tasks.

* Curves: each run's return metric from ``metrics.jsonl`` (:func:`s2ac.logger.read_metrics`) against
  env steps; the runs of one (label, env), i.e. its seeds, as their mean with a 95% Student-t
  confidence band of the mean.
* Aggregate: each run's final return (the metric's last value), normalised per task (env) by the
  minimum and maximum final return over all runs of that task, ``(x - min) / (max - min)`` (0.5
  where they are equal); per label the interquartile mean (IQM: the mean of the middle 50% of the
  pooled normalised scores, ``scipy.stats.trim_mean(x, 0.25)``) with a stratified bootstrap
  confidence interval, runs resampled within each task (Agarwal et al. 2021, "Deep RL at the Edge
  of the Statistical Precipice").

rliable (the reference implementation of that paper) would pull in arch, statsmodels, seaborn and
their dependencies, and takes a rectangular (runs x tasks) score matrix, i.e. the same number of
runs of every task; ``scipy.stats.bootstrap`` with one sample per task (``paired=False`` resamples
each on its own) is the same stratified bootstrap for any number of runs per task, with SciPy
already a dependency.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from s2ac.logger import read_metrics
from s2ac.runs import RUN_CONFIG_FILE

RETURN_METRICS = ("eval/mean_reward", "rollout/ep_rew_mean")
"""Return curves ``s2ac plot`` can compare, in the order ``auto`` tries them."""
CONFIDENCE = 0.95
NORMALISATION = "per task: (final - min) / (max - min) over all runs of the task (0.5 where min = max)"


@dataclass(frozen=True)
class RunCurve:
    """One run's return curve and where it belongs."""

    run_dir: Path
    label: str
    env: str
    seed: int
    steps: np.ndarray
    values: np.ndarray

    @property
    def final(self) -> float:
        return float(self.values[-1])


def run_folders(paths: list[Path]) -> list[Path]:
    """``paths`` with each folder that is not a run folder replaced by the run folders inside it
    (e.g. a sweep's output folder), in name order."""
    out = []
    for path in map(Path, paths):
        if (path / RUN_CONFIG_FILE).exists():
            out.append(path)
        else:
            inner = sorted(p.parent for p in path.glob(f"*/{RUN_CONFIG_FILE}"))
            if not inner:
                raise FileNotFoundError(f"{path} holds no {RUN_CONFIG_FILE}: not a run folder nor a folder of runs")
            out += inner
    return out


def _series(rows: list[dict], metric: str) -> tuple[np.ndarray, np.ndarray]:
    # A step logged twice (a resumed run) keeps its last value.
    by_step = {r["step"]: r[metric] for r in rows if r.get(metric) is not None and np.isfinite(r[metric])}
    steps = sorted(by_step)
    return np.asarray(steps, float), np.asarray([by_step[s] for s in steps], float)


def load_curves(paths: list[Path], labels: tuple[str, ...] = (), metric: str = "auto") -> tuple[list[RunCurve], str]:
    """Every run's curve of ``metric`` (``auto``: the first of :data:`RETURN_METRICS` that every run
    logged) and the metric used. A run's label is its algorithm unless ``labels`` names one per run."""
    dirs = run_folders(paths)
    if labels and len(labels) != len(dirs):
        raise ValueError(f"{len(labels)} labels for {len(dirs)} run folders ({', '.join(map(str, dirs))})")
    configs = [json.loads((d / RUN_CONFIG_FILE).read_text()) for d in dirs]
    rows = [read_metrics(d) for d in dirs]
    if metric == "auto":
        usable = [m for m in RETURN_METRICS if all(len(_series(r, m)[0]) for r in rows)]
        if not usable:
            raise ValueError(f"no return metric ({', '.join(RETURN_METRICS)}) is logged by every run")
        metric = usable[0]
    curves = []
    for i, (d, cfg, r) in enumerate(zip(dirs, configs, rows)):
        steps, values = _series(r, metric)
        if not len(steps):
            raise ValueError(f"{d} has no {metric} values in its metrics.jsonl")
        label = labels[i] if labels else cfg["algo"]
        curves.append(RunCurve(d, label, cfg["train"]["env_id"], int(cfg["train"]["seed"]), steps, values))
    return curves, metric


def iqm(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean after cutting 25% of the scores from each end."""
    return stats.trim_mean(scores, 0.25, axis=axis)


def iqm_interval(per_task: list[np.ndarray], resamples: int, seed: int) -> tuple[float, float, float]:
    """IQM of the pooled scores and its :data:`CONFIDENCE` percentile interval from a stratified
    bootstrap (each task's runs resampled with replacement on their own)."""
    pooled = np.concatenate(per_task)
    point = float(iqm(pooled))
    varying = [x for x in per_task if len(x) >= 2]
    fixed = [x for x in per_task if len(x) < 2]  # one run resamples to itself
    if not varying:
        return point, point, point

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        batch = samples[0].shape[:-1]
        return iqm(np.concatenate([*samples, *(np.broadcast_to(x, (*batch, len(x))) for x in fixed)], -1))

    low, high = stratified_interval(varying, statistic, resamples, seed, vectorized=True)
    return point, low, high


def stratified_interval(
    samples: list[np.ndarray], statistic, resamples: int, seed: int, vectorized: bool
) -> tuple[float, float]:
    """:data:`CONFIDENCE` percentile interval of ``statistic(*samples)`` from a stratified bootstrap:
    each sample (one task's runs, or one method's runs on one task) is resampled with replacement on
    its own (``scipy.stats.bootstrap`` with ``paired=False``)."""
    result = stats.bootstrap(
        tuple(samples),
        statistic,
        n_resamples=resamples,
        paired=False,
        vectorized=vectorized,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return float(low), float(high)


def mean_band(curves: list[RunCurve]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, mean, low, high)`` across ``curves`` at the steps every curve logged (where there are
    none in common, the curves are interpolated onto the union of their steps within their common
    range); the band is the Student-t confidence interval of the mean (none for one curve)."""
    common = sorted(set.intersection(*(set(c.steps.tolist()) for c in curves)))
    if common:
        steps = np.asarray(common)
        ys = np.stack([c.values[np.searchsorted(c.steps, steps)] for c in curves])
    else:
        lo, hi = max(c.steps[0] for c in curves), min(c.steps[-1] for c in curves)
        steps = np.unique(np.concatenate([c.steps for c in curves]))
        steps = steps[(steps >= lo) & (steps <= hi)]
        ys = np.stack([np.interp(steps, c.steps, c.values) for c in curves])
    mean = ys.mean(0)
    if len(curves) < 2:
        return steps, mean, mean, mean
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(curves) - 1) * ys.std(0, ddof=1) / np.sqrt(len(curves))
    return steps, mean, mean - half, mean + half


def summarise(curves: list[RunCurve], metric: str, resamples: int = 2000, seed: int = 0) -> dict:
    """Final returns per task and label, their normalisation, and each label's IQM with its interval."""
    tasks: dict[str, dict] = {}
    normalised: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for env in sorted({c.env for c in curves}):
        runs = [c for c in curves if c.env == env]
        lo, hi = min(c.final for c in runs), max(c.final for c in runs)
        by_label: dict[str, dict] = {}
        for c in runs:
            entry = by_label.setdefault(c.label, {"seeds": [], "final": [], "normalised": [], "run_dirs": []})
            entry["seeds"].append(c.seed)
            entry["final"].append(c.final)
            entry["normalised"].append(0.5 if hi == lo else (c.final - lo) / (hi - lo))
            entry["run_dirs"].append(str(c.run_dir))
        tasks[env] = {"min": lo, "max": hi, "labels": by_label}
        for label, entry in by_label.items():
            normalised[label][env] = entry["normalised"]
    aggregate = {}
    for label in sorted(normalised):
        per_task = [np.asarray(v) for v in normalised[label].values()]
        point, low, high = iqm_interval(per_task, resamples, seed)
        aggregate[label] = {
            "iqm": point,
            "ci_low": low,
            "ci_high": high,
            "n_runs": int(sum(map(len, per_task))),
            "n_tasks": len(per_task),
        }
    return {
        "metric": metric,
        "final": f"last logged value of {metric}",
        "normalisation": NORMALISATION,
        "interval": f"{CONFIDENCE:.0%} stratified bootstrap percentile interval, {resamples} resamples, seed {seed}",
        "tasks": tasks,
        "iqm": aggregate,
    }


def _markdown(summary: dict, figure: Path) -> str:
    lines = [
        f"# Run comparison: {summary['metric']}",
        "",
        f"![comparison]({figure.name})",
        "",
        f"IQM of final returns ({summary['final']}), normalised {summary['normalisation']}; "
        f"interval: {summary['interval']}.",
        "",
        "| label | IQM | interval | runs | tasks |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, a in summary["iqm"].items():
        lines.append(
            f"| {label} | {a['iqm']:.3f} | [{a['ci_low']:.3f}, {a['ci_high']:.3f}] | {a['n_runs']} | {a['n_tasks']} |"
        )
    lines += ["", "| task | label | seeds | final returns |", "| --- | --- | --- | --- |"]
    for env, task in summary["tasks"].items():
        for label, entry in task["labels"].items():
            finals = ", ".join(f"{x:.2f}" for x in entry["final"])
            lines.append(f"| {env} | {label} | {', '.join(map(str, entry['seeds']))} | {finals} |")
    return "\n".join(lines) + "\n"


def plot_comparison(curves: list[RunCurve], summary: dict, out: Path) -> Path:
    """One panel of curves per env (mean and band per label) and one of the IQMs with their intervals."""
    from s2ac.plots import pyplot

    plt = pyplot()
    envs = list(summary["tasks"])
    labels = sorted({c.label for c in curves})
    colours = {label: f"C{i}" for i, label in enumerate(labels)}
    fig, axes = plt.subplots(1, len(envs) + 1, figsize=(4.4 * (len(envs) + 1), 3.8), squeeze=False)
    for ax, env in zip(axes[0], envs):
        for label in labels:
            group = [c for c in curves if c.env == env and c.label == label]
            if not group:
                continue
            steps, mean, low, high = mean_band(group)
            ax.plot(steps, mean, color=colours[label], label=f"{label} ({len(group)} seeds)")
            ax.fill_between(steps, low, high, color=colours[label], alpha=0.2, lw=0)
        ax.set_title(env, fontsize=9)
        ax.set_xlabel("env steps")
        ax.set_ylabel(summary["metric"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[0][-1]
    for y, label in enumerate(labels):
        a = summary["iqm"][label]
        ax.errorbar(
            a["iqm"], y, xerr=[[a["iqm"] - a["ci_low"]], [a["ci_high"] - a["iqm"]]],
            fmt="o", color=colours[label], capsize=4,
        )  # fmt: skip
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlim(-0.05, 1.05)
    ax.set_xlabel("IQM of normalised final return")
    ax.set_title(f"IQM, {CONFIDENCE:.0%} stratified bootstrap CI", fontsize=9)
    ax.grid(alpha=0.3)
    fig.suptitle(f"mean and {CONFIDENCE:.0%} t-band over seeds; normalised {NORMALISATION}", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def compare_runs(
    paths: list[Path],
    out: Path,
    labels: tuple[str, ...] = (),
    metric: str = "auto",
    resamples: int = 2000,
    seed: int = 0,
) -> dict:
    """Write the figure ``out`` and its summary next to it (``out`` with suffixes ``.json`` and ``.md``)."""
    curves, metric = load_curves(paths, labels, metric)
    summary = summarise(curves, metric, resamples, seed)
    out = Path(out)
    summary["figure"] = str(plot_comparison(curves, summary, out))
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    out.with_suffix(".md").write_text(_markdown(summary, out))
    summary["files"] = [str(out), str(out.with_suffix(".json")), str(out.with_suffix(".md"))]
    return summary


__all__ = [
    "CONFIDENCE",
    "NORMALISATION",
    "RETURN_METRICS",
    "RunCurve",
    "compare_runs",
    "iqm",
    "iqm_interval",
    "stratified_interval",
    "load_curves",
    "mean_band",
    "run_folders",
    "summarise",
]
