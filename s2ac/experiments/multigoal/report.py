"""Markdown report of the multigoal reproduction (``report.md``): headline, training, per-env coverage and
entropy tables, the invertibility margins, and the notes. Every number is a mean ± 95% t-interval over seeds
(:func:`s2ac.experiments.stats.fmt_ci`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from s2ac.evaluate import COVERAGE_SHARE
from s2ac.experiments.multigoal.config import (
    CLI_BASE,
    DEFAULT_ALGOS,
    DEFAULT_ENVS,
    FULL_ENVS,
    KNN_K,
    MODES,
    VARIANTS,
    MultigoalBudget,
)
from s2ac.experiments.reporting import markdown_table
from s2ac.experiments.stats import fmt_ci, outcome_distance, reference_cells


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
    "closed_form": "mean-field closed form (poster)",
    "exact": "per-particle Jacobian (a conditional density, not ground truth)",
    "log_prob": "exact log-density",
    "lower_bound": "entropy lower bound (diffusion path)",
    "knn": f"k-NN of samples (k={KNN_K})",
}


def entropy_table(env: dict, probes: list[tuple[float, float]], reference: dict | None = None) -> str:
    """Markdown: rows (method, estimator), columns probe states; mean +- CI over seeds; first the
    soft-optimal policy's exact entropy where ``reference`` is given.

    S²AC density estimates come with the largest invertibility margin of the SVGD steps that produced
    them (a row of its own); a cell whose margin reached 1 in any seed is marked INVALID.
    """
    header = ["method", "estimator"] + [f"({x:g}, {y:g})" for x, y in probes]
    rows = []
    if reference is not None:
        rows.append(["soft-optimal π*", "exact (grid)"] + [f"{h:.2f}" for h in reference["probe_entropy"]])
    for algo, res in env.items():
        ent = res["entropy"]
        margin = _arr(ent["margin"]) if "margin" in ent else None
        for name in ("closed_form", "exact", "log_prob", "lower_bound", "knn"):
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


def reference_row(env_id: str, reference: dict) -> list[str]:
    """The soft-optimal policy's row of the headline table (its numbers have no seeds)."""
    c = reference_cells(reference, COVERAGE_SHARE)
    return [env_id.removeprefix("s2ac/"), "soft-optimal π* (reference)", c["shares"], "0", "—", c["covered"],
            c["success"], "—", c["entropy"], "—", "—", "—", "—"]  # fmt: skip


def headline_table(results: dict, envs: dict | None = None) -> str:
    """Markdown: one row per (env, method) with the numbers the paper's multigoal claims rest on, and the
    soft-optimal reference's row where ``envs[env_id]`` holds one (:mod:`.soft_optimal`)."""
    header = [
        "env",
        "method",
        "goal shares (stochastic)",
        "distance to π*'s outcomes (TV)",
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
        reference = (envs or {}).get(env_id, {}).get("soft_optimal")
        if reference is not None:
            rows.append(reference_row(env_id, reference))
        for algo, res in env.items():
            plain, wall = res["eval"]["plain"]["random"], res["eval"]["obstacle"]["random"]
            fr = _arr(plain["goal_fractions"])
            distance = "—" if reference is None else fmt_ci(outcome_distance(fr, reference["goal_shares"]))
            ent = res["entropy"]
            own = ent.get("closed_form", ent.get("log_prob", ent.get("lower_bound")))
            worst = _worst_margin(res["invertibility_margin"])
            tag = " INVALID" if worst is not None and worst >= 1 else ""
            rows.append(
                [
                    env_id.removeprefix("s2ac/"),
                    algo,
                    " / ".join(f"{np.nanmean(fr[:, g]):.2f}" for g in range(fr.shape[1])),
                    distance,
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


def _header(summary: dict) -> list[str]:
    """Command, budget, seeds, hardware, wall time and methods."""
    b = summary["budget"]
    timing = summary["timing_s"]
    reference_s = f", soft-optimal reference {timing['reference']:.0f} s" if "reference" in timing else ""
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
        f"- Wall time: {timing['total']:.0f} s in all (training {timing['train']:.0f} s, evaluation "
        f"{timing['eval']:.0f} s, figures {timing['figures']:.0f} s{reference_s}).",
        f"- Methods: {', '.join(summary['algos'])}.",
    ]
    if summary["skipped_algos"]:
        out.append(
            "- Skipped (not known to `make_agent_config`): "
            + "; ".join(f"`{a}` ({why})" for a, why in summary["skipped_algos"].items())
        )
    return out


def _overview(summary: dict) -> list[str]:
    """How to read the numbers, the headline and the training tables."""
    return [
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
        "own density = S²AC closed form / SAC, SAC-NF exact log-density / DIME entropy lower bound. "
        "Margin: last chunk (see the end).",
        "",
        headline_table(summary["results"], summary["envs"]),
        "",
        "## Training",
        "",
        training_table(summary["results"]),
        "",
        "![learning curves](learning_curves.png)",
        "",
    ]


def _env_section(env_id: str, env: dict, info: dict) -> list[str]:
    """One env: coverage tables per (variant, mode), the per-state entropy table and the figures."""
    slug = info["slug"]
    goals = info["goals"]
    out = [f"## {env_id}", "", "Goals: " + ", ".join(f"G{i + 1} = {tuple(g)}" for i, g in enumerate(goals)), ""]
    reference = info.get("soft_optimal")
    if reference is not None:
        out += [
            "Soft-optimal reference π*: soft value iteration on a grid of spacing "
            f"{reference['spacing']:g} (positions and actions; {reference['iterations']} backups, last change "
            f"{reference['residual']:.1e}) at the methods' reward scale {reference['reward_scale']:g}, "
            f"α {reference['alpha']:g} and γ {reference['gamma']:g}, then {reference['episodes']:,} test episodes "
            "(`s2ac.experiments.multigoal.soft_optimal`). It is what maximum-entropy training converges to; the "
            "TV column of the headline is each seed's distance to its outcome distribution.",
            "",
        ]
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
        entropy_table(env, info["probe_states"], info.get("soft_optimal")),
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
    return out


def _margin_section(summary: dict) -> list[str]:
    """The invertibility margins of the SVGD steps, and the notes."""
    out = [
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
    return out


def report_markdown(summary: dict) -> str:
    """The human-readable report of :func:`s2ac.experiments.multigoal.run_multigoal`."""
    out = _header(summary) + _overview(summary)
    for env_id, env in summary["results"].items():
        out += _env_section(env_id, env, summary["envs"][env_id])
    out += _margin_section(summary)
    return "\n".join(out) + "\n"


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
    ratio = (
        "the authors' one update per env step"
        if budget.gradient_steps == budget.train_freq
        else "instead of the authors' one per step"
    )
    return (
        f"Default schedule: {budget.gradient_steps} updates every {budget.train_freq} env steps ({ratio}) on "
        f"{budget.total_steps:,} env steps, with small networks (2 x 32, batch 50) so that 5 methods x 5 seeds on "
        "the 3-goal env run on 2 CPU cores. All methods get the same env steps and "
        "updates; none is converged, so these numbers compare methods at equal small budgets, not the paper's "
        f"final policies. The first {budget.random_steps:,} steps are uniform random for every method (the "
        "authors: 10,000), so that each goal is reached a few times before the policies' own data takes over. "
        "`--full` runs 100k steps."
    )
