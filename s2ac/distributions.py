"""Action squashing and the simple densities the agents need.

All functions act on the last axis (one action vector) and broadcast over the rest.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
LOG_2 = math.log(2.0)
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


class ActionBox(NamedTuple):
    """Affine map from ``[-1, 1]^d`` to the env's box: ``a = center + scale * tanh(u)``."""

    center: Array
    scale: Array

    @classmethod
    def from_bounds(cls, low, high) -> ActionBox:
        low, high = jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32)
        return cls((high + low) / 2.0, (high - low) / 2.0)


def squash(u: Array, box: ActionBox) -> Array:
    """``a = center + scale * tanh(u)`` (REFERENCE.md §1 "Squashing")."""
    return box.center + box.scale * jnp.tanh(u)


def unsquash(a: Array, box: ActionBox, eps: float = 1e-6) -> Array:
    """Inverse of :func:`squash`, clipped away from the box edges."""
    y = jnp.clip((a - box.center) / box.scale, -1.0 + eps, 1.0 - eps)
    return jnp.arctanh(y)


def tanh_log_det(u: Array) -> Array:
    """``sum_k log(1 - tanh(u_k)^2)``, computed stably as ``2 (log 2 - u - softplus(-2u))``."""
    return jnp.sum(2.0 * (LOG_2 - u - jax.nn.softplus(-2.0 * u)), axis=-1)


def squash_log_det(u: Array, box: ActionBox) -> Array:
    """``log|det da/du|`` of :func:`squash`: ``tanh_log_det(u) + sum log scale``."""
    return tanh_log_det(u) + jnp.sum(jnp.log(box.scale))


def normal_log_prob(x: Array, mean: Array, std: Array) -> Array:
    """Diagonal Gaussian log-density, summed over the last axis."""
    z = (x - mean) / std
    return jnp.sum(-0.5 * z * z - jnp.log(std) - LOG_SQRT_2PI, axis=-1)


def truncated_normal_sample(key: Array, mean: Array, std: Array, bound: float) -> tuple[Array, Array]:
    """Reparameterised draw from ``N(mean, std^2)`` truncated to ``mean +- bound * std``.

    ``z ~ TN(0, 1; [-bound, bound])`` is drawn directly by inverse CDF (no rejection
    loop), then ``x = mean + std * z``; gradients reach ``mean`` and ``std``.
    Returns ``(x, log_prob)`` with the truncated density
    ``log N(x; mean, std) - d * log(Phi(bound) - Phi(-bound))`` (summed over the last axis).
    """
    z = jax.random.truncated_normal(key, -bound, bound, shape=mean.shape, dtype=mean.dtype)
    x = mean + std * z
    # The density from z itself: recomputing z = (x - mean) / std in float32 can land just outside
    # [-bound, bound] when |mean| >> std and give -inf, which would poison a whole batch's target.
    return x, _truncated_log_prob_of_z(z, std, bound)


def _truncated_log_prob_of_z(z: Array, std: Array, bound: float) -> Array:
    """``log TN(x)`` for ``x = mean + std * z`` with ``|z| <= bound``: ``log N(x; mean, std) - d log mass``."""
    log_mass = math.log(math.erf(bound / math.sqrt(2.0)))  # Phi(b) - Phi(-b) = erf(b / sqrt 2)
    return jnp.sum(-0.5 * z * z - jnp.log(std) - LOG_SQRT_2PI - log_mass, axis=-1)


def truncated_normal_log_prob(x: Array, mean: Array, std: Array, bound: float) -> Array:
    """Log-density of the truncated normal of :func:`truncated_normal_sample` (``-inf`` outside)."""
    z = (x - mean) / std
    inside = jnp.all(jnp.abs(z) <= bound * (1.0 + 1e-6), axis=-1)
    return jnp.where(inside, _truncated_log_prob_of_z(z, jnp.broadcast_to(std, z.shape), bound), -jnp.inf)
