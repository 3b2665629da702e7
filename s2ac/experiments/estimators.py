"""Entropy estimators shared by the experiments (the entropy toy and multigoal)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import digamma, gammaln

from s2ac import stein

Array = jax.Array


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


__all__ = ["knn_entropy"]
