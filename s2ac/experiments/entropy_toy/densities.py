"""Densities of the entropy toy and their ground-truth entropies: the Gaussian target, the exact
Langevin marginals, Gaussian mixtures and the Monte-Carlo ground truth ``-E_p[log p(x)]``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from s2ac.experiments.entropy_toy.config import LOG_2PI

Array = jax.Array

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
