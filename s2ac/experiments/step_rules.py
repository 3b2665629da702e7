"""Step-rule study: invertibility, transport and density error of SVGD step rules on steep energies.

The closed-form density holds only while every step ``a -> a + eps phi(a)`` is invertible
(REFERENCE.md §6). This study runs each rule of :data:`RULES` on energies where the authors'
fixed ``eps = 0.1`` folds the map, from the same initial particles (``m = 10``, ``d = 2``,
temperature 1), and reports per rule:

* ``margin``: the largest margin of :func:`s2ac.stein.controlled_step` (mean-field blocks plus the
  self term's secant; a local diagnostic) over steps and seeds;
* ``folded``: the largest fraction of particles whose own block had ``det(I + eps J_i) <= 0``;
* ``step gap``: the largest per-step, per-particle gap between the per-particle Jacobian's first
  order and its log-det (the first-order error of the per-particle accounting);
* ``total gap``: the same gap accumulated over all steps (what an entropy estimate inherits);
* ``E(a^L)``: the mean energy of the final particles, against the target's mean energy
  (``transport``: how close the particles got to the target in ``L`` steps).

``s2ac reproduce step-rules`` prints the table and writes ``report.md`` and ``results.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from s2ac import stein
from s2ac.experiments.reporting import markdown_table

M, D, SEEDS = 10, 2, 5
CENTRE = (0.8, -0.5)


class Rule(NamedTuple):
    """One step rule: control, step size (the bound under ``adaptive``), steps, target margin."""

    control: str
    step_size: float
    steps: int
    target_margin: float = stein.DEFAULT_TARGET_MARGIN


RULES: tuple[Rule, ...] = (
    Rule("fixed", 0.1, 10),
    Rule("fixed", 0.01, 10),
    Rule("adaptive", 0.1, 10, 0.5),
    Rule("adaptive", 0.1, 10, 0.3),
    Rule("adaptive", 0.1, 10, 0.2),
    Rule("adaptive", 0.1, 20, 0.2),
    Rule("adaptive", 1.0, 10, 0.5),
)
"""The authors' step, a hand-tuned small step, and the adaptive rule at several targets and budgets."""


def energies() -> dict[str, tuple[object, float]]:
    """``name -> (energy, mean energy of its target exp(E))`` for the study's steep energies."""
    c = jnp.asarray(CENTRE)
    return {
        # Curvature 60, as the multigoal action cost -30 ||a||^2: target N(c, I/60), E[E] = -d/2.
        "quadratic (curvature 60)": (lambda a: -30.0 * jnp.sum((a - c) ** 2), -D / 2),
        # Two such modes at +-c (E[E] close to the single mode's, up to log 2).
        "two modes (curvature 60)": (
            lambda a: jax.nn.logsumexp(jnp.stack([-30 * jnp.sum((a - c) ** 2), -30 * jnp.sum((a + c) ** 2)])),
            -D / 2,
        ),
        # Peaks on a lattice of spacing 0.5, particles started next to them (peak level 10).
        "periodic (peaks at the particles)": (lambda a: 5.0 * jnp.sum(jnp.cos(2 * jnp.pi * a / 0.5)), float("nan")),
    }


def initial_particles(name: str, seed: int) -> jax.Array:
    a0 = 0.5 * jax.random.normal(jax.random.PRNGKey(seed), (M, D))
    if name.startswith("periodic"):
        a0 = 0.5 * jnp.round(a0 / 0.5) + 0.02 * a0
    return a0


def run_rule(energy, name: str, rule: Rule) -> dict[str, float]:
    """The rule's statistics over :data:`SEEDS` initial particle sets (see the module docstring)."""
    score = jax.vmap(jax.grad(energy))
    kw = dict(
        steps=rule.steps,
        step_size=rule.step_size,
        alpha=1.0,
        step_control=rule.control,
        target_margin=rule.target_margin,
        trajectory=True,
    )
    stats = {"margin": [], "folded": [], "step_gap": [], "total_gap": [], "final_energy": []}
    for seed in range(SEEDS):
        a0 = initial_particles(name, seed)
        closed = stein.svgd_sample(score, a0, jnp.zeros(M), log_density="per_particle_trace", **kw)
        exact = stein.svgd_sample(score, a0, jnp.zeros(M), log_density="per_particle", **kw)
        gap = jnp.abs(closed.log_q_trajectory - exact.log_q_trajectory)
        stats["margin"].append(float(jnp.max(exact.invertibility_margin)))
        stats["folded"].append(float(jnp.max(exact.folded)))
        stats["step_gap"].append(
            float(jnp.max(jnp.abs(jnp.diff(closed.log_q_trajectory - exact.log_q_trajectory, axis=0))))
        )
        stats["total_gap"].append(float(jnp.max(gap[-1])))
        stats["final_energy"].append(float(jnp.mean(jax.vmap(energy)(exact.particles))))
    out = {k: float(np.max(v)) for k, v in stats.items() if k != "final_energy"}
    out["final_energy"] = float(np.mean(stats["final_energy"]))
    return out


def run_step_rules(out_dir: str | Path) -> dict:
    """Run every rule on every energy in float64; write ``results.json`` and ``report.md``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    with jax.enable_x64(True):
        for name, (energy, target_energy) in energies().items():
            for rule in RULES:
                results.append({"energy": name, "target_energy": target_energy, **rule._asdict(),
                                **run_rule(energy, name, rule)})  # fmt: skip
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "report.md").write_text(report_markdown(results))
    return {"results": results}


def report_markdown(results: list[dict]) -> str:
    header = ["energy", "rule", "eps (bound)", "L", "target margin", "margin (max)", "folded", "step gap",
              "total gap", "E(a^L)", "target E"]  # fmt: skip
    rows = []
    for r in results:
        adaptive = r["control"] == "adaptive"
        rows.append(
            [
                r["energy"],
                r["control"],
                f"{r['step_size']:g}",
                str(r["steps"]),
                f"{r['target_margin']:g}" if adaptive else "—",
                f"{r['margin']:.2f}" + (" INVALID" if r["margin"] >= 1 else ""),
                f"{r['folded']:.2f}",
                f"{r['step_gap']:.3g}",
                f"{r['total_gap']:.3g}",
                f"{r['final_energy']:.2f}",
                "peak 10" if np.isnan(r["target_energy"]) else f"{r['target_energy']:.2f}",
            ]
        )
    return "\n".join(
        [
            "# SVGD step rules on steep energies",
            "",
            "- Command: `s2ac reproduce step-rules`",
            f"- m = {M} particles in d = {D}, temperature 1, {SEEDS} initial particle sets per cell (max over them;",
            "  E(a^L): mean). Gaps in nats, per particle: per-particle Jacobian, first order vs log-det.",
            "",
            markdown_table(header, rows),
            "",
        ]
    )


__all__ = ["RULES", "Rule", "run_rule", "run_step_rules"]
