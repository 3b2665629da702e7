"""Stein variational gradient descent (SVGD) with log-density accounting.

Everything here is written for ONE particle set of shape ``(m, d)``; callers
``jax.vmap`` over seeds (experiments), and :func:`svgd_sample_batched` runs many sets
(one per state, in RL) with one batched score call per step.

Notation (REFERENCE.md §1, poster box "A Closed Form Estimate"):

* RBF kernel ``k(x, y) = exp(-||x - y||^2 / (2 sigma^2))``.
* SVGD direction (poster form, i.e. ``alpha`` times the textbook direction for
  the target ``exp(E / alpha)``)::

      phi(a_i) = (1/m) sum_j [ k(a_j, a_i) s_j + alpha * grad_{a_j} k(a_j, a_i) ]

  with ``s_j = grad E(a_j)`` the score of the energy (``grad_a Q(s, a)`` in RL,
  ``grad log p`` for a density with ``alpha = 1``).
* Step ``a_i <- a_i + eps * phi(a_i)``; change of variables
  ``log q^{l+1}(a^{l+1}) = log q^l(a^l) - log|det(I + eps * d phi_i / d a_i)|``.
* Closed form (first order, interaction part only)::

      Delta log q_i = eps / (N sigma^2) sum_{j != i} k_ij
                      [ (a_i - a_j)^T s_j + (alpha / sigma^2) ||a_i - a_j||^2 - d alpha ]

  with ``N = m`` (poster) or ``N = m - 1`` (authors' code).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, NamedTuple, Union

import jax
import jax.numpy as jnp

Array = jax.Array
ScoreFn = Callable[[Array], Array]
BandwidthRule = Literal["mean/2", "median"]
Bandwidth = Union[float, BandwidthRule]
LogDensityMode = Literal["closed_form", "closed_form_self", "exact", "exact_noself", "none"]
Normalizer = Literal["m", "m-1"]

BANDWIDTH_RULES: tuple[str, ...] = ("mean/2", "median")
LOG_DENSITY_MODES: tuple[str, ...] = (
    "closed_form",
    "closed_form_self",
    "exact",
    "exact_noself",
    "none",
)
NORMALIZERS: tuple[str, ...] = ("m", "m-1")


class SVGDResult(NamedTuple):
    """Output of :func:`svgd_sample`.

    Attributes:
        particles: ``(m, d)`` final particles ``a^L``.
        log_q: ``(m,)`` log-density of each final particle under ``q^L``.
        bandwidth: ``(L,)`` kernel bandwidth sigma used at each step.
        invertibility_margin: ``(L,)`` ``eps * max_i ||d phi_i / d a_i||`` per step
            (spectral norm in the ``exact*`` and ``closed_form_self`` modes; the
            Frobenius upper bound of the interaction part in ``closed_form``).
            The step map is invertible when it is below 1.
        step_size: ``(L,)`` step actually taken (``eps``, or less under ``max_margin``).
        trajectory: ``(L + 1, m, d)`` particles after every step (``None`` unless
            ``trajectory=True``).
        log_q_trajectory: ``(L + 1, m)`` log-densities after every step (or ``None``).
    """

    particles: Array
    log_q: Array
    bandwidth: Array
    invertibility_margin: Array
    step_size: Array
    trajectory: Array | None = None
    log_q_trajectory: Array | None = None


# ---------------------------------------------------------------------------
# Kernel and bandwidth
# ---------------------------------------------------------------------------


def pairwise_sq_dists(x: Array) -> Array:
    """``D_ij = ||x_i - x_j||^2`` for ``x`` of shape ``(m, d)``.

    Computed from differences (not the Gram trick) so the diagonal is exactly 0.
    """
    diff = x[:, None, :] - x[None, :, :]
    return jnp.sum(diff * diff, axis=-1)


def rbf_kernel(x: Array, y: Array, sigma: Array | float) -> Array:
    """``k(x, y) = exp(-||x - y||^2 / (2 sigma^2))`` for single points ``x, y`` of shape ``(d,)``."""
    return jnp.exp(-jnp.sum((x - y) ** 2) / (2.0 * sigma**2))


def rbf_kernel_grad_first(x: Array, y: Array, sigma: Array | float) -> Array:
    """``grad_x k(x, y) = -(x - y) / sigma^2 * k(x, y)`` (analytic; tested against ``jax.grad``)."""
    return -(x - y) / sigma**2 * rbf_kernel(x, y, sigma)


def bandwidth_from_rule(particles: Array, rule: BandwidthRule) -> Array:
    """Kernel bandwidth sigma from the current particles (no gradient flows through it).

    * ``"mean/2"`` (authors' default): ``sigma^2 = mean(D) / (4 ln(m + 1))`` over all
      ``m^2`` pairs, zero diagonal included.
    * ``"median"``: ``sigma^2 = median(D) / (2 ln(m + 1))`` over the same ``m^2`` entries.
    """
    m = particles.shape[0]
    sq = pairwise_sq_dists(jax.lax.stop_gradient(particles))
    if rule == "mean/2":
        sigma2 = jnp.mean(sq) / (4.0 * math.log(m + 1))
    elif rule == "median":
        sigma2 = jnp.median(sq) / (2.0 * math.log(m + 1))
    else:  # pragma: no cover - validated by the caller
        raise ValueError(f"unknown bandwidth rule {rule!r}; expected one of {BANDWIDTH_RULES}")
    # A collapsed particle set would give sigma = 0 and a division by zero.
    return jnp.sqrt(jnp.maximum(sigma2, 1e-12))


def _resolve_bandwidth(particles: Array, bandwidth: Bandwidth) -> Array:
    if isinstance(bandwidth, str):
        return bandwidth_from_rule(particles, bandwidth)  # type: ignore[arg-type]
    return jnp.asarray(bandwidth, dtype=particles.dtype)


# ---------------------------------------------------------------------------
# SVGD direction and its Jacobians
# ---------------------------------------------------------------------------


def svgd_direction(particles: Array, scores: Array, sigma: Array, alpha: float) -> Array:
    """SVGD drift ``phi(a_i) = (1/m) sum_j [k_ji s_j + alpha grad_{a_j} k(a_j, a_i)]`` (all ``j``).

    Uses ``grad_{a_j} k(a_j, a_i) = (a_i - a_j) / sigma^2 * k_ij``.
    """
    m = particles.shape[0]
    diff = particles[:, None, :] - particles[None, :, :]  # (i, j, d): a_i - a_j
    k = jnp.exp(-jnp.sum(diff * diff, axis=-1) / (2.0 * sigma**2))  # (i, j), symmetric
    drive = k @ scores
    repulse = jnp.einsum("ij,ijd->id", k, diff) / sigma**2
    return (drive + alpha * repulse) / m


def interaction_jacobian(particles: Array, scores: Array, sigma: Array, alpha: float) -> Array:
    """``(m, d, d)``: the ``j != i`` part of ``d phi_i / d a_i`` with the other particles fixed.

    ``J_i = (1/m) sum_{j != i} k_ij / sigma^2 [ -s_j r_ij^T + alpha (I - r_ij r_ij^T / sigma^2) ]``,
    ``r_ij = a_i - a_j`` (differentiate ``k(a_j, a_i) s_j`` and the repulsion in ``a_i``).
    The ``j = i`` summand is excluded: its Jacobian is the Hessian of the energy.
    """
    m, d = particles.shape
    diff = particles[:, None, :] - particles[None, :, :]
    k = jnp.exp(-jnp.sum(diff * diff, axis=-1) / (2.0 * sigma**2))
    k = k * (1.0 - jnp.eye(m, dtype=k.dtype))
    w = k / sigma**2
    drive = -jnp.einsum("ij,jp,ijq->ipq", w, scores, diff)
    outer = jnp.einsum("ij,ijp,ijq->ipq", w, diff, diff) / sigma**2
    iso = jnp.sum(w, axis=1)[:, None, None] * jnp.eye(d, dtype=particles.dtype)
    return (drive + alpha * (iso - outer)) / m


def closed_form_log_q_change(
    particles: Array, scores: Array, sigma: Array, alpha: float, step_size: float, n_norm: int
) -> Array:
    """Poster closed form ``Delta log q_i`` for one SVGD step (first order, ``j != i``).

    ``eps / (N sigma^2) sum_{j != i} k_ij [ (a_i - a_j)^T s_j + alpha/sigma^2 ||a_i - a_j||^2 - d alpha ]``.
    Equals ``-eps * tr(J_i)`` with ``J_i`` from :func:`interaction_jacobian` when ``N = m``.
    Only dot products and first derivatives are needed.
    """
    m, d = particles.shape
    diff = particles[:, None, :] - particles[None, :, :]
    sq = jnp.sum(diff * diff, axis=-1)
    k = jnp.exp(-sq / (2.0 * sigma**2)) * (1.0 - jnp.eye(m, dtype=particles.dtype))
    dot = jnp.einsum("ijd,jd->ij", diff, scores)
    bracket = dot + (alpha / sigma**2) * sq - d * alpha
    return step_size / (n_norm * sigma**2) * jnp.sum(k * bracket, axis=1)


def _batched_self_jacobians(score_fn: ScoreFn, particles: Array) -> Array:
    """``(B, m, d, d)``: ``(1/m) grad s(a_bi)`` for a score that maps ``(B, m, d)`` row-wise.

    Row-wise independence makes the Jacobian block-diagonal, so ``d`` JVPs with the tangent
    ``e_k`` at every row give column ``k`` of every row's Jacobian at once.
    """
    d, m = particles.shape[-1], particles.shape[-2]
    eye = jnp.eye(d, dtype=particles.dtype)
    columns = jax.vmap(lambda e: jax.jvp(score_fn, (particles,), (jnp.broadcast_to(e, particles.shape),))[1])(eye)
    return jnp.moveaxis(columns, 0, -1) / m  # (B, m, d_out, d_in)


def _log_abs_det(mat: Array) -> Array:
    return jnp.linalg.slogdet(mat)[1]


def _spectral_norm(mats: Array) -> Array:
    return jnp.linalg.norm(mats, ord=2, axis=(-2, -1))


# ---------------------------------------------------------------------------
# Sampler
# ---------------------------------------------------------------------------


def validate_svgd_args(
    particles: Array,
    log_q0: Array,
    steps: int,
    step_size: float,
    bandwidth: Bandwidth,
    alpha: float,
    log_density: str,
    normalizer: str,
    max_margin: float | None = None,
) -> None:
    """Raise ``ValueError`` naming the offending argument (shapes and static values only)."""
    if particles.ndim != 2:
        raise ValueError(f"particles must have shape (m, d); got shape {tuple(particles.shape)}")
    m = particles.shape[0]
    if m < 2:
        raise ValueError(f"SVGD needs at least 2 particles; got m={m}")
    if log_q0.shape != (m,):
        raise ValueError(f"log_q0 must have shape ({m},) to match particles; got {tuple(log_q0.shape)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int; got {steps!r}")
    if isinstance(step_size, (int, float)) and not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be finite and > 0; got {step_size!r}")
    if isinstance(alpha, (int, float)) and not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be finite and > 0; got {alpha!r}")
    if isinstance(bandwidth, str):
        if bandwidth not in BANDWIDTH_RULES:
            raise ValueError(f"unknown bandwidth rule {bandwidth!r}; expected a float or one of {BANDWIDTH_RULES}")
    elif isinstance(bandwidth, (int, float)) and not (math.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth must be finite and > 0; got {bandwidth!r}")
    if log_density not in LOG_DENSITY_MODES:
        raise ValueError(f"unknown log_density {log_density!r}; expected one of {LOG_DENSITY_MODES}")
    if normalizer not in NORMALIZERS:
        raise ValueError(f"unknown normalizer {normalizer!r}; expected one of {NORMALIZERS}")
    if max_margin is not None and not (math.isfinite(max_margin) and 0 < max_margin < 1):
        raise ValueError(f"max_margin must be in (0, 1) (invertibility needs margin < 1); got {max_margin!r}")


def svgd_step(
    score_fn: ScoreFn,
    particles: Array,
    *,
    step_size: float,
    bandwidth: Bandwidth = "mean/2",
    alpha: float = 1.0,
    log_density: LogDensityMode = "closed_form",
    normalizer: Normalizer = "m",
    diagnostics: bool = True,
    max_margin: float | None = None,
) -> tuple[Array, Array, Array, Array, Array]:
    """One SVGD step: returns ``(new_particles, delta_log_q, sigma, margin, step)``.

    ``delta_log_q`` by mode (all per particle, shape ``(m,)``):

    * ``"closed_form"``: poster formula (first order in eps, ``j != i`` only).
    * ``"closed_form_self"``: closed form plus the self term ``-(eps/m) tr grad^2 E(a_i)``
      (exact trace via forward-mode autodiff; ``d`` JVPs of the score).
    * ``"exact"``: ``-log|det(I + eps d phi_i / d a_i)|`` with the full Jacobian
      (self term included), others and sigma held fixed.
    * ``"exact_noself"``: the same with the ``j != i`` Jacobian only (isolates the
      first-order error of the closed form).
    * ``"none"``: zeros (skip the accounting).

    ``margin = eps * max_i ||d phi_i / d a_i||``: the spectral norm of the full Jacobian in
    the ``exact`` and ``closed_form_self`` modes, of the interaction part in ``exact_noself``,
    and the Frobenius norm (an upper bound of the spectral one) of the interaction part in
    ``closed_form`` (the self term's Hessian is not computed there). The step map
    ``a -> a + eps phi(a)`` is invertible when ``margin < 1`` (invertible-ResNet argument).

    ``max_margin``: if set, the step of this particle set is shrunk to
    ``eps * min(1, max_margin / margin)`` (not differentiated) so the map stays invertible;
    the returned ``step`` is the one used, in the move and in the density alike.
    """
    sigma = _resolve_bandwidth(particles, bandwidth)
    scores = score_fn(particles)
    j_self = None
    if log_density in ("closed_form_self", "exact"):
        j_self = _batched_self_jacobians(lambda x: score_fn(x[0])[None], particles[None])[0]
    return svgd_update(
        particles,
        scores,
        sigma,
        j_self,
        step_size=step_size,
        alpha=alpha,
        log_density=log_density,
        normalizer=normalizer,
        diagnostics=diagnostics,
        max_margin=max_margin,
    )


def svgd_update(
    particles: Array,
    scores: Array,
    sigma: Array,
    j_self: Array | None,
    *,
    step_size: float,
    alpha: float,
    log_density: LogDensityMode,
    normalizer: Normalizer,
    diagnostics: bool,
    max_margin: float | None,
) -> tuple[Array, Array, Array, Array, Array]:
    """The body of :func:`svgd_step` once the scores (and, for the modes that need it, the
    self-term Jacobians ``(1/m) grad s(a_i)``) are known; same outputs."""
    m, d = particles.shape
    phi = svgd_direction(particles, scores, sigma, alpha)
    n_norm = m if normalizer == "m" else m - 1
    eye = jnp.eye(d, dtype=particles.dtype)

    needs_interaction = log_density in ("exact", "exact_noself") or diagnostics or max_margin is not None
    j_int = interaction_jacobian(particles, scores, sigma, alpha) if needs_interaction else None

    if j_int is None:
        norm = jnp.asarray(jnp.nan, particles.dtype)
    elif j_self is not None:
        norm = jnp.max(_spectral_norm(jax.lax.stop_gradient(j_int + j_self)))
    elif log_density == "exact_noself":
        norm = jnp.max(_spectral_norm(jax.lax.stop_gradient(j_int)))
    else:
        norm = jnp.max(jnp.sqrt(jnp.sum(jax.lax.stop_gradient(j_int) ** 2, axis=(-2, -1))))
    step = jnp.asarray(step_size, particles.dtype)
    if max_margin is not None:
        step = step * jnp.minimum(1.0, max_margin / jnp.maximum(step * norm, 1e-30))

    if log_density == "closed_form":
        delta = closed_form_log_q_change(particles, scores, sigma, alpha, step, n_norm)
    elif log_density == "closed_form_self":
        delta = closed_form_log_q_change(particles, scores, sigma, alpha, step, n_norm)
        delta = delta - step * jnp.trace(j_self, axis1=-2, axis2=-1)
    elif log_density == "exact":
        delta = -jax.vmap(_log_abs_det)(eye + step * (j_int + j_self))
    elif log_density == "exact_noself":
        delta = -jax.vmap(_log_abs_det)(eye + step * j_int)
    else:
        delta = jnp.zeros((m,), particles.dtype)
    return particles + step * phi, delta, sigma, step * norm, step


def svgd_sample(
    score_fn: ScoreFn,
    particles: Array,
    log_q0: Array,
    *,
    steps: int,
    step_size: float,
    bandwidth: Bandwidth = "mean/2",
    alpha: float = 1.0,
    log_density: LogDensityMode = "closed_form",
    normalizer: Normalizer = "m",
    diagnostics: bool = True,
    trajectory: bool = False,
    unroll: bool = False,
    max_margin: float | None = None,
) -> SVGDResult:
    """Run ``steps`` SVGD steps from ``particles`` and track ``log q`` of every particle.

    Implements ``log q^L(a_i^L) = log q^0(a_i^0) + sum_l Delta log q_i^l`` (REFERENCE.md §1)
    with ``Delta`` chosen by ``log_density`` (see :func:`svgd_step`). The loop is a
    ``lax.scan``; the function is jittable (``score_fn`` and the keyword arguments are
    static), vmappable over particle sets, and differentiable end to end.

    Args:
        score_fn: maps ``(n, d)`` points to their ``(n, d)`` energy gradients, row-wise
            (row ``i`` of the output depends only on row ``i`` of the input).
        particles: ``(m, d)`` initial particles ``a^0``.
        log_q0: ``(m,)`` log-density of ``a^0`` under the initial distribution.
        steps: number of SVGD steps ``L``.
        step_size: ``eps``.
        bandwidth: a fixed sigma, or a rule re-evaluated on the particles at every step.
        alpha: temperature multiplying the repulsion (and the density terms).
        log_density: accounting mode, see :func:`svgd_step`.
        normalizer: ``"m"`` (poster) or ``"m-1"`` (authors' code) in the closed form.
        diagnostics: compute the per-step invertibility margin.
        trajectory: also return particles and log-densities after every step.
        unroll: fully unroll the scan in the compiled graph (small ``L``; exact FLOP counts).
        max_margin: shrink a step whose invertibility margin would exceed this (see :func:`svgd_step`).
    """
    particles = jnp.asarray(particles)
    log_q0 = jnp.asarray(log_q0, dtype=particles.dtype)
    validate_svgd_args(particles, log_q0, steps, step_size, bandwidth, alpha, log_density, normalizer, max_margin)
    result = svgd_sample_batched(
        lambda x: score_fn(x[0])[None],
        particles[None],
        log_q0[None],
        steps=steps,
        step_size=step_size,
        bandwidth=bandwidth,
        alpha=alpha,
        log_density=log_density,
        normalizer=normalizer,
        diagnostics=diagnostics,
        trajectory=trajectory,
        unroll=unroll,
        max_margin=max_margin,
    )
    return SVGDResult(*(None if field is None else field[0] for field in result))


def svgd_sample_batched(
    score_fn: ScoreFn,
    particles: Array,
    log_q0: Array,
    *,
    steps: int,
    step_size: float,
    bandwidth: Bandwidth = "mean/2",
    alpha: float = 1.0,
    log_density: LogDensityMode = "closed_form",
    normalizer: Normalizer = "m",
    diagnostics: bool = True,
    trajectory: bool = False,
    unroll: bool = False,
    max_margin: float | None = None,
) -> SVGDResult:
    """:func:`svgd_sample` for ``B`` independent particle sets at once, with ONE score call per step.

    ``particles``: ``(B, m, d)``; ``log_q0``: ``(B, m)``; ``score_fn`` maps ``(B, m, d)`` to its
    ``(B, m, d)`` energy gradients, row-wise (set ``b`` may have its own energy, e.g. its own state).
    Equal to ``jax.vmap`` of :func:`svgd_sample` (tested); the difference is for the compiler:
    under ``vmap`` the score's network sees the set axis outside its own batch axes, which on a
    CPU costs a transpose of every hidden activation, while here it sees one flat batch. The
    result has a leading ``B`` axis on every field (per-step fields: ``(B, L)``).
    """
    particles = jnp.asarray(particles)
    log_q0 = jnp.asarray(log_q0, dtype=particles.dtype)
    if particles.ndim != 3:
        raise ValueError(f"particles must have shape (B, m, d); got shape {tuple(particles.shape)}")
    if log_q0.shape != particles.shape[:2]:
        raise ValueError(
            f"log_q0 must have shape {tuple(particles.shape[:2])} to match particles; got {tuple(log_q0.shape)}"
        )
    validate_svgd_args(particles[0], log_q0[0], steps, step_size, bandwidth, alpha, log_density, normalizer, max_margin)
    needs_self = log_density in ("closed_form_self", "exact")
    update = jax.vmap(
        lambda a, s, sigma, j: svgd_update(
            a,
            s,
            sigma,
            j,
            step_size=step_size,
            alpha=alpha,
            log_density=log_density,
            normalizer=normalizer,
            diagnostics=diagnostics,
            max_margin=max_margin,
        )
    )

    def body(carry, _):
        a, log_q = carry
        sigma = jax.vmap(lambda x: _resolve_bandwidth(x, bandwidth))(a)
        scores = score_fn(a)
        j_self = _batched_self_jacobians(score_fn, a) if needs_self else None
        a_next, delta, sigma, margin, step = update(a, scores, sigma, j_self)
        log_q_next = log_q + delta
        out = (sigma, margin, step, a_next, log_q_next) if trajectory else (sigma, margin, step)
        return (a_next, log_q_next), out

    (a_final, log_q_final), outs = jax.lax.scan(
        body, (particles, log_q0), None, length=steps, unroll=max(steps, 1) if unroll else 1
    )
    per_set = [jnp.moveaxis(x, 0, 1) for x in outs]  # (L, B, ...) -> (B, L, ...)
    traj = log_q_traj = None
    if trajectory:
        sigmas, margins, steps_used, a_hist, lq_hist = per_set
        traj = jnp.concatenate([particles[:, None], a_hist], axis=1)
        log_q_traj = jnp.concatenate([log_q0[:, None], lq_hist], axis=1)
    else:
        sigmas, margins, steps_used = per_set
    return SVGDResult(a_final, log_q_final, sigmas, margins, steps_used, traj, log_q_traj)


def stein_entropy(log_q: Array) -> Array:
    """Particle entropy estimate ``H ~= -(1/m) sum_i log q^L(a_i^L)`` (REFERENCE.md §1)."""
    return -jnp.mean(log_q, axis=-1)
