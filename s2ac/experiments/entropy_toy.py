"""Entropy evaluation toy (poster "Entropy Evaluation, H(pi*) = 3.41"; REFERENCE.md §3).

Target ``p = N(mu, Sigma)`` with ``mu = (-0.6871, 0.8010)``,
``Sigma = 5 [[0.2260, 0.1652], [0.1652, 0.6779]]`` and true entropy
``H(p) = 1/2 log det(2 pi e Sigma) = 3.4112``. Particles start from ``N(0, 6 I)``
(6 is a variance) or ``N((4, 4), 0.2 I)`` and move by SVGD (step 0.5) or by a
baseline sampler (:mod:`s2ac.samplers`). Every sampler tracks ``log q`` of each
particle by the change of variables of its step and estimates
``H ~= -(1/m) sum_i log q^L(a_i^L)`` (:func:`s2ac.stein.stein_entropy`).

Four parts, all written to ``out_dir`` by :func:`run_entropy_toy`:

1. sampler comparison: particle snapshots and the estimate vs steps for SVGD,
   Langevin, deterministic Langevin and HMC from both inits, next to two
   references that do not use the samplers' accounting (a k-nearest-neighbour
   entropy of the particles, and the exact marginal entropy of the Langevin
   chains, which stay Gaussian on a Gaussian target);
2. bandwidth sweep: fixed sigma and the two bandwidth rules x particle counts,
   closed-form and exact per-particle log-det, mean over seeds;
3. dimension / mixture sweep: SVGD on Gaussian mixtures in ``d`` dimensions
   against a Monte-Carlo ground truth ``-E_p[log p(x)]`` with the correct
   ``d``-dimensional normaliser;
4. ``summary.json`` / ``summary.md``: all tables, the acceptance number and timings.

Every configuration is jitted once and vmapped over seeds, inits and (for fixed
bandwidths) over the bandwidth values.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, gammaln, logsumexp

from s2ac import samplers, stein
from s2ac.experiments.reporting import json_safe, markdown_table

Array = jax.Array
BandwidthSpec = Union[float, str]
LOG_2PI = math.log(2.0 * math.pi)
CLI_COMMAND = "s2ac reproduce entropy-toy --out results/entropy_toy"


class InitSpec(NamedTuple):
    """Isotropic Gaussian initial distribution ``N(mean, variance * I)``."""

    slug: str
    label: str
    mean: tuple[float, ...]
    variance: float


@dataclasses.dataclass(frozen=True)
class EntropyToyConfig:
    """Settings of the entropy toy; defaults reproduce the poster's setup (REFERENCE.md §3)."""

    target_mean: tuple[float, float] = (-0.6871, 0.8010)
    """Target mean mu (poster, "Entropy Evaluation")."""
    target_cov: tuple[tuple[float, float], tuple[float, float]] = (
        (5 * 0.2260, 5 * 0.1652),
        (5 * 0.1652, 5 * 0.6779),
    )
    """Target covariance Sigma = 5 [[0.2260, 0.1652], [0.1652, 0.6779]] (poster)."""
    inits: tuple[InitSpec, ...] = (
        InitSpec("wide", "N(0, 6I)", (0.0, 0.0), 6.0),
        InitSpec("offset", "N((4,4), 0.2I)", (4.0, 4.0), 0.2),
    )
    """Initial distributions (poster; 6 and 0.2 are variances)."""
    svgd_step_size: float = 0.5
    """SVGD step eps (poster)."""
    svgd_bandwidth: float = 5.0
    """Fixed kernel bandwidth sigma of the sampler comparison (the sweep's best region, sigma ~ 3-7)."""
    n_particles: int = 200
    """Particles per set in the sampler comparison."""
    n_steps: int = 200
    """Steps (iterations) of every sampler in the comparison."""
    snapshot_steps: tuple[int, ...] = (0, 5, 20, 50, 200)
    """Steps shown in the snapshot figures."""
    langevin_step_size: float = 0.1
    """Langevin step: the unadjusted chain's stationary law on this target has entropy H + 0.037 at 0.1
    (at 0.5 it would inflate the stiff direction's variance by 41%, so the particles themselves would be wrong)."""
    hmc_step_size: float = 0.2
    """HMC leapfrog step: eps * sqrt(lambda_max(Sigma^-1)) = 0.22, acceptance ~ 1."""
    hmc_n_leapfrog: int = 10
    """Leapfrog steps per HMC iteration: trajectory length T = 2 gives omega T = 2.15 and 1.05 rad along the two
    eigen-directions (|cos omega T| ~ 0.5), so neither direction is left nearly unchanged by an iteration."""
    knn_k: int = 3
    """Neighbour order of the Kozachenko-Leonenko reference entropy."""
    comparison_n_seeds: int = 3
    """Seeds of the sampler comparison (snapshots show the first)."""
    sweep_bandwidths: tuple[float, ...] = (0.1, 1.0, 3.0, 5.0, 7.0, 10.0, 100.0)
    """Fixed bandwidths of the sweep (the authors' figure)."""
    sweep_rules: tuple[str, ...] = ("mean/2", "median")
    """Adaptive bandwidth rules of the sweep (see :func:`s2ac.stein.bandwidth_from_rule`)."""
    sweep_particles: tuple[int, ...] = (10, 20, 100, 200)
    """Particle counts m of the sweep; each runs L = m steps (the authors' m x L pairing: 20x20, 100x100, 200x200)."""
    sweep_modes: tuple[str, ...] = ("closed_form", "exact")
    """Log-density accounting modes of the sweep (see :func:`s2ac.stein.svgd_step`)."""
    sweep_n_seeds: int = 5
    """Seeds per sweep cell (the first 3 also give the acceptance number)."""
    headline_n_seeds: int = 3
    """Seeds of the acceptance number and of the rules' headline numbers."""
    headline_runs: tuple[tuple[int, str, tuple[BandwidthSpec, ...]], ...] = (
        (200, "closed_form", (5.0, "mean/2", "median")),
        (200, "exact", (5.0, "mean/2")),
        (100, "closed_form", (5.0, "mean/2")),
    )
    """(m = L, accounting mode, bandwidths) of the headline table (REFERENCE.md §3's numbers); the first
    entry must contain sigma = 5 with m = 200 and the closed form (the acceptance number)."""
    mix_dims: tuple[int, ...] = (2, 10, 20)
    """Dimensions of the mixture sweep."""
    mix_components: tuple[int, ...] = (1, 2, 4, 6)
    """Mixture component counts (equal weights)."""
    mix_cov_types: tuple[str, ...] = ("isotropic", "random")
    """Component covariances: ``v I`` or ``Q diag(v) Q^T`` with random rotation Q, ``v ~ U(mix_var_range)``."""
    mix_mean_scale: float = 2.0
    """Component means ~ N(0, mix_mean_scale^2 I)."""
    mix_var_range: tuple[float, float] = (0.5, 2.0)
    """Range of the component variances (eigenvalues)."""
    mix_init_variance: float = 6.0
    """SVGD starts from N(0, mix_init_variance I) in d dimensions."""
    mix_particles: int = 200
    """Particles per set in the mixture sweep."""
    mix_steps: int = 200
    """SVGD steps in the mixture sweep."""
    mix_bandwidths: tuple[BandwidthSpec, ...] = (5.0, "mean/2")
    """Bandwidths of the mixture sweep (the "median" rule's per-step sort of m^2 distances is the slowest part)."""
    mix_modes: tuple[str, ...] = ("closed_form", "closed_form_self")
    """Accounting modes of the mixture sweep (``exact`` costs O(m^2 d^2) memory per step in d = 20)."""
    mix_n_seeds: int = 3
    """Random mixtures (and particle sets) per cell."""
    mc_samples: int = 100_000
    """Monte-Carlo samples of the ground-truth entropy."""
    dpi: int = 100
    """Figure resolution."""

    @classmethod
    def quick(cls) -> EntropyToyConfig:
        """Reduced grids for a smoke run (under a minute on 2 CPU cores)."""
        return cls(
            n_particles=100,
            n_steps=100,
            snapshot_steps=(0, 10, 50, 100),
            comparison_n_seeds=2,
            headline_runs=((200, "closed_form", (5.0, "mean/2")),),
            sweep_bandwidths=(1.0, 5.0, 100.0),
            sweep_rules=("mean/2",),
            sweep_particles=(20, 100),
            sweep_n_seeds=3,
            mix_dims=(2, 10),
            mix_components=(1, 3),
            mix_particles=100,
            mix_steps=100,
            mix_bandwidths=(5.0,),
            mix_modes=("closed_form",),
            mix_n_seeds=2,
            mc_samples=20_000,
        )


# ---------------------------------------------------------------------------
# Densities and references
# ---------------------------------------------------------------------------


def gaussian_entropy(cov: Array | np.ndarray) -> float:
    """``H(N(mu, Sigma)) = 1/2 log det(2 pi e Sigma)``."""
    cov = np.asarray(cov, dtype=np.float64)
    return 0.5 * float(np.linalg.slogdet(2.0 * np.pi * np.e * cov)[1])


def isotropic_log_prob(x: Array, mean: Array, variance: float) -> Array:
    """``log N(x; mean, variance I)`` row-wise for ``x`` of shape ``(n, d)``."""
    d = x.shape[-1]
    return -0.5 * jnp.sum((x - mean) ** 2, axis=-1) / variance - 0.5 * d * (LOG_2PI + math.log(variance))


def knn_entropy(x: Array, k: int) -> Array:
    """Kozachenko-Leonenko k-nearest-neighbour entropy of samples ``x`` (shape ``(n, d)``).

    ``H ~= psi(n) - psi(k) + log V_d + (d/n) sum_i log r_i``, ``r_i`` the distance to the
    ``k``-th neighbour of ``x_i``, ``V_d = pi^{d/2} / Gamma(d/2 + 1)`` (Kraskov et al. 2004, eq. 20).
    It uses only the particle positions, so it checks the samplers' *particles*
    independently of their log-det accounting.
    """
    n, d = x.shape
    sq = stein.pairwise_sq_dists(x) + jnp.diag(jnp.full((n,), jnp.inf, x.dtype))
    kth = jnp.sort(sq, axis=1)[:, k - 1]
    # Collapsed particles (deterministic Langevin) sit at distance 0: floor to keep the result finite.
    log_r = 0.5 * jnp.log(jnp.maximum(kth, 1e-30))
    log_vd = 0.5 * d * math.log(math.pi) - gammaln(0.5 * d + 1.0)
    return digamma(float(n)) - digamma(float(k)) + log_vd + d * jnp.mean(log_r)


def gaussian_score_fn(mean: Array, cov: Array) -> Callable[[Array], Array]:
    """Row-wise score ``grad log N(x; mu, Sigma) = -Sigma^{-1} (x - mu)``."""
    prec = jnp.linalg.inv(cov)
    return lambda x: -(x - mean) @ prec


def gaussian_log_prob_fn(mean: Array, cov: Array) -> Callable[[Array], Array]:
    """Log-density (up to a constant) of one point, for HMC."""
    prec = jnp.linalg.inv(cov)
    return lambda x: -0.5 * (x - mean) @ prec @ (x - mean)


def langevin_gaussian_entropy(
    init_cov: np.ndarray, target_cov: np.ndarray, step_size: float, steps: int, noise: bool
) -> np.ndarray:
    """Exact entropy of the (deterministic) Langevin marginal on a Gaussian target, steps ``0..L``.

    With ``A = I - eps Sigma^{-1}`` the step is affine, so a Gaussian ``q^0`` stays Gaussian with
    ``C^{l+1} = A C^l A^T + 2 eps I`` (the last term only with noise); ``H^l = 1/2 log det(2 pi e C^l)``.
    """
    a = np.eye(len(target_cov)) - step_size * np.linalg.inv(target_cov)
    c = np.asarray(init_cov, np.float64)
    out = [gaussian_entropy(c)]
    for _ in range(steps):
        c = a @ c @ a.T + (2.0 * step_size * np.eye(len(c)) if noise else 0.0)
        out.append(gaussian_entropy(c))
    return np.asarray(out)


def ula_stationary_entropy(target_cov: np.ndarray, step_size: float) -> float:
    """Entropy of unadjusted Langevin's stationary law on ``N(mu, Sigma)``: variance ``(1/lam) / (1 - eps lam / 2)``
    along each eigenvector of the precision (eigenvalue ``lam``)."""
    lam = np.linalg.eigvalsh(np.linalg.inv(target_cov))
    var = 1.0 / lam / (1.0 - 0.5 * step_size * lam)
    return 0.5 * float(np.sum(np.log(2.0 * np.pi * np.e * var)))


# ---------------------------------------------------------------------------
# Gaussian mixtures and the Monte-Carlo ground truth
# ---------------------------------------------------------------------------


class GaussianMixture(NamedTuple):
    """``p(x) = sum_k w_k N(x; mu_k, L_k L_k^T)``, stored with ``L_k^{-1}`` so densities need only matmuls."""

    log_weights: Array  # (K,)
    means: Array  # (K, d)
    chols: Array  # (K, d, d) lower Cholesky factors L_k
    inv_chols: Array  # (K, d, d) L_k^{-1}
    log_det_chols: Array  # (K,) sum log diag L_k = 1/2 log det Sigma_k


def mixture_from_covs(log_weights: np.ndarray, means: np.ndarray, covs: np.ndarray) -> GaussianMixture:
    """Build a :class:`GaussianMixture` (float32 arrays) from full covariances ``(K, d, d)`` (float64 numpy)."""
    chols = np.linalg.cholesky(covs)
    inv_chols = np.linalg.inv(chols)
    log_det = np.sum(np.log(np.diagonal(chols, axis1=-2, axis2=-1)), axis=-1)
    return GaussianMixture(*(jnp.asarray(v, jnp.float32) for v in (log_weights, means, chols, inv_chols, log_det)))


def make_mixture(
    rng: np.random.Generator,
    d: int,
    n_components: int,
    cov_type: str,
    mean_scale: float,
    var_range: tuple[float, float],
) -> GaussianMixture:
    """Equal-weight mixture with means ``~ N(0, mean_scale^2 I)`` and ``isotropic`` or ``random`` covariances.

    Built in float64 numpy (small matrices; no compilation per shape).
    """
    if cov_type not in ("isotropic", "random"):
        raise ValueError(f"unknown cov_type {cov_type!r}; expected 'isotropic' or 'random'")
    means = mean_scale * rng.standard_normal((n_components, d))
    lo, hi = var_range
    if cov_type == "isotropic":
        var = rng.uniform(lo, hi, (n_components, 1)) * np.ones((1, d))
        rot = np.broadcast_to(np.eye(d), (n_components, d, d))
    else:
        var = rng.uniform(lo, hi, (n_components, d))
        rot, _ = np.linalg.qr(rng.standard_normal((n_components, d, d)))
    covs = np.einsum("kij,kj,klj->kil", rot, var, rot)
    return mixture_from_covs(np.full((n_components,), -math.log(n_components)), means, covs)


def mixture_log_prob(mix: GaussianMixture, x: Array) -> Array:
    """``log p(x) = logsumexp_k [log w_k + log N(x; mu_k, Sigma_k)]`` for ``x`` of shape ``(..., d)``.

    Each component uses the full ``d``-dimensional normaliser:
    ``log N = -1/2 ||L_k^{-1}(x - mu_k)||^2 - sum log diag L_k - d/2 log(2 pi)``.
    """
    d = x.shape[-1]
    z = jnp.einsum("kij,...kj->...ki", mix.inv_chols, x[..., None, :] - mix.means)
    comp = -0.5 * jnp.sum(z * z, axis=-1) - mix.log_det_chols - 0.5 * d * LOG_2PI
    return logsumexp(mix.log_weights + comp, axis=-1)


def mixture_score_fn(mix: GaussianMixture) -> Callable[[Array], Array]:
    """Row-wise score ``grad log p`` for ``(n, d)`` inputs (rows are independent, so the gradient of the sum)."""
    return jax.grad(lambda x: jnp.sum(mixture_log_prob(mix, x)))


def mixture_sample(mix: GaussianMixture, key: Array, n: int) -> Array:
    """``n`` draws: a component by its weight, then ``mu_k + L_k z``."""
    k_comp, k_z = jax.random.split(key)
    comp = jax.random.categorical(k_comp, mix.log_weights, shape=(n,))
    z = jax.random.normal(k_z, (n, mix.means.shape[1]))
    per_comp = mix.means[:, None, :] + jnp.einsum("kde,ne->knd", mix.chols, z)  # (K, n, d)
    onehot = jax.nn.one_hot(comp, mix.means.shape[0], dtype=z.dtype)
    return jnp.einsum("nk,knd->nd", onehot, per_comp)


def mc_entropy(mix: GaussianMixture, key: Array, n: int) -> tuple[Array, Array]:
    """Monte-Carlo ground truth ``H(p) = -E_p[log p(x)]`` and its standard error."""
    neg_log_p = -mixture_log_prob(mix, mixture_sample(mix, key, n))
    return jnp.mean(neg_log_p), jnp.std(neg_log_p) / math.sqrt(n)


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


def bandwidth_label(bandwidth: BandwidthSpec) -> str:
    """``"sigma=5"`` for a fixed bandwidth, the rule's name otherwise."""
    return bandwidth if isinstance(bandwidth, str) else f"sigma={float(bandwidth):g}"


# ---------------------------------------------------------------------------
# Part 1: sampler comparison
# ---------------------------------------------------------------------------


def _sampler_specs(cfg: EntropyToyConfig) -> dict[str, str]:
    """Sampler key -> label (with the step sizes used)."""
    return {
        "svgd": f"SVGD (eps={cfg.svgd_step_size:g}, sigma={cfg.svgd_bandwidth:g}, closed form)",
        "svgd_exact": f"SVGD (eps={cfg.svgd_step_size:g}, sigma={cfg.svgd_bandwidth:g}, exact log-det)",
        "langevin": f"Langevin (eps={cfg.langevin_step_size:g})",
        "det_langevin": f"Deterministic Langevin (eps={cfg.langevin_step_size:g})",
        "hmc": f"HMC (eps={cfg.hmc_step_size:g}, {cfg.hmc_n_leapfrog} leapfrog)",
    }


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
    for name in _sampler_specs(cfg):
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


def _comparison_summary(cfg: EntropyToyConfig, comp, truth: float) -> dict[str, Any]:
    """Final estimates per init and sampler, with the exact Langevin marginal entropies."""
    labels = _sampler_specs(cfg)
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
        for label, (h, _) in res.items():
            estimates[f"{m}x{m} {label} {mode}"] = {"mean": float(np.mean(h)), "per_seed": [float(v) for v in h[0]]}
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
# Plots
# ---------------------------------------------------------------------------


def _ellipse(mean: np.ndarray, cov: np.ndarray, radius: float) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, 100)
    return mean + radius * np.stack([np.cos(t), np.sin(t)], 1) @ np.linalg.cholesky(cov).T


def plot_snapshots(path: Path, cfg: EntropyToyConfig, spec: InitSpec, comp_init, truth: float) -> None:
    """Rows: samplers; columns: snapshot steps; titles carry each panel's log-det entropy estimate (seed 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {k: f"C{i}" for i, k in enumerate(_sampler_specs(cfg))}  # same colours as the curves figure
    labels = {k: v for k, v in _sampler_specs(cfg).items() if k != "svgd_exact"}
    steps = [s for s in cfg.snapshot_steps if s <= cfg.n_steps]
    mean, cov = np.asarray(cfg.target_mean), np.asarray(cfg.target_cov)
    fig, axes = plt.subplots(len(labels), len(steps), figsize=(2.6 * len(steps), 2.6 * len(labels)), squeeze=False)
    for r, (name, label) in enumerate(labels.items()):
        res = comp_init[name]
        for c, step in enumerate(steps):
            ax = axes[r, c]
            for rad in (1.0, 2.0):
                e = _ellipse(mean, cov, rad)
                ax.plot(e[:, 0], e[:, 1], color="0.55", lw=0.8)
            x = res["trajectory"][0, step]
            ax.scatter(x[:, 0], x[:, 1], s=3, color=colors[name], alpha=0.7)
            ax.set_xlim(-7, 7)
            ax.set_ylim(-6, 8)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=7)
            ax.set_title(f"step {step}: H est = {res['logdet'][0, step]:.2f}", fontsize=9)
            if c == 0:
                ax.set_ylabel(label.replace(" (", "\n("), fontsize=8)
    fig.suptitle(
        f"Particles from {spec.label} ({cfg.n_particles} particles, seed 0); grey: target 1- and 2-sigma ellipses; "
        f"true entropy {truth:.4f}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=cfg.dpi)
    plt.close(fig)


def plot_entropy_curves(path: Path, cfg: EntropyToyConfig, comp, truth: float) -> None:
    """Top: the samplers' log-det estimates vs steps; bottom: references from the particles' positions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = _sampler_specs(cfg)
    fig, axes = plt.subplots(2, len(cfg.inits), figsize=(6.5 * len(cfg.inits), 8.5), squeeze=False)
    steps = np.arange(cfg.n_steps + 1)
    for c, spec in enumerate(cfg.inits):
        top, bottom = axes[0, c], axes[1, c]
        for k, (name, label) in enumerate(labels.items()):
            res = comp[spec.slug][name]
            style = {"svgd_exact": "--", "det_langevin": "-."}.get(name, "-")  # det. Langevin's estimate = Langevin's
            est = res["logdet"].mean(0)
            top.plot(steps, est, style, color=f"C{k}", label=f"{label}: final {est[-1]:.2f}")
            bottom.plot(steps, res["knn"].mean(0), style, color=f"C{k}", label=f"{label}: kNN of particles")
        init_cov = spec.variance * np.eye(len(spec.mean))
        for k, (name, noise) in ((2, ("langevin", True)), (3, ("det_langevin", False))):
            exact = langevin_gaussian_entropy(
                init_cov, np.asarray(cfg.target_cov), cfg.langevin_step_size, cfg.n_steps, noise
            )
            bottom.plot(steps, exact, ":", color=f"C{k}", lw=2, label=f"{labels[name]}: exact marginal")
        for ax in (top, bottom):
            ax.axhline(truth, color="k", lw=1, label=f"true entropy {truth:.4f}")
            ax.set_ylim(-1.0, 7.5)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="lower left")
        top.set_ylabel("log-det entropy estimate  -mean log q")
        bottom.set_ylabel("entropy of the particles' distribution")
        top.set_title(f"init {spec.label}: the samplers' own estimates (mean of {cfg.comparison_n_seeds} seeds)")
        bottom.set_title(f"init {spec.label}: references independent of the accounting")
    fig.tight_layout()
    fig.savefig(path, dpi=cfg.dpi)
    plt.close(fig)


def plot_bandwidth_sweep(path: Path, cfg: EntropyToyConfig, rows: list[dict], truth: float) -> None:
    """Heatmaps of the mean estimate (text) and its error vs the truth (colour): modes x inits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bws = [bandwidth_label(b) for b in (*cfg.sweep_bandwidths, *cfg.sweep_rules)]
    ms = list(cfg.sweep_particles)
    fig, axes = plt.subplots(
        len(cfg.sweep_modes),
        len(cfg.inits),
        figsize=(0.75 * len(bws) * len(cfg.inits) + 1.5, 0.7 * len(ms) * len(cfg.sweep_modes) + 1.8),
        squeeze=False,
        constrained_layout=True,
    )
    lookup = {(r["init"], r["mode"], r["n_particles"], r["bandwidth"]): r for r in rows}
    image = None
    for a, mode in enumerate(cfg.sweep_modes):
        for b, spec in enumerate(cfg.inits):
            ax = axes[a, b]
            vals = np.array([[lookup[(spec.label, mode, m, bw)]["mean"] for bw in bws] for m in ms])
            margins = np.array([[lookup[(spec.label, mode, m, bw)]["max_margin"] for bw in bws] for m in ms])
            err = np.where(np.isfinite(vals), vals - truth, np.nan)
            image = ax.imshow(err, cmap="RdBu_r", vmin=-2.0, vmax=2.0, aspect="auto")
            for p in range(len(ms)):
                for q in range(len(bws)):
                    text = f"{vals[p, q]:.2f}" if np.isfinite(vals[p, q]) and abs(vals[p, q]) < 1e3 else "div."
                    if margins[p, q] >= 1.0:
                        text += "*"
                    ax.text(q, p, text, ha="center", va="center", fontsize=7)
            ax.set_xticks(range(len(bws)), [bw.replace("sigma=", "") for bw in bws], fontsize=8)
            ax.set_yticks(range(len(ms)), [f"{m}x{m}" for m in ms], fontsize=8)
            ax.set_xlabel("bandwidth sigma / rule")
            ax.set_ylabel("particles x steps")
            ax.set_title(f"{mode}, init {spec.label}", fontsize=9)
    fig.suptitle(
        f"SVGD entropy estimate (mean of {cfg.sweep_n_seeds} seeds, eps={cfg.svgd_step_size:g}); colour: error vs "
        f"true {truth:.4f}; * step map not provably invertible (margin >= 1)",
        fontsize=9,
    )
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.9, label="estimate - truth (nats)")
    fig.savefig(path, dpi=cfg.dpi)
    plt.close(fig)


def plot_mixture_sweep(path: Path, cfg: EntropyToyConfig, rows: list[dict]) -> None:
    """Estimate error vs number of components, one panel per (cov type, d)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(cfg.mix_cov_types), len(cfg.mix_dims), figsize=(4.6 * len(cfg.mix_dims), 3.6 * len(cfg.mix_cov_types) + 1.0)
    )
    axes = np.atleast_2d(axes).reshape(len(cfg.mix_cov_types), len(cfg.mix_dims))
    labels = list(rows[0]["estimates"])
    for a, cov_type in enumerate(cfg.mix_cov_types):
        for b, d in enumerate(cfg.mix_dims):
            ax = axes[a, b]
            sel = [r for r in rows if r["d"] == d and r["cov_type"] == cov_type]
            ks = [r["n_components"] for r in sel]
            for k, label in enumerate(labels):
                color = f"C{k // len(cfg.mix_modes)}"
                err = np.array([r["estimates"][label]["error_mean"] for r in sel])
                std = np.array([r["estimates"][label]["error_std"] for r in sel])
                style = "--" if label.endswith("self") else "-"
                ax.errorbar(ks, err, yerr=std, fmt=style + "o", ms=3, color=color, label=label)
                if k % len(cfg.mix_modes) == 0:
                    cross = [r["estimates"][label]["cross_entropy_minus_truth"] for r in sel]
                    bw = label.split(" ")[0]
                    ax.plot(ks, cross, ":x", color=color, label=f"{bw}: particles' E_q[-log p] - truth")
            h0_err = [r["init_entropy"] - r["true_entropy_mc"] for r in sel]
            ax.plot(ks, h0_err, ":", color="0.4", label="H(q0) - truth (no update)")
            ax.axhline(0.0, color="k", lw=1)
            ax.set_title(f"d={d}, {cov_type} covariances", fontsize=9)
            ax.set_xlabel("mixture components K")
            ax.set_ylabel("estimate - MC truth (nats)")
            ax.grid(alpha=0.3)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=3, fontsize=8)
    fig.suptitle(
        f"SVGD entropy on Gaussian mixtures ({cfg.mix_particles} particles x {cfg.mix_steps} steps, "
        f"eps={cfg.svgd_step_size:g}, init N(0,{cfg.mix_init_variance:g}I), {cfg.mix_n_seeds} random mixtures)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0.0, 0.1, 1.0, 1.0))
    fig.savefig(path, dpi=cfg.dpi)
    plt.close(fig)


# ---------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------


def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None or not math.isfinite(v):
        return "nan"
    return f"{v:.{digits}f}" if abs(v) < 1e4 else f"{v:.2e}"


def _fmt_list(values) -> str:
    return "[" + ", ".join(f"{float(v):.4g}" for v in values) + "]"


def summary_markdown(summary: dict[str, Any], cfg: EntropyToyConfig) -> str:
    """Human-readable report of :func:`run_entropy_toy`'s summary."""
    truth = summary["true_entropy"]
    head = summary["headline"]
    acc = head["acceptance"]
    machine = summary["machine"]
    out = [
        "# Entropy evaluation toy (poster: H(pi*) = 3.41)",
        "",
        f"Reproduce: `{summary['cli_command']}`",
        "",
        "Python equivalent, run from the repository root (the command that wrote this directory):",
        "",
        "```",
        summary["python_command"],
        "```",
        "",
        f"Machine: {machine['cpu_count']}-core {machine['arch']} CPU ({machine['platform']}), jax {machine['jax']}, "
        f"float32. Wall time: **{summary['timing_s']['total']:.1f} s** (seed {summary['seed']}"
        f"{', quick grids' if summary['quick'] else ''}; process CPU time "
        f"{summary['timing_s']['total_process_cpu']:.1f} s; 1-min load average at start "
        f"{_fmt(machine.get('load_average_1min_at_start'), 2)}; well above 0 means other jobs were using the cores).",
        "",
        f"Target N(mu, Sigma), mu = {_fmt_list(cfg.target_mean)}, "
        f"Sigma = [{', '.join(_fmt_list(r) for r in cfg.target_cov)}]; "
        f"true entropy 1/2 log det(2 pi e Sigma) = **{truth:.4f}**.",
        "",
        "## Acceptance",
        "",
        f"{acc['setting']}: **{acc['estimate']:.4f}** (|error| = {acc['abs_error']:.4f}; "
        f"{'PASS' if acc['passed'] else 'FAIL'}, tolerance 0.1). Seeds {head['seeds']}.",
        "",
        markdown_table(
            ["setting (init N(0,6I), eps=0.5, 3 seeds)", "estimate", "per seed"],
            [[k, _fmt(v["mean"]), ", ".join(_fmt(x) for x in v["per_seed"])] for k, v in head["estimates"].items()],
        ),
        "",
        "## Sampler comparison",
        "",
        f"{summary['sampler_comparison']['n_particles']} particles, {summary['sampler_comparison']['steps']} steps, "
        f"mean of {summary['sampler_comparison']['n_seeds']} seeds. 'log-det estimate' is the sampler's own "
        "per-particle accounting; 'kNN' is a Kozachenko-Leonenko estimate from the final positions "
        f"(k={cfg.knn_k}); 'exact marginal' is the true entropy of the Langevin chains' Gaussian marginal. "
        f"Unadjusted Langevin at eps={cfg.langevin_step_size:g} has stationary entropy "
        f"{summary['sampler_comparison']['ula_stationary_entropy']:.4f}.",
        "",
        markdown_table(
            ["init", "sampler", "log-det estimate", "within 0.1", "kNN of particles", "exact marginal", "accept"],
            [
                [
                    r["init"],
                    r["sampler"],
                    f"{_fmt(r['logdet_estimate_mean'])} ± {_fmt(r['logdet_estimate_std'])}",
                    "yes" if r["estimate_within_0.1"] else "no",
                    _fmt(r["knn_entropy_of_particles"]),
                    "—" if r["exact_marginal_entropy"] is None else _fmt(r["exact_marginal_entropy"]),
                    _fmt(r["accept_rate"], 2),
                ]
                for r in summary["sampler_comparison"]["rows"]
            ],
        ),
        "",
        f"Step sizes: SVGD eps={cfg.svgd_step_size:g} with sigma={cfg.svgd_bandwidth:g}; Langevin and deterministic "
        f"Langevin eps={cfg.langevin_step_size:g} (unadjusted Langevin's stationary law is then only "
        f"{summary['sampler_comparison']['ula_stationary_entropy'] - truth:.3f} nats too wide; at eps=0.5 the stiff "
        f"direction's variance would be 41% too large); HMC eps={cfg.hmc_step_size:g} x {cfg.hmc_n_leapfrog} leapfrog "
        "steps (trajectory length 2, acceptance ~1).",
        "",
        "How to read it: every sampler's log-det estimate uses the same per-particle change of variables. "
        "It is exact for a deterministic invertible map of the positions. Langevin's particles reach the target "
        "(kNN and exact marginal ~ truth) but its estimate ignores the entropy added by the noise, so it falls "
        "without bound. Deterministic Langevin's accounting is exact (estimate = exact marginal) but the map is "
        "gradient ascent: the particles collapse on the mode. HMC's particles reach the target, but the "
        "leapfrog's position block is not the Jacobian of the position map (the momentum is random and "
        "Metropolis mixes two maps), so its estimate does not track the entropy. SVGD's 'exact log-det' "
        "includes the self term (eps/m) tr grad^2 log p per step, which the closed form omits: for a finite "
        "particle set the "
        "per-particle Jacobian is not the population's density change (REFERENCE.md §3).",
        "",
        "## Bandwidth sweep",
        "",
        f"Mean ± std over {cfg.sweep_n_seeds} seeds; L = m steps; * = max invertibility margin >= 1 "
        "(step map not provably invertible).",
    ]
    bws = [bandwidth_label(b) for b in (*cfg.sweep_bandwidths, *cfg.sweep_rules)]
    lookup = {(r["init"], r["mode"], r["n_particles"], r["bandwidth"]): r for r in summary["bandwidth_sweep"]}
    for mode in cfg.sweep_modes:
        for spec in cfg.inits:
            rows = []
            for m in cfg.sweep_particles:
                cells = []
                for bw in bws:
                    r = lookup[(spec.label, mode, m, bw)]
                    star = "*" if r["max_margin"] is not None and r["max_margin"] >= 1.0 else ""
                    cells.append(f"{_fmt(r['mean'], 2)} ± {_fmt(r['std'], 2)}{star}")
                rows.append([f"{m}x{m}", *cells])
            out += ["", f"### {mode}, init {spec.label}", "", markdown_table(["m x L", *bws], rows)]
    mix_rows = summary["mixture_sweep"]
    labels = list(mix_rows[0]["estimates"]) if mix_rows else []
    # One particle check per bandwidth (the particles do not depend on the accounting mode).
    checks = {label.split(" ")[0]: label for label in labels}
    out += [
        "",
        "## Dimension / mixture sweep",
        "",
        f"{cfg.mix_particles} particles x {cfg.mix_steps} steps, eps={cfg.svgd_step_size:g}, init "
        f"N(0, {cfg.mix_init_variance:g}I); equal-weight mixtures, means ~ N(0, {cfg.mix_mean_scale:g}^2 I), "
        f"variances ~ U{tuple(cfg.mix_var_range)}; {cfg.mix_n_seeds} random mixtures per row. Truth: Monte Carlo "
        f"-E[log p] over {cfg.mc_samples} samples with the d-dimensional normaliser (max standard error shown); "
        "'1-D norm.' is what a 1-D normaliser would give (wrong by (d-1)/2 log 2pi). Cells: estimate error "
        "(estimate - truth) mean ± std. 'particles' columns: E_q[-log p] - truth over the final particles "
        "(0 when they are distributed as the target; it bounds the particles' own entropy error from above).",
        "",
        markdown_table(
            ["d", "K", "cov", "truth (MC)", "se", "1-D norm.", "H(q0)", *labels, *[f"particles {b}" for b in checks]],
            [
                [
                    str(r["d"]),
                    str(r["n_components"]),
                    r["cov_type"],
                    _fmt(r["true_entropy_mc"]),
                    _fmt(r["mc_standard_error"]),
                    _fmt(r["true_entropy_with_1d_normaliser"], 2),
                    _fmt(r["init_entropy"], 2),
                    *[
                        f"{_fmt(r['estimates'][k]['error_mean'], 2)} ± {_fmt(r['estimates'][k]['error_std'], 2)}"
                        for k in labels
                    ],
                    *[_fmt(r["estimates"][k]["cross_entropy_minus_truth"], 2) for k in checks.values()],
                ]
                for r in mix_rows
            ],
        ),
        "",
        "## Timing (s)",
        "",
        markdown_table(["part", "seconds"], [[k, f"{v:.1f}"] for k, v in summary["timing_s"].items()]),
        "",
        "## Files",
        "",
        *[f"- `{f}`" for f in summary["files"]],
        "",
    ]
    return "\n".join(out)


def _machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "arch": platform.machine(),
        "platform": platform.platform(terse=True),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
    }


def run_entropy_toy(out_dir: Path, quick: bool = False, seed: int = 0) -> dict:
    """Run the whole entropy toy, write figures, ``summary.json`` and ``summary.md`` into ``out_dir``.

    Returns the summary as a JSON-serialisable dict (floats, lists, strings).
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = EntropyToyConfig.quick() if quick else EntropyToyConfig()
    truth = gaussian_entropy(np.asarray(cfg.target_cov))
    timing: dict[str, float] = {}

    def timed(name: str, fn, *args):
        t0 = time.perf_counter()
        result = fn(*args)
        timing[name] = time.perf_counter() - t0
        return result

    headline = timed("headline", run_headline, cfg, seed, truth)
    comp = timed("sampler_comparison", run_sampler_comparison, cfg, seed)
    sweep = timed("bandwidth_sweep", run_bandwidth_sweep, cfg, seed)
    mix = timed("mixture_sweep", run_mixture_sweep, cfg, seed)

    t0 = time.perf_counter()
    files = []
    for spec in cfg.inits:
        name = f"snapshots_{spec.slug}.png"
        plot_snapshots(out_dir / name, cfg, spec, comp[spec.slug], truth)
        files.append(name)
    plot_entropy_curves(out_dir / "entropy_vs_steps.png", cfg, comp, truth)
    plot_bandwidth_sweep(out_dir / "bandwidth_sweep.png", cfg, sweep, truth)
    plot_mixture_sweep(out_dir / "mixture_sweep.png", cfg, mix)
    files += ["entropy_vs_steps.png", "bandwidth_sweep.png", "mixture_sweep.png", "summary.json", "summary.md"]
    timing["plots"] = time.perf_counter() - t0
    timing["total"] = time.perf_counter() - start
    timing["total_process_cpu"] = time.process_time() - cpu_start

    summary = {
        "experiment": "entropy_toy",
        "quick": quick,
        "seed": seed,
        "cli_command": CLI_COMMAND + (" --quick" if quick else ""),
        "python_command": (
            'python -c "from pathlib import Path; from s2ac.experiments.entropy_toy import run_entropy_toy; '
            f"run_entropy_toy(Path('{out_dir.as_posix()}'), quick={quick}, seed={seed})\""
        ),
        "machine": {**_machine(), "load_average_1min_at_start": load_start},
        "true_entropy": truth,
        "headline": headline,
        "sampler_comparison": _comparison_summary(cfg, comp, truth),
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
