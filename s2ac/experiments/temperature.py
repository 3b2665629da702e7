"""S²AC with a fixed and with a tuned temperature, side by side, with the entropy each one reaches.

The tuned temperature (:class:`s2ac.parts.temperature.Temperature`, SAC v2's rule) moves ``log alpha``
so that the policy's entropy estimate approaches ``target_entropy`` (default ``-|A|``). For S²AC that
estimate is the sampler's log-density, which is checked against k-NN ground truth in
``s2ac reproduce entropy-check`` (docs/maths/entropy.md).

Gymnasium tasks run as lockstep groups (the seeds of one variant vmapped in one process, run folders
under ``out/<variant>/<env>/seed<k>``, checkpoints kept, so that the same command continues a cut-off
run); the multigoal task runs through the multigoal harness (:mod:`s2ac.experiments.multigoal`) at its
default budget, evaluated on its stochastic test episodes. SAC runs beside them as the reference.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from s2ac.experiments.reporting import json_safe, markdown_table
from s2ac.experiments.stats import fmt_ci

VARIANTS: dict[str, tuple[str, dict]] = {
    "sac (tuned alpha)": ("sac", {"auto_alpha": True}),
    "s2ac, fixed alpha": ("s2ac", {"auto_alpha": False}),
    "s2ac, tuned alpha": ("s2ac", {"auto_alpha": True}),
    "s2ac, eps as a schedule": ("s2ac", {"auto_alpha": False, "svgd_step_gradient": False}),
    "s2ac, policy delay 3": ("s2ac", {"auto_alpha": False, "policy_delay": 3}),
    "s2ac, sigma differentiated": ("s2ac", {"auto_alpha": False, "bandwidth_gradient": True}),
    "s2ac-crossq": ("s2ac-crossq", {}),
    "s2ac-crossq, CrossQ's critic width": ("s2ac-crossq", {"critic_hidden": (256, 256)}),
    "s2ac-crossq, beta1 0.9, no delay, warm-up 100k": (
        "s2ac-crossq",
        {"adam_beta1": 0.9, "policy_delay": 1, "renorm_warmup_steps": 100_000},
    ),
}
"""Variant label -> (algorithm, agent config fields over the preset's). ``eps as a schedule`` is the
actor-gradient ablation (the adaptive rule's steps stop-gradiented, docs/maths/entropy.md §4);
``policy delay 3`` steps the q0 network on every third update only; ``sigma differentiated`` takes the
actor's gradient through the bandwidth rule too (``bandwidth_gradient``); the ``s2ac-crossq`` rows put S²AC on
CrossQ's critic: as registered (CrossQ's Adam beta1 0.5 and policy delay 3, the preset's width), with
CrossQ's own critic width (2 x 256 under quick), and with the entry's earlier settings (Adam's default
beta1, no delay, CrossQ's paper warm-up of 100k, so no renormalisation within a quick run)."""
DEFAULT_VARIANTS: tuple[str, ...] = ("sac (tuned alpha)", "s2ac, fixed alpha", "s2ac, tuned alpha")
"""The temperature comparison (the command's default)."""
GYM_STEPS: dict[str, int] = {"Pendulum-v1": 5_000, "InvertedDoublePendulum-v5": 10_000}
"""Env steps per Gymnasium task (sized for 2 CPU cores: S²AC runs ~20 lockstep steps/s there)."""
MULTIGOAL_ENV = "s2ac/MultiGoal3-v0"
DEFAULT_ENVS: tuple[str, ...] = (*GYM_STEPS, MULTIGOAL_ENV)
EVAL_EPISODES = 10
ENTROPY_WINDOW = 5
"""Last logged rows averaged for the entropy and temperature reached."""


def _slug(label: str) -> str:
    """The variant's folder name: letters, digits and dashes (``s2ac, fixed alpha`` -> ``s2ac-fixedalpha``)."""
    return re.sub(r"[^A-Za-z0-9-]", "", label.replace(",", "-"))


def _run_dir(out: Path, label: str, env_id: str, seed: int) -> Path:
    return out / _slug(label) / env_id.replace("/", "_") / f"seed{seed}"


def train_gym(out: Path, label: str, env_id: str, steps: int, seeds: tuple[int, ...], preset: str, progress: bool):
    """One lockstep group: every seed of one variant on one task (continues from checkpoints)."""
    from s2ac.agents import algo_train_fields, make_agent_config
    from s2ac.config import make_train_config
    from s2ac.loop import TrainingLoop
    from s2ac.sweep import checkpoint_steps

    algo, fields = VARIANTS[label]
    config = dataclasses.replace(make_agent_config(algo, preset, env_id), **fields)
    config.validate()
    base = {**algo_train_fields(algo, preset, env_id), "total_steps": steps, "eval_episodes": EVAL_EPISODES}
    base["eval_freq"] = max(steps // 5, 1)
    trains = [make_train_config(preset, env_id, seed=seed, **base) for seed in seeds]
    dirs = [_run_dir(out, label, env_id, seed) for seed in seeds]
    done = [checkpoint_steps(d) for d in dirs]
    if all(d is not None and d >= steps for d in done):
        return
    resume = all(d is not None for d in done)
    TrainingLoop(algo, config, trains, dirs, resume=resume, progress=progress, tensorboard=False).run()


def gym_row(out: Path, label: str, env_id: str, seeds: tuple[int, ...]) -> dict[str, Any]:
    """Final deterministic and stochastic returns, and the entropy / alpha of the last logged rows."""
    from s2ac.logger import read_metrics

    finals, stoch, entropy, alpha = [], [], [], []
    for seed in seeds:
        rows = list(read_metrics(_run_dir(out, label, env_id, seed)))
        evals = [r for r in rows if "eval/mean_reward" in r]
        trains = [r for r in rows if "train/entropy" in r][-ENTROPY_WINDOW:]
        finals.append(evals[-1]["eval/mean_reward"])
        stoch.append(evals[-1].get("eval/stochastic_mean_reward", np.nan))
        entropy.append(np.mean([r["train/entropy"] for r in trains]))
        alpha.append(np.mean([r["train/alpha"] for r in trains]))
    return {
        "env": env_id,
        "variant": label,
        "return": finals,
        "stochastic_return": stoch,
        "entropy": entropy,
        "alpha": alpha,
    }


LEGACY_MULTIGOAL_BUDGET = {"total_steps": 10_000, "random_steps": 2_000, "gradient_steps": 10, "eval_episodes": 50}
"""The multigoal harness's default budget when summaries did not record it (before 15k env steps)."""


def multigoal_budget_fields() -> dict[str, int]:
    """The multigoal harness's default schedule and test size, as a summary records them."""
    from s2ac.experiments.multigoal.config import MultigoalBudget

    budget = MultigoalBudget()
    return {name: getattr(budget, name) for name in LEGACY_MULTIGOAL_BUDGET}


def multigoal_row(label: str, seeds: tuple[int, ...], progress: bool) -> dict[str, Any]:
    """The multigoal harness's default budget; goal coverage of its stochastic test episodes per seed."""
    import jax

    from s2ac.envs import jax_env_for
    from s2ac.evaluate import COVERAGE_SHARE
    from s2ac.experiments.multigoal import run as mg
    from s2ac.experiments.multigoal.config import MultigoalBudget

    algo, fields = VARIANTS[label]
    budget = MultigoalBudget(agent_fields=tuple(fields.items()))
    run = mg.train_algo(algo, MULTIGOAL_ENV, budget, list(seeds), progress=progress)
    metrics, _ = mg.evaluate_run(run, budget, jax.random.PRNGKey(0))
    stochastic = metrics["plain"]["random"]
    shares = np.asarray(stochastic["goal_fractions"])
    entropy, _ = mg.probe_entropies(run, jax_env_for(MULTIGOAL_ENV), jax.random.PRNGKey(1), budget.entropy_draws)
    history = run.history
    return {
        "env": MULTIGOAL_ENV,
        "variant": label,
        "return": list(np.asarray(stochastic["mean_return"], float)),
        "success": list(np.asarray(stochastic["success_rate"], float)),
        "seeds_covering": int(np.sum(np.all(shares >= COVERAGE_SHARE, axis=1))),
        "entropy": list(np.asarray(entropy["knn"]).mean(axis=1)),
        "entropy_own": list(np.asarray(entropy.get("closed_form", entropy.get("log_prob"))).mean(axis=1)),
        "alpha": list(np.asarray(history["train/alpha"], float)[-1]) if "train/alpha" in history else [],
        "train_s": run.wall_s,
    }


def report_markdown(summary: dict) -> str:
    mg_budget = summary.get("multigoal_budget", LEGACY_MULTIGOAL_BUDGET)
    rows = []
    for r in summary["rows"]:
        alpha = f"{np.mean(r['alpha']):.3g}" if r["alpha"] else "—"
        extra = (
            f"{r['seeds_covering']}/{len(r['return'])} cover, success {np.mean(r['success']):.2f}"
            if "success" in r
            else ""
        )
        rows.append([r["env"], r["variant"], fmt_ci(r["return"], 1), fmt_ci(r["entropy"]), alpha, extra])
    table = markdown_table(["env", "variant", "return", "entropy reached", "alpha reached", "multigoal"], rows)
    return "\n".join(
        [
            "# S²AC variants side by side (default: fixed against tuned temperature)",
            "",
            f"- Command: `{summary['command']}`",
            f"- Seeds: {summary['seeds']}; preset `{summary['preset']}`; Gymnasium steps: {summary['gym_steps']};"
            f" multigoal: the harness's default budget ({mg_budget['total_steps']:,} env steps,"
            f" {mg_budget['random_steps']:,} of them random, {mg_budget['gradient_steps']} updates every 50).",
            "- Return: the last deterministic evaluation (Gymnasium tasks, "
            f"{EVAL_EPISODES} episodes) or the mean return of {mg_budget['eval_episodes']} stochastic episodes"
            " (multigoal);"
            " mean ± 95% t-interval over seeds.",
            f"- Entropy reached: Gymnasium tasks, the logged policy entropy (the sampler's own density for S²AC,"
            f" the exact log-density for SAC), mean of the last {ENTROPY_WINDOW} logged rows; multigoal,"
            " k-NN of 200 stochastic actions at each probe state. The tuned variants aim at -|A|.",
            f"- Wall time of the invocation that wrote this report: {summary['wall_s']:.0f} s (runs it continued from"
            " their checkpoints were trained, and timed, before).",
            "",
            table,
            "",
        ]
    )


def run_temperature(
    out_dir: str | Path,
    envs: tuple[str, ...] = (),
    seeds: tuple[int, ...] = (0, 1, 2),
    preset: str = "quick",
    steps: int | None = None,
    progress: bool = True,
    variants: tuple[str, ...] = (),
) -> dict:
    """Train every variant on every env (continuing from checkpoints) and write the report. Empty
    ``envs``: :data:`GYM_STEPS`' tasks and multigoal; empty ``variants``: :data:`DEFAULT_VARIANTS`."""
    envs, variants = tuple(envs) or DEFAULT_ENVS, tuple(variants) or DEFAULT_VARIANTS
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; expected some of {list(VARIANTS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = []
    for env_id in envs:
        for label in variants:
            if env_id == MULTIGOAL_ENV:
                rows.append(multigoal_row(label, seeds, progress))
                continue
            n = steps or GYM_STEPS.get(env_id, 10_000)
            train_gym(out, label, env_id, n, seeds, preset, progress)
            rows.append(gym_row(out, label, env_id, seeds))
    command = f"s2ac reproduce temperature --out {out} --envs {' '.join(envs)} --seeds {' '.join(map(str, seeds))}"
    if variants != DEFAULT_VARIANTS:
        command += " --variants " + " ".join(f"'{v}'" for v in variants)
    summary = {
        "command": command + (f" --steps {steps}" if steps else ""),
        "seeds": list(seeds),
        "preset": preset,
        "gym_steps": {e: steps or GYM_STEPS.get(e, 10_000) for e in envs if e != MULTIGOAL_ENV},
        "multigoal_budget": multigoal_budget_fields(),
        "rows": rows,
        "wall_s": time.perf_counter() - start,
    }
    (out / "summary.json").write_text(json.dumps(json_safe(summary), indent=1))
    (out / "report.md").write_text(report_markdown(summary))
    return summary


__all__ = ["VARIANTS", "run_temperature"]
