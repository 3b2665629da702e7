"""Baseline particle samplers with SVGD's per-particle log-det entropy accounting.

The entropy toy (REFERENCE.md §3, poster "Entropy Evaluation") compares SVGD with
Langevin dynamics, deterministic Langevin and Hamiltonian Monte Carlo. To make the
comparison about the *samplers*, each baseline tracks ``log q`` of every particle
exactly as :func:`s2ac.stein.svgd_sample` does: treat one iteration as a map
``T`` of the particle's position and apply the change of variables

    log q^{l+1}(a^{l+1}) = log q^l(a^l) - log|det dT/da (a^l)|              (CoV)

then estimate the entropy by ``-(1/m) sum_i log q^L(a_i^L)``
(:func:`s2ac.stein.stein_entropy`). (CoV) is exact only when ``T`` is a
deterministic, invertible map of the position alone. SVGD's step is such a map
in the many-particle limit (``a -> a + eps phi_q(a)`` with ``phi_q`` fixed by the
current distribution, invertible for a small enough step; with finitely many
particles the per-particle Jacobian approximates it). The baselines' steps are
not such maps, and that is the point of the comparison:

* Langevin: ``T`` adds Gaussian noise. A random translation has unit Jacobian,
  so (CoV) ignores the entropy the noise adds (a convolution with
  ``N(0, 2 eps I)`` raises the entropy; no per-particle log-det can see it). The
  particles reach the target but the estimate keeps falling.
* deterministic Langevin: ``T`` is deterministic and (CoV) is exact for it, but
  ``T`` is gradient ascent on ``log p``: the particles collapse onto the mode and
  the (correct) entropy of their distribution goes to ``-inf``.
* HMC: ``T`` depends on a freshly drawn momentum and on a Metropolis coin, so
  ``q^{l+1}`` is a mixture over momenta and coins, not a pushforward; see
  :func:`hmc_sample` for what is accounted.

All functions work on ONE particle set of shape ``(m, d)``, are jittable (the
functions and keyword arguments are static) and vmappable over particle sets and
keys, and loop with ``lax.scan``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
ScoreFn = Callable[[Array], Array]
LogProbFn = Callable[[Array], Array]


class SamplerResult(NamedTuple):
    """Output of the baseline samplers (mirrors :class:`s2ac.stein.SVGDResult`).

    Attributes:
        particles: ``(m, d)`` final particles ``a^L``.
        log_q: ``(m,)`` per-particle log-density from the (CoV) accounting.
        accept_rate: ``(L,)`` fraction of particles whose proposal was accepted at
            each step (all ones for the Langevin samplers, which never reject).
        trajectory: ``(L + 1, m, d)`` particles after every step, or ``None``.
        log_q_trajectory: ``(L + 1, m)`` log-densities after every step, or ``None``.
    """

    particles: Array
    log_q: Array
    accept_rate: Array
    trajectory: Array | None = None
    log_q_trajectory: Array | None = None


def _validate(particles: Array, log_q0: Array, steps: int, step_size: float) -> None:
    """Raise ``ValueError`` naming the offending argument (shapes and static values only)."""
    if particles.ndim != 2:
        raise ValueError(f"particles must have shape (m, d); got shape {tuple(particles.shape)}")
    m = particles.shape[0]
    if log_q0.shape != (m,):
        raise ValueError(f"log_q0 must have shape ({m},) to match particles; got {tuple(log_q0.shape)}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int; got {steps!r}")
    if isinstance(step_size, (int, float)) and not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be finite and > 0; got {step_size!r}")


def score_jacobians(score_fn: ScoreFn, particles: Array) -> Array:
    """``(m, d, d)``: ``grad s(a_i) = grad^2 log p(a_i)`` per particle, by forward-mode autodiff.

    ``score_fn`` is row-wise (row ``i`` of its output depends only on row ``i`` of its input).
    """

    def row_score(x: Array) -> Array:
        return score_fn(x[None, :])[0]

    return jax.vmap(jax.jacfwd(row_score))(particles)


def _log_abs_det(mats: Array) -> Array:
    return jnp.linalg.slogdet(mats)[1]


def _scan_particles(
    step_fn: Callable[[Array, Array, Array], tuple[Array, Array, Array]],
    particles: Array,
    log_q0: Array,
    key: Array,
    steps: int,
    trajectory: bool,
) -> SamplerResult:
    """Run ``steps`` iterations of ``step_fn(a, log_q, key) -> (a', log_q', accept_rate)``."""

    def body(carry, step_key):
        a, log_q = carry
        a_next, log_q_next, rate = step_fn(a, log_q, step_key)
        out = (rate, a_next, log_q_next) if trajectory else (rate,)
        return (a_next, log_q_next), out

    keys = jax.random.split(key, steps)
    (a_final, lq_final), outs = jax.lax.scan(body, (particles, log_q0), keys, length=steps)
    traj = lq_traj = None
    if trajectory:
        rates, a_hist, lq_hist = outs
        traj = jnp.concatenate([particles[None], a_hist], axis=0)
        lq_traj = jnp.concatenate([log_q0[None], lq_hist], axis=0)
    else:
        (rates,) = outs
    return SamplerResult(a_final, lq_final, rates, traj, lq_traj)


# ---------------------------------------------------------------------------
# Langevin dynamics
# ---------------------------------------------------------------------------


def langevin_sample(
    score_fn: ScoreFn,
    particles: Array,
    log_q0: Array,
    key: Array,
    *,
    steps: int,
    step_size: float,
    noise: bool = True,
    trajectory: bool = False,
) -> SamplerResult:
    """Unadjusted Langevin dynamics with per-particle log-det accounting.

    Step (Euler-Maruyama discretisation of ``da = grad log p(a) dt + sqrt(2) dW``)::

        a^{l+1} = a^l + eps * s(a^l) + sqrt(2 eps) * xi,    xi ~ N(0, I),   s = grad log p

    Accounting: for a fixed draw ``xi`` the map ``a -> a + eps s(a) + sqrt(2 eps) xi`` has
    Jacobian ``I + eps grad^2 log p(a)`` (the noise is a translation), so (CoV) gives::

        log q^{l+1}(a^{l+1}) = log q^l(a^l) - log|det(I + eps grad^2 log p(a^l))|

    This is NOT the density of the Langevin marginal: the step is a random map, its
    marginal is ``q^{l+1} = (T_# q^l) * N(0, 2 eps I)`` (a convolution), and the entropy
    added by the convolution is invisible to a per-particle log-det. Hence the estimate
    keeps decreasing even once the particles are distributed as the target. With
    ``noise=False`` the step is deterministic and the accounting is exact whenever the map is
    invertible (e.g. ``eps < 1 / lambda_max(-grad^2 log p)`` for a log-concave target), see
    :func:`deterministic_langevin_sample`.

    Args:
        score_fn: row-wise ``(n, d) -> (n, d)`` score ``grad log p``.
        particles: ``(m, d)`` initial particles.
        log_q0: ``(m,)`` their log-density under the initial distribution.
        key: PRNG key for the noise (unused when ``noise=False``).
        steps: number of steps ``L``.
        step_size: ``eps``.
        noise: add ``sqrt(2 eps) xi`` (Langevin) or not (gradient ascent on ``log p``).
        trajectory: also return particles and log-densities after every step.
    """
    particles = jnp.asarray(particles)
    log_q0 = jnp.asarray(log_q0, dtype=particles.dtype)
    _validate(particles, log_q0, steps, step_size)
    d = particles.shape[1]
    eye = jnp.eye(d, dtype=particles.dtype)

    def step(a: Array, log_q: Array, step_key: Array) -> tuple[Array, Array, Array]:
        drift = a + step_size * score_fn(a)
        jac = eye + step_size * score_jacobians(score_fn, a)
        log_q_next = log_q - jax.vmap(_log_abs_det)(jac)
        if noise:
            # Translation by the noise: unit Jacobian, so it does not enter log_q (see docstring).
            drift = drift + math.sqrt(2.0 * step_size) * jax.random.normal(step_key, a.shape, a.dtype)
        return drift, log_q_next, jnp.ones((), a.dtype)

    return _scan_particles(step, particles, log_q0, key, steps, trajectory)


def deterministic_langevin_sample(
    score_fn: ScoreFn,
    particles: Array,
    log_q0: Array,
    *,
    steps: int,
    step_size: float,
    trajectory: bool = False,
) -> SamplerResult:
    """Deterministic Langevin (gradient ascent on ``log p``): ``a^{l+1} = a^l + eps s(a^l)``.

    The accounting ``log q^{l+1} = log q^l - log|det(I + eps grad^2 log p(a^l))|`` is the exact
    change of variables of this map. For a Gaussian target ``N(mu, Sigma)`` the map is affine,
    ``a -> (I - eps Sigma^{-1}) a + eps Sigma^{-1} mu``, so after ``L`` steps the entropy is
    exactly ``H(q^0) + L log|det(I - eps Sigma^{-1})|``: it decreases without bound as the
    particles collapse onto ``mu``. The estimate is right; the sampler is wrong.
    """
    dummy_key = jax.random.PRNGKey(0)
    return langevin_sample(
        score_fn, particles, log_q0, dummy_key, steps=steps, step_size=step_size, noise=False, trajectory=trajectory
    )


# ---------------------------------------------------------------------------
# Hamiltonian Monte Carlo
# ---------------------------------------------------------------------------


def leapfrog(grad_log_p: Callable[[Array], Array], q: Array, p: Array, step_size: float, n_steps: int):
    """``n_steps`` leapfrog steps for ``H(q, p) = -log p(q) + |p|^2 / 2`` (one point, ``q, p`` of shape ``(d,)``).

    ``p <- p + eps/2 grad log p(q);  q <- q + eps p;  p <- p + eps/2 grad log p(q)`` (Neal 2011, eq. 5.18-5.20).
    The map ``(q, p) -> (q', p')`` is volume preserving in phase space (each substep is a shear).
    """

    def body(carry, _):
        q, p = carry
        p = p + 0.5 * step_size * grad_log_p(q)
        q = q + step_size * p
        p = p + 0.5 * step_size * grad_log_p(q)
        return (q, p), None

    (q, p), _ = jax.lax.scan(body, (q, p), None, length=n_steps)
    return q, p


def hmc_sample(
    log_prob_fn: LogProbFn,
    particles: Array,
    log_q0: Array,
    key: Array,
    *,
    steps: int,
    step_size: float,
    n_leapfrog: int,
    trajectory: bool = False,
) -> SamplerResult:
    """Hamiltonian Monte Carlo, one independent chain per particle, with per-particle log-det accounting.

    One iteration per particle ``q`` (Neal 2011, §5.3.2):

    1. resample the momentum ``p ~ N(0, I)``;
    2. ``(q*, p*) = leapfrog^{n_leapfrog}(q, p)`` with step ``eps`` (:func:`leapfrog`);
    3. accept ``q*`` with probability ``min(1, exp(H(q, p) - H(q*, p*)))``,
       ``H(q, p) = -log p(q) + |p|^2 / 2``; otherwise keep ``q``.

    The chain leaves ``p`` invariant (detailed balance).

    Accounting: for the drawn momentum ``p`` the position map ``q -> q*(q, p)`` has Jacobian
    ``J = d q* / d q`` (forward-mode autodiff through the leapfrog); a rejected particle does
    not move (identity map)::

        log q^{l+1}(a^{l+1}) = log q^l(a^l) - [accepted] * log|det J(a^l; p)|

    Why this is wrong: the leapfrog preserves phase-space volume, ``det d(q*, p*)/d(q, p) = 1``,
    but the position block ``J`` alone is not the Jacobian of any map of the position
    distribution: the momentum is random (so ``q^{l+1}`` is a mixture over momenta, whose
    entropy a per-particle log-det cannot see), and the accept/reject coin makes the step a
    mixture of two maps that is not injective. ``log|det J|`` oscillates with the
    trajectory length (for a Gaussian target ``J`` is ``cos(omega T)`` along each
    eigen-direction), so the estimate drifts and jumps, although the particles are
    distributed as the target.

    Args:
        log_prob_fn: ``(d,) -> ()`` log target density (up to a constant); its gradient is
            taken with ``jax.grad``.
        particles: ``(m, d)`` initial positions (one chain each).
        log_q0: ``(m,)`` their log-density under the initial distribution.
        key: PRNG key (momenta and Metropolis coins).
        steps: number of HMC iterations ``L``.
        step_size: leapfrog step ``eps``.
        n_leapfrog: leapfrog steps per iteration (trajectory length ``eps * n_leapfrog``).
        trajectory: also return particles and log-densities after every iteration.
    """
    particles = jnp.asarray(particles)
    log_q0 = jnp.asarray(log_q0, dtype=particles.dtype)
    _validate(particles, log_q0, steps, step_size)
    if not isinstance(n_leapfrog, int) or n_leapfrog < 1:
        raise ValueError(f"n_leapfrog must be a positive int; got {n_leapfrog!r}")
    grad_log_p = jax.grad(log_prob_fn)

    def one_chain(q: Array, log_q: Array, chain_key: Array) -> tuple[Array, Array, Array]:
        key_p, key_u = jax.random.split(chain_key)
        p = jax.random.normal(key_p, q.shape, q.dtype)

        def position_map(q0: Array):
            q_new, p_new = leapfrog(grad_log_p, q0, p, step_size, n_leapfrog)
            return q_new, (q_new, p_new)

        jac, (q_new, p_new) = jax.jacfwd(position_map, has_aux=True)(q)
        log_ratio = (log_prob_fn(q_new) - 0.5 * jnp.sum(p_new**2)) - (log_prob_fn(q) - 0.5 * jnp.sum(p**2))
        # A diverging trajectory (nan/inf energy) is a rejection.
        log_ratio = jnp.where(jnp.isfinite(log_ratio), log_ratio, -jnp.inf)
        accept = jnp.log(jax.random.uniform(key_u, (), q.dtype)) < log_ratio
        q_next = jnp.where(accept, q_new, q)
        log_q_next = log_q - jnp.where(accept, _log_abs_det(jac), 0.0)
        return q_next, log_q_next, accept.astype(q.dtype)

    def step(a: Array, log_q: Array, step_key: Array) -> tuple[Array, Array, Array]:
        chain_keys = jax.random.split(step_key, a.shape[0])
        a_next, log_q_next, accepted = jax.vmap(one_chain)(a, log_q, chain_keys)
        return a_next, log_q_next, jnp.mean(accepted)

    return _scan_particles(step, particles, log_q0, key, steps, trajectory)
