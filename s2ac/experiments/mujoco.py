"""MuJoCo benchmark: every method on the Gymnasium v5 locomotion tasks, several seeds, on Ray.

:func:`run_mujoco` runs the trials through :func:`s2ac.sweep.run_sweep` (so an interrupted
benchmark is continued by running the same command again), evaluating every 10k env steps over
10 episodes with the deterministic and the stochastic policy, then writes into ``out_dir``:

* ``report.md``: final deterministic and stochastic returns per method and env (mean ± 95%
  t-interval and IQM over seeds), the same at 100k / 300k / 1M steps where reached, our SAC next
  to published SAC numbers, the command, budget, seeds, hardware and each trial's ledger status;
* ``summary.json``: the same numbers, machine-readable;
* ``learning_curves.png``: deterministic evaluation return against env steps, mean over seeds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from s2ac.experiments.reporting import json_safe, markdown_table
from s2ac.experiments.stats import seed_stats
from s2ac.machine import machine_info
from s2ac.sweep import (
    OUTCOMES,
    SweepConfig,
    latest_outcome,
    ledger_events,
    run_sweep,
    status_counts,
    summarize_runs,
    trial_specs,
)

DEFAULT_ENVS: tuple[str, ...] = ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5", "Humanoid-v5")
"""The locomotion tasks of the benchmark."""
DEFAULT_ALGOS: tuple[str, ...] = ("sac", "s2ac:paper", "s2ac:corrected", "s2ac-amortized", "sql", "sac-nf")
"""Methods; ``algo:preset`` pins a preset, plain names use the ``presets`` argument."""
EVAL_FREQ = 10_000
"""Env steps between evaluations (shortened for runs under this length)."""
EVAL_EPISODES = 10
"""Episodes per evaluation, for each of the deterministic and the stochastic policy."""
MILESTONES: tuple[int, ...] = (100_000, 300_000, 1_000_000)
"""Budgets at which returns are tabulated when a run reaches them."""
DETERMINISTIC = "eval/mean_reward"
STOCHASTIC = "eval/stochastic_mean_reward"

# Published SAC returns near 1M steps (REFERENCE.md §4); protocols differ, so they are context only.
REFERENCE_SAC: dict[str, dict[str, Any]] = {
    "RL Zoo (SB3) SAC": {
        "protocol": "deterministic evaluation of the final agent; env v3; Humanoid at 2M steps",
        "source": "https://github.com/DLR-RM/rl-baselines3-zoo (benchmark.md)",
        "returns": {"Hopper": 2326, "Walker2d": 3863, "HalfCheetah": 9536, "Ant": 4616, "Humanoid": 6232},
    },
    "CleanRL SAC": {
        "protocol": "mean of the last 100 training episodes, 3 seeds; env v4",
        "source": "https://docs.cleanrl.dev/rl-algorithms/sac/",
        "returns": {"Hopper": 2310, "Walker2d": 3591, "HalfCheetah": 9635, "Humanoid": 4996},
    },
    "Tianshou SAC": {
        "protocol": "max over training of the average test return, 10 seeds; env v3",
        "source": "https://github.com/thu-ml/tianshou/tree/master/examples/mujoco",
        "returns": {"Hopper": 3542, "Walker2d": 5007, "HalfCheetah": 12139, "Ant": 5850, "Humanoid": 5489},
    },
}
"""Published SAC numbers with their protocol and source."""
REFERENCE_SAC_ANT_V4 = {100_000: 286, 300_000: 3307, 500_000: 4951}
"""Tianshou SAC on Ant-v4 at 100k / 300k / 500k steps (REFERENCE.md §4)."""


# -- tables ------------------------------------------------------------------------------


def method_label(run: dict) -> str:
    """Display name of a run's method: algo and preset."""
    return f"{run['algo']} ({run['preset']})"


def value_at(evals: list[dict], step: int, key: str) -> float | None:
    """``key`` of the last evaluation at or before ``step``."""
    rows = [r for r in evals if r["step"] <= step and r.get(key) is not None]
    return rows[-1][key] if rows else None


def group_runs(runs: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Runs by (method label, env id), in first-seen order."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((method_label(run), run["env_id"]), []).append(run)
    return groups


def table_rows(runs: list[dict], step: int | None) -> list[dict[str, Any]]:
    """One row per (method, env): deterministic and stochastic return stats at ``step`` (None: final).

    Only seeds whose last evaluation reached ``step`` count, so a milestone is never mixed with
    shorter runs; ``step`` in the row is the budget the numbers belong to.
    """
    rows = []
    for (method, env_id), group in group_runs(runs).items():
        reached = [r for r in group if r["evals"]]
        at = step if step is not None else min((r["evals"][-1]["step"] for r in reached), default=0)
        reached = [r for r in reached if r["evals"][-1]["step"] >= at]
        rows.append(
            {
                "method": method,
                "env_id": env_id,
                "step": at,
                "seeds": sorted(r["seed"] for r in reached),
                "deterministic": seed_stats([value_at(r["evals"], at, DETERMINISTIC) for r in reached]),
                "stochastic": seed_stats([value_at(r["evals"], at, STOCHASTIC) for r in reached]),
            }
        )
    return rows


def milestone_tables(runs: list[dict]) -> dict[str, list[dict]]:
    """Tables at each milestone some run reached; without any, one at the largest step reached (labelled)."""
    largest = max((r["evals"][-1]["step"] for r in runs if r["evals"]), default=0)
    tables = {f"{m:,} steps": table_rows(runs, m) for m in MILESTONES if m <= largest}
    if not tables and largest:
        tables[f"largest step reached ({largest:,}; below 100k)"] = table_rows(runs, largest)
    return {name: [row for row in rows if row["seeds"]] for name, rows in tables.items()}


def reference_rows(final_rows: list[dict]) -> list[dict[str, Any]]:
    """Our SAC's final deterministic return next to the published numbers, per env."""
    ours = {r["env_id"]: r for r in final_rows if r["method"].startswith("sac (")}
    rows = []
    for env_id, row in ours.items():
        name = env_id.split("-")[0]
        published = {src: ref["returns"].get(name) for src, ref in REFERENCE_SAC.items()}
        rows.append({"env_id": env_id, "method": row["method"], "step": row["step"], "ours": row["deterministic"]})
        rows[-1]["published"] = published
    return rows


# -- report --------------------------------------------------------------------------------


def _fmt_stat(stat: dict) -> tuple[str, str]:
    """``mean ± ci`` and ``IQM`` cells."""
    if stat["mean"] is None:
        return "—", "—"
    ci = "n/a" if stat["ci95"] is None else f"{stat['ci95']:.0f}"
    return f"{stat['mean']:.1f} ± {ci}", f"{stat['iqm']:.1f}"


def returns_table(rows: list[dict]) -> str:
    """Markdown table of deterministic and stochastic return stats."""
    header = ["method", "env", "step", "seeds", "deterministic mean ± 95% CI", "det. IQM"]
    header += ["stochastic mean ± 95% CI", "stoch. IQM"]
    body = []
    for r in rows:
        det, det_iqm = _fmt_stat(r["deterministic"])
        sto, sto_iqm = _fmt_stat(r["stochastic"])
        body.append([r["method"], r["env_id"], f"{r['step']:,}", len(r["seeds"]), det, det_iqm, sto, sto_iqm])
    return markdown_table(header, body)


def reference_table(rows: list[dict]) -> str:
    """Markdown table: our SAC beside the published SAC returns."""
    header = ["env", "ours (method, step)", *REFERENCE_SAC]
    body = []
    for r in rows:
        ours, _ = _fmt_stat(r["ours"])
        cells = ["—" if v is None else str(v) for v in r["published"].values()]
        body.append([r["env_id"], f"{ours} ({r['method']}, {r['step']:,})", *cells])
    return markdown_table(header, body)


def ledger_table(out_dir: Path, trials: set[str] | None = None) -> str:
    """Markdown table per trial: its latest outcome (:func:`s2ac.sweep.latest_outcome`), env steps,
    wall time summed over every session that trained it, and the device of its last start."""
    body = []
    for trial, rows in sorted(ledger_events(out_dir).items()):
        if trials is not None and trial not in trials:
            continue
        last = latest_outcome(rows)
        wall = sum(r.get("wall_s") or 0.0 for r in rows if r["status"] in OUTCOMES)
        starts = [r for r in rows if r["status"] == "started"]
        device = starts[-1].get("device", "") if starts else ""
        if starts and starts[-1].get("lockstep"):
            device += f" (lockstep group of {len(starts[-1]['lockstep'])})"
        error = (last.get("error") or "").replace("|", "/")[:120]
        body.append([trial, last["status"], last.get("env_steps", ""), f"{wall:.0f}", len(starts), device, error])
    return markdown_table(["trial", "status", "env steps", "wall s", "sessions", "device", "error"], body)


def driver_machine(cluster: dict | None) -> dict[str, Any]:
    """This machine (the driver, via :func:`s2ac.machine.machine_info`) and, when Ray ran, the cluster's resources."""
    info = machine_info(terse_platform=False)
    return {
        "cpu": info["cpu_model"],
        "cpu_count": info["cpu_count"],
        "platform": info["platform"],
        "ray_cluster": cluster,
        "jax_devices": info["jax_devices"],
    }


def mujoco_command(
    out_dir: Path, envs, algos, steps, seeds, presets, address, cpus_per_trial, lockstep=False, report_only=False
) -> str:
    """The command line that reruns (or continues) this benchmark."""
    parts = ["s2ac reproduce mujoco", f"--out {out_dir}", "--envs " + " ".join(envs), "--algos " + " ".join(algos)]
    parts += [f"--steps {steps}", "--seeds " + " ".join(str(s) for s in seeds), "--presets " + " ".join(presets)]
    if address is not None:
        parts.append(f"--address {address}")
    if cpus_per_trial != 1:
        parts.append(f"--cpus-per-trial {cpus_per_trial}")
    if lockstep:
        parts.append("--lockstep")
    if report_only:
        parts.append("--report-only")
    return " ".join(parts)


def run_mode_sentence(summary: dict[str, Any]) -> str:
    """How this invocation ran its trials (the trials table says where each one ran)."""
    if summary.get("report_only"):
        return "This invocation trained nothing: it tabulated the runs in the folder (device per trial below)."
    if summary.get("lockstep"):
        return "This invocation ran its trials in lockstep groups (one vmapped update per algorithm and env shape)."
    return f"This invocation ran its trials on Ray, {summary['cpus_per_trial']} CPU(s) and XLA thread(s) each."


def report_markdown(summary: dict[str, Any], out_dir: Path) -> str:
    """The whole ``report.md``."""
    m = summary["machine"]
    lines = [
        "# MuJoCo benchmark",
        "",
        f"Command: `{summary['command']}`",
        "",
        f"Budget: {summary['steps']:,} env steps per run; seeds {summary['seeds']}; evaluation every "
        f"{summary['eval_freq']:,} steps over {summary['eval_episodes']} episodes, deterministic (`max`) "
        "and stochastic (`random`) policy. " + run_mode_sentence(summary),
        "",
        f"Machine that wrote this report: `{m['cpu']}`, {m['cpu_count']} cores, {m['platform']}; "
        f"Ray cluster resources: {m['ray_cluster'] or 'Ray not started'}; "
        f"JAX devices: {', '.join(m.get('jax_devices', []))}.",
        "",
        "Statistics over seeds: mean ± half-width of the 95% Student-t interval (n/a for one seed) and "
        "IQM, the interquartile mean computed as `scipy.stats.trim_mean(x, 0.25)`.",
        "",
        "## Final returns",
        "",
        "At the last evaluation every seed of a row reached (its `step`).",
        "",
        returns_table(summary["final_table"]),
        "",
    ]
    for name, rows in summary["milestone_tables"].items():
        lines += [f"## Returns at {name}", "", returns_table(rows), ""]
    lines += [
        "## Our SAC beside published SAC",
        "",
        "Published numbers are near 1M steps under other protocols and env versions (v3/v4, ours v5); "
        "they place our numbers, they are not a like-for-like comparison. Ours: final deterministic "
        "return at the step shown.",
        "",
        reference_table(summary["reference_table"]),
        "",
    ]
    lines += [f"- {src}: {ref['protocol']} ({ref['source']})" for src, ref in REFERENCE_SAC.items()]
    lines += ["- Tianshou SAC, Ant-v4 at 100k / 300k / 500k: 286 / 3307 / 4951", ""]
    lines += [
        "## Trials (latest outcome in the ledger)",
        "",
        ledger_table(out_dir, {t["trial"] for t in summary["trials"]}),
        "",
    ]
    lines += ["![learning curves](learning_curves.png)", ""]
    return "\n".join(lines)


def plot_learning_curves(path: Path, runs: list[dict]) -> None:
    """One panel per env: mean deterministic evaluation return over seeds, min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(dict.fromkeys(r["env_id"] for r in runs)) or ["(no runs)"]
    fig, axes = plt.subplots(1, len(envs), figsize=(4.5 * len(envs), 3.6), squeeze=False)
    for ax, env_id in zip(axes[0], envs):
        for (method, env), group in group_runs(runs).items():
            if env != env_id:
                continue
            steps, mean, low, high = _curve(group)
            if steps.size:
                ax.plot(steps, mean, label=method, marker="o" if steps.size < 5 else None)
                ax.fill_between(steps, low, high, alpha=0.2)
        ax.set(title=env_id, xlabel="env steps", ylabel="deterministic eval return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _curve(group: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps every seed evaluated at, and the mean / min / max over seeds."""
    per_seed = [{r["step"]: r.get(DETERMINISTIC) for r in run["evals"]} for run in group if run["evals"]]
    if not per_seed:
        return (np.zeros(0),) * 4
    steps = sorted(set.intersection(*(set(s) for s in per_seed)))
    values = np.array([[s[t] for t in steps] for s in per_seed], dtype=float)
    return np.asarray(steps), values.mean(0), values.min(0), values.max(0)


# -- entry point ---------------------------------------------------------------------------


def eval_schedule(steps: int) -> int:
    """Evaluation interval: every 10k steps, or twice per run for runs shorter than that."""
    return EVAL_FREQ if steps >= EVAL_FREQ else max(1, steps // 2)


def ledger_sweep(cfg: SweepConfig) -> dict[str, Any]:
    """What :func:`s2ac.sweep.run_sweep` would return, read from the ledger in ``cfg.out`` (nothing trained)."""
    events = ledger_events(cfg.out)
    rows = [
        {
            "trial": t.trial_id,
            "status": latest_outcome(events[t.trial_id])["status"] if t.trial_id in events else "missing",
        }
        for t in trial_specs(cfg)
    ]
    return {"trials": rows, "counts": status_counts(rows), "cluster": None}


def write_outputs(out_dir: Path, summary: dict[str, Any], runs: list[dict]) -> None:
    """``learning_curves.png``, ``report.md`` and ``summary.json`` into ``out_dir``."""
    plot_learning_curves(out_dir / "learning_curves.png", runs)
    (out_dir / "report.md").write_text(report_markdown(summary, out_dir))
    (out_dir / "summary.json").write_text(json.dumps(json_safe(summary), indent=2))


def run_mujoco(
    out_dir: str | Path,
    envs: tuple[str, ...] = DEFAULT_ENVS,
    algos: tuple[str, ...] = DEFAULT_ALGOS,
    steps: int = 1_000_000,
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
    presets: tuple[str, ...] = ("corrected",),
    address: str | None = None,
    cpus_per_trial: int = 1,
    lockstep: bool = False,
    stop_after_s: float | None = None,
    report_only: bool = False,
) -> dict[str, Any]:
    """Run (or continue) the benchmark in ``out_dir`` and write its report; return the summary.

    ``report_only``: train nothing; tabulate the runs already in ``out_dir`` (e.g. runs made on
    several machines whose folders were copied together, checkpoints left behind).
    """
    out_dir = Path(out_dir)
    eval_freq = eval_schedule(steps)
    cfg = SweepConfig(
        algos=tuple(algos),
        envs=tuple(envs),
        seeds=tuple(seeds),
        presets=tuple(presets),
        total_steps=steps,
        out=out_dir,
        address=address,
        cpus_per_trial=cpus_per_trial,
        train_overrides=(("eval_freq", eval_freq), ("eval_episodes", EVAL_EPISODES)),
        lockstep=lockstep,
        stop_after_s=stop_after_s,
    )
    sweep = ledger_sweep(cfg) if report_only else run_sweep(cfg)
    wanted = {t["trial"] for t in sweep["trials"]}
    runs = [r for r in summarize_runs(out_dir) if r["trial"] in wanted]  # ignore other runs in the folder
    final_rows = table_rows(runs, None)
    summary = {
        "command": mujoco_command(
            out_dir, envs, algos, steps, seeds, presets, address, cpus_per_trial, lockstep, report_only
        ),
        "steps": steps,
        "seeds": list(seeds),
        "eval_freq": eval_freq,
        "eval_episodes": EVAL_EPISODES,
        "cpus_per_trial": cpus_per_trial,
        "lockstep": lockstep,
        "report_only": report_only,
        "machine": driver_machine(sweep["cluster"]),
        "trials": sweep["trials"],
        "counts": sweep["counts"],
        "final_table": final_rows,
        "milestone_tables": milestone_tables(runs),
        "reference_table": reference_rows(final_rows),
        "reference_sac": REFERENCE_SAC,
        "reference_sac_ant_v4": REFERENCE_SAC_ANT_V4,
    }
    write_outputs(out_dir, summary, runs)
    return summary
