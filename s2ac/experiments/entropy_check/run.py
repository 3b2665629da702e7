"""The entropy-check harness (see the package docstring; docs/maths/entropy.md)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from s2ac import stein
from s2ac.agents.s2ac import S2ACConfig
from s2ac.experiments.estimators import knn_entropy

M, STEP_CAP, K_NN = 10, 0.1, 3
"""The presets' sampler settings (``n_particles``, ``svgd_step_size``) and the k of the k-NN estimate."""
PROBED = S2ACConfig.self_term_probes
"""Particles probed per set in the probe mode: the agents' default."""
PRESET_STEPS = {"mujoco presets (L = 3)": 3, "multigoal presets (L = 10)": 10}


class Trajectory(NamedTuple):
    """One sampler run over ``N`` independent sets: particles ``(N, L + 1, m, d)``, ``log q0`` ``(N, m)``,
    steps ``(N, L)``, and the energy's score (row-wise) and temperature."""

    particles: jax.Array
    log_q0: jax.Array
    steps: jax.Array
    score: Callable
    alpha: float


def three_mode_energy(d: int, radius: float = 2.0, std: float = 0.4) -> Callable:
    """``log p`` of an equal mixture of three ``N(c_k, std^2 I)`` in ``d`` dimensions, centres at
    ``radius (cos t_k, sin t_k, 0, ...)``, ``t_k = 90, 210, 330`` degrees (first coordinate only for d = 1)."""
    angles = np.deg2rad([90.0, 210.0, 330.0])
    centres = np.zeros((3, d))
    centres[:, 0] = radius * np.cos(angles)
    if d > 1:
        centres[:, 1] = radius * np.sin(angles)
    centres = jnp.asarray(centres)

    def energy(a):
        sq = jnp.sum((a - centres) ** 2, axis=-1)
        return jax.nn.logsumexp(-sq / (2 * std**2)) - math.log(3.0) - 0.5 * d * math.log(2 * math.pi * std**2)

    return energy


def run_sampler(
    d: int, n_sets: int, steps: int, target_margin: float | None, seed: int = 0, step_control: str = "adaptive"
) -> Trajectory:
    """``n_sets`` independent SVGD runs from ``q0 = N(0, I)`` on :func:`three_mode_energy` (alpha = 1,
    'mean/2' bandwidth, m = :data:`M`, cap :data:`STEP_CAP`; ``target_margin=None``: the fixed step,
    else the adaptive rule ``step_control``)."""
    energy = three_mode_energy(d)
    score = jax.vmap(jax.vmap(jax.grad(energy)))
    a0 = jax.random.normal(jax.random.PRNGKey(seed), (n_sets, M, d))
    log_q0 = -0.5 * jnp.sum(a0**2, -1) - 0.5 * d * math.log(2 * math.pi)
    kw = dict(steps=steps, step_size=STEP_CAP, alpha=1.0, log_density="none", trajectory=True)
    if target_margin is not None:
        kw.update(step_control=step_control, target_margin=target_margin)
    res = jax.jit(lambda a, lq: stein.svgd_sample_batched(score, a, lq, **kw))(a0, log_q0)
    return Trajectory(res.trajectory, log_q0, res.step_size, lambda x: jax.vmap(jax.grad(energy))(x), 1.0)


def _per_step(traj: Trajectory, delta_fn: Callable) -> jax.Array:
    """``log q^l`` ``(N, L + 1, m)`` from a per-step change ``delta_fn(a, scores, sigma, eps) -> (m,)``."""

    def one_set(particles, eps):
        def step(a, e):
            sigma = stein.bandwidth_from_rule(a, "mean/2")
            return delta_fn(a, traj.score(a), sigma, e)

        return jax.vmap(step)(particles[:-1], eps)

    deltas = jax.jit(jax.vmap(one_set))(traj.particles, traj.steps)  # (N, L, m)
    return jnp.concatenate([traj.log_q0[:, None], traj.log_q0[:, None] + jnp.cumsum(deltas, axis=1)], axis=1)


def mean_field(traj: Trajectory) -> jax.Array:
    """The poster's closed form (:func:`s2ac.stein.closed_form_log_q_change`, ``N = m``)."""
    return _per_step(traj, lambda a, s, sig, e: stein.closed_form_log_q_change(a, s, sig, traj.alpha, e, M))


def mean_field_logdet(traj: Trajectory) -> jax.Array:
    """``-log|det(I + eps J_i)|`` of the mean-field block (no first-order error)."""
    eye = jnp.eye(traj.particles.shape[-1])

    def delta(a, s, sig, e):
        return -jnp.linalg.slogdet(eye + e * stein.interaction_jacobian(a, s, sig, traj.alpha))[1]

    return _per_step(traj, delta)


def per_particle(traj: Trajectory) -> jax.Array:
    """``-log|det(I + eps (J_i + grad^2 E(a_i) / m))|``: one particle's own block, self term included."""
    eye = jnp.eye(traj.particles.shape[-1])

    def delta(a, s, sig, e):
        j_full = stein.interaction_jacobian(a, s, sig, traj.alpha) + stein.self_term_jacobians(traj.score, a)
        return -jnp.linalg.slogdet(eye + e * j_full)[1]

    return _per_step(traj, delta)


def per_particle_trace(traj: Trajectory) -> jax.Array:
    """First order of :func:`per_particle`: the closed form minus ``eps tr grad^2 E(a_i) / m``."""

    def delta(a, s, sig, e):
        self_trace = jnp.trace(stein.self_term_jacobians(traj.score, a), axis1=-2, axis2=-1)
        return stein.closed_form_log_q_change(a, s, sig, traj.alpha, e, M) - e * self_trace

    return _per_step(traj, delta)


def per_particle_trace_probe(traj: Trajectory, seed: int = 7, probed: int = PROBED) -> jax.Array:
    """The library's sampler in ``per_particle_trace_probe`` mode (one Rademacher probe at each of
    ``probed`` particles per set and step, the agents' default), replayed from the same initial
    particles with the same steps: the end-to-end estimate the agents compute, with its noise."""
    n_sets, steps = traj.steps.shape

    def one_set(a0, log_q0, eps, key):
        res = stein.svgd_sample(
            traj.score, a0, log_q0, steps=steps, step_size=eps, alpha=traj.alpha,
            log_density="per_particle_trace_probe", key=key, probed=probed, trajectory=True, diagnostics=False,
        )  # fmt: skip
        return res.log_q_trajectory

    keys = jax.random.split(jax.random.PRNGKey(seed), n_sets)
    return jax.jit(jax.vmap(one_set))(traj.particles[:, 0], traj.log_q0, traj.steps, keys)


ESTIMATORS: dict[str, Callable[[Trajectory], jax.Array]] = {
    "mean_field": mean_field,
    "mean_field_logdet": mean_field_logdet,
    "per_particle": per_particle,
    "per_particle_trace": per_particle_trace,
    "per_particle_trace_probe": per_particle_trace_probe,
}
"""Density kinds under test: trajectory -> ``log q^l`` of every particle ``(N, L + 1, m)``. A new kind
(a flow's log-det, a diffusion lower bound) is one more entry."""


def knn_truth(particles: jax.Array) -> float:
    """k-NN entropy of particle 0 of every set (``particles``: ``(N, m, d)``; sets are exchangeable)."""
    return float(knn_entropy(particles[:, 0], K_NN))


def check_cell(
    d: int,
    n_sets: int,
    steps: tuple[int, ...],
    target_margin: float | None,
    seed: int = 0,
    step_control: str = "adaptive",
) -> list[dict]:
    """Rows ``{d, rule, margin, L, knn, <estimator>...}`` for every ``L`` in ``steps`` (prefixes of one
    run: the adaptive step depends only on the current particles, not on the budget)."""
    traj = run_sampler(d, n_sets, max(steps), target_margin, seed, step_control)
    rule = "fixed" if target_margin is None else step_control
    log_q = {name: np.asarray(fn(traj)) for name, fn in ESTIMATORS.items()}
    energy = jax.vmap(three_mode_energy(d))
    rows = []
    for L in steps:
        a = traj.particles[:, L]
        row = {"d": d, "rule": rule, "margin": target_margin, "L": L, "knn": knn_truth(a)}
        row.update({name: float(-np.mean(lq[:, L])) for name, lq in log_q.items()})
        row["mean_step"] = float(jnp.mean(traj.steps[:, :L])) if L else 0.0
        row["mean_energy"] = float(jnp.mean(energy(a.reshape(-1, d))))
        rows.append(row)
    return rows


def analytic_rows(dims: tuple[int, ...], n_sets: int) -> list[dict]:
    """Calibration: k-NN of ``q0 = N(0, I)`` draws against ``d/2 log(2 pi e)``."""
    out = []
    for d in dims:
        x = jax.random.normal(jax.random.PRNGKey(100 + d), (n_sets, d))
        out.append({"d": d, "knn": float(knn_entropy(x, K_NN)), "analytic": 0.5 * d * math.log(2 * math.pi * math.e)})
    return out


def run_entropy_check(
    out_dir: str | Path,
    quick: bool = False,
    dims: tuple[int, ...] = (1, 2, 3, 6),
    margins: tuple[float | None, ...] = (0.5, 0.25, 0.15, 0.1, None),
    steps: tuple[int, ...] = (3, 10, 20),
    bound_margins: tuple[float, ...] = (0.5, 0.3, 0.2, 0.1),
) -> dict:
    """Run the grid in float64; write ``summary.json``, ``report.md`` and ``entropy_check.png``.
    ``margins``: the ``adaptive`` rule's (None: the fixed step); ``bound_margins``: the
    ``adaptive_bound`` rule's (:func:`s2ac.stein.controlled_step`)."""
    from s2ac.experiments.entropy_check.report import report_markdown, write_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_sets = 500 if quick else 2000
    if quick:
        dims, margins, steps, bound_margins = (2,), (0.5, 0.1), (3, 10), (0.3,)
    cells = [(margin, "adaptive") for margin in margins] + [(margin, "adaptive_bound") for margin in bound_margins]
    with jax.enable_x64(True):
        rows = [row for d in dims for margin, rule in cells for row in check_cell(d, n_sets, steps, margin, 0, rule)]
        calibration = analytic_rows(dims, n_sets)
    summary = {
        "settings": {"m": M, "step_cap": STEP_CAP, "k": K_NN, "n_sets": n_sets, "alpha": 1.0, "bandwidth": "mean/2"},
        "calibration": calibration,
        "rows": rows,
        "estimators": list(ESTIMATORS),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "report.md").write_text(report_markdown(summary))
    write_figure(summary, out / "entropy_check.png")
    return summary


__all__ = ["ESTIMATORS", "Trajectory", "check_cell", "knn_truth", "run_entropy_check", "three_mode_energy"]
