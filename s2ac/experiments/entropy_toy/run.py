"""Runs of the entropy toy: the sampler comparison, the bandwidth sweep with the headline numbers, the
dimension / mixture sweep, and :func:`run_entropy_toy`, which runs all three and writes figures and reports.

Every configuration is jitted once and vmapped over seeds, inits and (for fixed bandwidths) over the
bandwidth values.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from s2ac import samplers, stein
from s2ac.experiments.entropy_toy.config import (
    CLI_COMMAND,
    LOG_2PI,
    BandwidthSpec,
    EntropyToyConfig,
    InitSpec,
    bandwidth_label,
    sampler_specs,
)
from s2ac.experiments.entropy_toy.densities import (
    GaussianMixture,
    gaussian_entropy,
    gaussian_log_prob_fn,
    gaussian_score_fn,
    isotropic_log_prob,
    langevin_gaussian_entropy,
    make_mixture,
    mc_entropy,
    mixture_log_prob,
    mixture_score_fn,
    ula_stationary_entropy,
)
from s2ac.experiments.entropy_toy.plots import write_figures
from s2ac.experiments.entropy_toy.report import summary_markdown
from s2ac.experiments.estimators import knn_entropy
from s2ac.experiments.reporting import json_safe
from s2ac.machine import load_average, machine_info, pick

Array = jax.Array

# ---------------------------------------------------------------------------
# Particle sets and SVGD runs
# ---------------------------------------------------------------------------


def _particle_key(seed: int, init_index: int, m: int) -> Array:
    """One key per (seed, init, particle count): every part of the experiment draws the same sets."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), init_index), m)


def initial_particles(key: Array, spec: InitSpec, m: int) -> tuple[Array, Array]:
    """``m`` draws from ``N(mean, variance I)`` and their log-densities."""
    mean = jnp.asarray(spec.mean, jnp.float32)
    x = mean + math.sqrt(spec.variance) * jax.random.normal(key, (m, mean.shape[0]))
    return x, isotropic_log_prob(x, mean, spec.variance)


def _initial_batch(cfg: EntropyToyConfig, init_indices: list[int], m: int, seeds: list[int]) -> tuple[Array, Array]:
    """Stack particle sets over ``init_indices x seeds``: shapes ``(B, m, d)`` and ``(B, m)``."""
    xs, lqs = [], []
    for i in init_indices:
        for s in seeds:
            x, lq = initial_particles(_particle_key(s, i, m), cfg.inits[i], m)
            xs.append(x)
            lqs.append(lq)
    return jnp.stack(xs), jnp.stack(lqs)


def _target(cfg: EntropyToyConfig) -> tuple[Array, Array]:
    return jnp.asarray(cfg.target_mean, jnp.float32), jnp.asarray(cfg.target_cov, jnp.float32)


def _svgd_entropy_fn(score_fn, *, steps: int, step_size: float, mode: str, rule: str | None, diagnostics: bool = True):
    """``(particles, log_q0, sigma) -> (entropy, max invertibility margin)``; ``sigma`` ignored when ``rule``."""

    def run(particles: Array, log_q0: Array, sigma: Array) -> tuple[Array, Array]:
        res = stein.svgd_sample(
            score_fn,
            particles,
            log_q0,
            steps=steps,
            step_size=step_size,
            bandwidth=rule if rule is not None else sigma,
            log_density=mode,
            diagnostics=diagnostics,
        )
        margin = jnp.max(res.invertibility_margin) if diagnostics else jnp.asarray(jnp.nan)
        return stein.stein_entropy(res.log_q), margin

    return run


def svgd_toy_entropies(
    cfg: EntropyToyConfig,
    *,
    n_particles: int,
    steps: int,
    bandwidths: tuple[BandwidthSpec, ...],
    mode: str,
    init_indices: list[int],
    seeds: list[int],
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """SVGD entropy estimates on the toy target for each bandwidth: ``{label: (H, margin)}``, arrays ``(I, S)``.

    Fixed bandwidths are vmapped together (one compilation); each rule compiles once.
    """
    mean, cov = _target(cfg)
    score_fn = gaussian_score_fn(mean, cov)
    a0, lq0 = _initial_batch(cfg, init_indices, n_particles, seeds)
    shape = (len(init_indices), len(seeds))
    kwargs = dict(steps=steps, step_size=cfg.svgd_step_size, mode=mode)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    fixed = [float(b) for b in bandwidths if not isinstance(b, str)]
    if fixed:
        run = _svgd_entropy_fn(score_fn, rule=None, **kwargs)
        batched = jax.jit(jax.vmap(jax.vmap(run, in_axes=(0, 0, None)), in_axes=(None, None, 0)))
        h, margin = batched(a0, lq0, jnp.asarray(fixed, jnp.float32))
        for j, sigma in enumerate(fixed):
            out[bandwidth_label(sigma)] = (np.asarray(h[j]).reshape(shape), np.asarray(margin[j]).reshape(shape))
    for rule in (b for b in bandwidths if isinstance(b, str)):
        run = _svgd_entropy_fn(score_fn, rule=rule, **kwargs)
        h, margin = jax.jit(jax.vmap(run, in_axes=(0, 0, None)))(a0, lq0, jnp.asarray(0.0))
        out[bandwidth_label(rule)] = (np.asarray(h).reshape(shape), np.asarray(margin).reshape(shape))
    return out


# ---------------------------------------------------------------------------
# Part 1: sampler comparison
# ---------------------------------------------------------------------------


def _sampler_fn(cfg: EntropyToyConfig, name: str):
    """``(particles, log_q0, key) -> (trajectory, log_q_trajectory, accept_rate)`` for one particle set."""
    mean, cov = _target(cfg)
    score_fn = gaussian_score_fn(mean, cov)
    steps = cfg.n_steps

    def run(a0: Array, lq0: Array, key: Array):
        if name in ("svgd", "svgd_exact"):
            mode = "closed_form" if name == "svgd" else "exact"
            r = stein.svgd_sample(
                score_fn,
                a0,
                lq0,
                steps=steps,
                step_size=cfg.svgd_step_size,
                bandwidth=cfg.svgd_bandwidth,
                log_density=mode,
                diagnostics=False,
                trajectory=True,
            )
            return r.trajectory, r.log_q_trajectory, jnp.ones((steps,))
        if name == "langevin":
            r = samplers.langevin_sample(
                score_fn, a0, lq0, key, steps=steps, step_size=cfg.langevin_step_size, trajectory=True
            )
        elif name == "det_langevin":
            r = samplers.deterministic_langevin_sample(
                score_fn, a0, lq0, steps=steps, step_size=cfg.langevin_step_size, trajectory=True
            )
        elif name == "hmc":
            r = samplers.hmc_sample(
                gaussian_log_prob_fn(mean, cov),
                a0,
                lq0,
                key,
                steps=steps,
                step_size=cfg.hmc_step_size,
                n_leapfrog=cfg.hmc_n_leapfrog,
                trajectory=True,
            )
        else:  # pragma: no cover - internal names only
            raise ValueError(f"unknown sampler {name!r}")
        return r.trajectory, r.log_q_trajectory, r.accept_rate

    return run


def run_sampler_comparison(cfg: EntropyToyConfig, seed: int) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Trajectories and entropy curves, ``{init_slug: {sampler: arrays}}``.

    Arrays per sampler: ``trajectory (S, L+1, m, d)``, ``logdet (S, L+1)`` (the samplers'
    estimate), ``knn (S, L+1)`` (reference from positions), ``accept (S, L)``.
    """
    seeds = [seed + i for i in range(cfg.comparison_n_seeds)]
    n_init, n_seed = len(cfg.inits), len(seeds)
    knn = jax.jit(jax.vmap(jax.vmap(lambda x: knn_entropy(x, cfg.knn_k))))
    # One compiled call per sampler over every (init, seed) particle set.
    a0, lq0 = _initial_batch(cfg, list(range(n_init)), cfg.n_particles, seeds)
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), 10_000 + i) for i in range(n_init) for s in seeds])
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {spec.slug: {} for spec in cfg.inits}
    for name in sampler_specs(cfg):
        traj, lq_traj, accept = jax.jit(jax.vmap(_sampler_fn(cfg, name)))(a0, lq0, keys)
        arrays = {
            "trajectory": np.asarray(traj),
            "logdet": np.asarray(stein.stein_entropy(lq_traj)),
            "knn": np.asarray(knn(traj)),
            "accept": np.asarray(accept),
        }
        for i, spec in enumerate(cfg.inits):
            out[spec.slug][name] = {k: v[i * n_seed : (i + 1) * n_seed] for k, v in arrays.items()}
    return out


def comparison_summary(cfg: EntropyToyConfig, comp, truth: float) -> dict[str, Any]:
    """Final estimates per init and sampler, with the exact Langevin marginal entropies."""
    labels = sampler_specs(cfg)
    rows = []
    for spec in cfg.inits:
        init_cov = spec.variance * np.eye(len(spec.mean))
        exact = {
            "langevin": langevin_gaussian_entropy(
                init_cov, np.asarray(cfg.target_cov), cfg.langevin_step_size, cfg.n_steps, noise=True
            )[-1],
            "det_langevin": langevin_gaussian_entropy(
                init_cov, np.asarray(cfg.target_cov), cfg.langevin_step_size, cfg.n_steps, noise=False
            )[-1],
        }
        for name, label in labels.items():
            r = comp[spec.slug][name]
            est = r["logdet"][:, -1]
            rows.append(
                {
                    "init": spec.label,
                    "sampler": label,
                    "logdet_estimate_mean": float(np.mean(est)),
                    "logdet_estimate_std": float(np.std(est)),
                    "knn_entropy_of_particles": float(np.mean(r["knn"][:, -1])),
                    "exact_marginal_entropy": float(exact[name]) if name in exact else None,
                    "accept_rate": float(np.mean(r["accept"])),
                    "estimate_within_0.1": bool(abs(np.mean(est) - truth) < 0.1),
                }
            )
    return {
        "steps": cfg.n_steps,
        "n_particles": cfg.n_particles,
        "n_seeds": cfg.comparison_n_seeds,
        "ula_stationary_entropy": ula_stationary_entropy(np.asarray(cfg.target_cov), cfg.langevin_step_size),
        "rows": rows,
    }


# ---------------------------------------------------------------------------
# Part 2: bandwidth sweep and headline numbers
# ---------------------------------------------------------------------------


def run_bandwidth_sweep(cfg: EntropyToyConfig, seed: int) -> list[dict[str, Any]]:
    """One row per (init, mode, m, bandwidth): mean/std over seeds, per-seed values, max invertibility margin."""
    seeds = [seed + i for i in range(cfg.sweep_n_seeds)]
    bandwidths: tuple[BandwidthSpec, ...] = (*cfg.sweep_bandwidths, *cfg.sweep_rules)
    rows = []
    for m in cfg.sweep_particles:
        for mode in cfg.sweep_modes:
            res = svgd_toy_entropies(
                cfg,
                n_particles=m,
                steps=m,
                bandwidths=bandwidths,
                mode=mode,
                init_indices=list(range(len(cfg.inits))),
                seeds=seeds,
            )
            for label, (h, margin) in res.items():
                for i, spec in enumerate(cfg.inits):
                    rows.append(
                        {
                            "init": spec.label,
                            "mode": mode,
                            "n_particles": m,
                            "steps": m,
                            "bandwidth": label,
                            "mean": float(np.mean(h[i])),
                            "std": float(np.std(h[i])),
                            "per_seed": [float(v) for v in h[i]],
                            "max_margin": float(np.max(margin[i])),
                        }
                    )
    return rows


def run_headline(cfg: EntropyToyConfig, seed: int, truth: float) -> dict[str, Any]:
    """Acceptance number (200 x 200, sigma = 5, N(0, 6I), closed form, eps = 0.5, 3 seeds) and the rules'."""
    seeds = [seed + i for i in range(cfg.headline_n_seeds)]
    out: dict[str, Any] = {"seeds": seeds, "init": cfg.inits[0].label, "step_size": cfg.svgd_step_size}
    estimates = {}
    for m, mode, bws in cfg.headline_runs:
        res = svgd_toy_entropies(cfg, n_particles=m, steps=m, bandwidths=bws, mode=mode, init_indices=[0], seeds=seeds)
        for label, (h, margin) in res.items():
            estimates[f"{m}x{m} {label} {mode}"] = {
                "mean": float(np.mean(h)),
                "per_seed": [float(v) for v in h[0]],
                "max_margin": float(np.max(margin)),  # eps * max_i ||J_i||_F over steps and seeds
            }
    acc = estimates["200x200 sigma=5 closed_form"]["mean"]
    out["acceptance"] = {
        "setting": "200 particles x 200 steps, eps=0.5, sigma=5, init N(0,6I), closed form, mean of 3 seeds",
        "estimate": acc,
        "true_entropy": truth,
        "abs_error": abs(acc - truth),
        "passed": bool(abs(acc - truth) < 0.1),
    }
    out["estimates"] = estimates
    return out


# ---------------------------------------------------------------------------
# Part 3: dimension / mixture sweep
# ---------------------------------------------------------------------------


def _mixture_svgd_fn(cfg: EntropyToyConfig, bandwidth: BandwidthSpec, mode: str):
    """``(mixture, particles, log_q0) -> (entropy estimate, -mean log p(final particles))`` for one set.

    The second output is the cross-entropy ``E_q[-log p] = H(q) + KL(q || p)``: it equals ``H(p)`` when the
    particles are distributed as the target, so it checks the particles independently of the accounting.
    """

    def run(mix: GaussianMixture, a0: Array, lq0: Array) -> tuple[Array, Array]:
        res = stein.svgd_sample(
            mixture_score_fn(mix),
            a0,
            lq0,
            steps=cfg.mix_steps,
            step_size=cfg.svgd_step_size,
            bandwidth=bandwidth,
            log_density=mode,
            diagnostics=False,
        )
        return stein.stein_entropy(res.log_q), -jnp.mean(mixture_log_prob(mix, res.particles))

    return run


def run_mixture_sweep(cfg: EntropyToyConfig, seed: int) -> list[dict[str, Any]]:
    """SVGD on random Gaussian mixtures vs the Monte-Carlo ground truth; one row per (d, K, cov type).

    Each seed draws its own mixture, so errors are computed per seed and then averaged.
    """
    seeds = [seed + i for i in range(cfg.mix_n_seeds)]
    mc = jax.jit(lambda mixes, keys: jax.lax.map(lambda mk: mc_entropy(mk[0], mk[1], cfg.mc_samples), (mixes, keys)))
    mix_args = (cfg.mix_mean_scale, tuple(cfg.mix_var_range))
    rows = []
    for d in cfg.mix_dims:
        init = InitSpec("mix", f"N(0, {cfg.mix_init_variance:g}I)", (0.0,) * d, cfg.mix_init_variance)
        h0 = 0.5 * d * math.log(2.0 * math.pi * math.e * cfg.mix_init_variance)
        for n_comp in cfg.mix_components:
            cells = [(c, s) for c in cfg.mix_cov_types for s in seeds]
            keys = [jax.random.fold_in(jax.random.PRNGKey(s), 1000 * d + n_comp) for _, s in cells]
            mix_list = [
                make_mixture(np.random.default_rng([s, d, n_comp, j]), d, n_comp, c, *mix_args)
                for j, (c, s) in enumerate(cells)
            ]
            mixes = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *mix_list)
            truth, se = mc(mixes, jnp.stack([jax.random.fold_in(k, 1) for k in keys]))
            parts = [initial_particles(jax.random.fold_in(k, 2), init, cfg.mix_particles) for k in keys]
            a0, lq0 = jnp.stack([p[0] for p in parts]), jnp.stack([p[1] for p in parts])
            est = {}
            for bw in cfg.mix_bandwidths:
                for mode in cfg.mix_modes:
                    h, cross = jax.jit(jax.vmap(_mixture_svgd_fn(cfg, bw, mode)))(mixes, a0, lq0)
                    est[f"{bandwidth_label(bw)} {mode}"] = (np.asarray(h), np.asarray(cross))
            truth, se = np.asarray(truth), np.asarray(se)
            for c in cfg.mix_cov_types:
                idx = [j for j, (cc, _) in enumerate(cells) if cc == c]
                row = {
                    "d": d,
                    "n_components": n_comp,
                    "cov_type": c,
                    "true_entropy_mc": float(np.mean(truth[idx])),
                    "mc_standard_error": float(np.max(se[idx])),
                    "true_entropy_with_1d_normaliser": float(np.mean(truth[idx]) - 0.5 * (d - 1) * LOG_2PI),
                    "init_entropy": h0,
                    "estimates": {},
                }
                for label, (h, cross) in est.items():
                    err = h[idx] - truth[idx]
                    row["estimates"][label] = {
                        "mean": float(np.mean(h[idx])),
                        "error_mean": float(np.mean(err)),
                        "error_std": float(np.std(err)),
                        "cross_entropy_minus_truth": float(np.mean(cross[idx] - truth[idx])),
                    }
                rows.append(row)
    return rows


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------

MACHINE_KEYS = ("cpu_count", "arch", "platform", "jax", "backend")
"""The :func:`s2ac.machine.machine_info` entries the summary records."""


def _run_parts(cfg: EntropyToyConfig, seed: int, truth: float, timing: dict[str, float]) -> tuple:
    """``(headline, comparison, sweep, mixture)`` of the four parts, each part's seconds into ``timing``."""

    def timed(name: str, fn, *args):
        t0 = time.perf_counter()
        result = fn(*args)
        timing[name] = time.perf_counter() - t0
        return result

    headline = timed("headline", run_headline, cfg, seed, truth)
    comp = timed("sampler_comparison", run_sampler_comparison, cfg, seed)
    sweep = timed("bandwidth_sweep", run_bandwidth_sweep, cfg, seed)
    mix = timed("mixture_sweep", run_mixture_sweep, cfg, seed)
    return headline, comp, sweep, mix


def _python_command(out_dir: Path, quick: bool, seed: int) -> str:
    """The Python one-liner equivalent to this call of :func:`run_entropy_toy`."""
    return (
        'python -c "from pathlib import Path; from s2ac.experiments.entropy_toy import run_entropy_toy; '
        f"run_entropy_toy(Path('{out_dir.as_posix()}'), quick={quick}, seed={seed})\""
    )


def run_entropy_toy(out_dir: Path, quick: bool = False, seed: int = 0) -> dict:
    """Run the whole entropy toy, write figures, ``summary.json`` and ``summary.md`` into ``out_dir``.

    Returns the summary as a JSON-serialisable dict (floats, lists, strings).
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    load_start = load_average()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = EntropyToyConfig.quick() if quick else EntropyToyConfig()
    truth = gaussian_entropy(np.asarray(cfg.target_cov))
    timing: dict[str, float] = {}
    headline, comp, sweep, mix = _run_parts(cfg, seed, truth, timing)

    t0 = time.perf_counter()
    files = write_figures(out_dir, cfg, comp, sweep, mix, truth) + ["summary.json", "summary.md"]
    timing["plots"] = time.perf_counter() - t0
    timing["total"] = time.perf_counter() - start
    timing["total_process_cpu"] = time.process_time() - cpu_start

    summary = {
        "experiment": "entropy_toy",
        "quick": quick,
        "seed": seed,
        "cli_command": CLI_COMMAND + (" --quick" if quick else ""),
        "python_command": _python_command(out_dir, quick, seed),
        "machine": {**pick(machine_info(), MACHINE_KEYS), "load_average_1min_at_start": load_start},
        "true_entropy": truth,
        "headline": headline,
        "sampler_comparison": comparison_summary(cfg, comp, truth),
        "bandwidth_sweep": sweep,
        "mixture_sweep": mix,
        "timing_s": timing,
        "files": files,
        "config": dataclasses.asdict(cfg),
    }
    summary = json_safe(summary)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    (out_dir / "summary.md").write_text(summary_markdown(summary, cfg))
    return summary
