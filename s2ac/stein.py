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
* Mean-field closed form (the poster's; first order, ``j != i`` terms only)::

      Delta log q_i = eps / (N sigma^2) sum_{j != i} k_ij
                      [ (a_i - a_j)^T s_j + (alpha / sigma^2) ||a_i - a_j||^2 - d alpha ]

  with ``N = m`` (poster) or ``N = m - 1`` (authors' code). It is ``-eps tr`` of the Jacobian of
  the mean-field map ``a -> a + eps phi_q(a)``, the map every particle follows in the many-particle
  limit; one particle's own Jacobian block adds the self term ``(1/m) grad^2 E(a_i)``, which belongs
  to one finite particle set, not to the policy's density (docs/maths/entropy.md).
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Callable
from typing import Literal, NamedTuple, Union

import jax
import jax.numpy as jnp

Array = jax.Array
ScoreFn = Callable[[Array], Array]
BandwidthRule = Literal["mean/2", "median"]
Bandwidth = Union[float, BandwidthRule]
LogDensityMode = Literal[
    "mean_field", "mean_field_logdet", "per_particle", "per_particle_trace", "per_particle_trace_probe", "none"
]
Normalizer = Literal["m", "m-1"]
StepControl = Literal["fixed", "adaptive", "adaptive_bound"]

BANDWIDTH_RULES: tuple[str, ...] = ("mean/2", "median")
LOG_DENSITY_MODES: tuple[str, ...] = (
    "mean_field",
    "mean_field_logdet",
    "per_particle",
    "per_particle_trace",
    "per_particle_trace_probe",
    "none",
)
"""Density accounting modes (see :func:`svgd_step`): the mean-field map's Jacobian (``j != i`` terms;
first order = the poster's closed form; or its exact log-det) or one particle's own Jacobian block
(self term included; its log-det, its first order, or that first order with the self term's trace
from one random probe)."""
LOG_DENSITY_ALIASES: dict[str, str] = {
    "closed_form": "mean_field",
    "exact_noself": "mean_field_logdet",
    "exact": "per_particle",
    "closed_form_self": "per_particle_trace",
}
"""Earlier names of the modes, still accepted (configs and checkpoints written with them load)."""
PER_PARTICLE_MODES: tuple[str, ...] = ("per_particle", "per_particle_trace")
"""Modes that need the self-term Jacobians ``(1/m) grad^2 E(a_i)`` (``d`` JVPs of the score per step)."""
PROBE_MODES: tuple[str, ...] = ("per_particle_trace_probe",)
"""Modes that estimate the self term's trace from one Hutchinson probe (one JVP per step; need a key)."""
NORMALIZERS: tuple[str, ...] = ("m", "m-1")
STEP_CONTROLS: tuple[str, ...] = ("fixed", "adaptive", "adaptive_bound")
"""Step rules (:func:`controlled_step`): the authors' fixed step; the adaptive step from the mean-field
blocks at the particles (a local margin, plus the self term's secant); the adaptive step from the
proven global bound :func:`mean_field_lipschitz_bound` (score norms only)."""
DEFAULT_TARGET_MARGIN = 0.5
"""Margin ``eps * max_i ||J_i||_F`` (mean-field blocks at the particles, :func:`mean_field_norm`) the
adaptive rule keeps every step below."""


def canonical_log_density(name: str) -> str:
    """The mode's current name (earlier names of :data:`LOG_DENSITY_ALIASES` map to theirs);
    ``ValueError`` naming close matches for an unknown one."""
    name = LOG_DENSITY_ALIASES.get(name, name)
    if name not in LOG_DENSITY_MODES:
        close = difflib.get_close_matches(str(name), [*LOG_DENSITY_MODES, *LOG_DENSITY_ALIASES], n=3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ValueError(f"unknown log_density {name!r}; expected one of {LOG_DENSITY_MODES}{hint}")
    return name


class SVGDResult(NamedTuple):
    """Output of :func:`svgd_sample`.

    Attributes:
        particles: ``(m, d)`` final particles ``a^L``.
        log_q: ``(m,)`` log-density of each final particle under ``q^L``.
        bandwidth: ``(L,)`` kernel bandwidth sigma used at each step.
        invertibility_margin: ``(L,)`` ``eps * max_i ||J_i||_F`` per step, ``J_i`` the mean-field
            Jacobian block at particle ``i`` (a local diagnostic, see :func:`controlled_step`).
            NaN if not computed.
        step_size: ``(L,)`` step ``eps`` actually taken (see :func:`controlled_step`).
        folded: ``(L,)`` fraction of particles whose step has ``det(I + eps J_i) <= 0``.
        trajectory: ``(L + 1, m, d)`` particles after every step (``None`` unless
            ``trajectory=True``).
        log_q_trajectory: ``(L + 1, m)`` log-densities after every step (or ``None``).
    """

    particles: Array
    log_q: Array
    bandwidth: Array
    invertibility_margin: Array
    step_size: Array
    folded: Array
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


def bandwidth_from_rule(particles: Array, rule: BandwidthRule, gradient: bool = False) -> Array:
    """Kernel bandwidth sigma from the current particles; no gradient flows through it unless
    ``gradient`` (then sigma moves with the particles, and so with the q0 network's parameters).

    * ``"mean/2"`` (authors' default): ``sigma^2 = mean(D) / (4 ln(m + 1))`` over all
      ``m^2`` pairs, zero diagonal included.
    * ``"median"``: ``sigma^2 = median(D) / (2 ln(m + 1))`` over the same ``m^2`` entries.
    """
    m = particles.shape[0]
    sq = pairwise_sq_dists(particles if gradient else jax.lax.stop_gradient(particles))
    if rule == "mean/2":
        sigma2 = jnp.mean(sq) / (4.0 * math.log(m + 1))
    elif rule == "median":
        sigma2 = jnp.median(sq) / (2.0 * math.log(m + 1))
    else:  # pragma: no cover - validated by the caller
        raise ValueError(f"unknown bandwidth rule {rule!r}; expected one of {BANDWIDTH_RULES}")
    # A collapsed particle set would give sigma = 0 and a division by zero.
    return jnp.sqrt(jnp.maximum(sigma2, 1e-12))


def resolve_bandwidth(particles: Array, bandwidth: Bandwidth, gradient: bool = False) -> Array:
    """Sigma for one particle set ``(m, d)``: a rule of :func:`bandwidth_from_rule` evaluated on the
    particles (differentiable in them if ``gradient``), or the fixed value ``bandwidth`` (in the
    particles' dtype)."""
    if isinstance(bandwidth, str):
        return bandwidth_from_rule(particles, bandwidth, gradient)  # type: ignore[arg-type]
    return jnp.asarray(bandwidth, dtype=particles.dtype)


# ---------------------------------------------------------------------------
# SVGD direction and its Jacobians
# ---------------------------------------------------------------------------


def svgd_direction(particles: Array, scores: Array, sigma: Array, alpha: float) -> Array:
    """SVGD drift ``phi(a_i) = (1/m) sum_j [k_ji s_j + alpha grad_{a_j} k(a_j, a_i)]`` (all ``j``).

    Uses ``grad_{a_j} k(a_j, a_i) = (a_i - a_j) / sigma^2 * k_ij``: :func:`svgd_direction_anchored`
    with the particles as their own anchors.
    """
    return svgd_direction_anchored(particles, particles, scores, sigma, alpha)


def svgd_direction_anchored(points: Array, anchors: Array, anchor_scores: Array, sigma: Array, alpha: float) -> Array:
    """SVGD direction at ``points`` (n, d) from a separate set of kernel anchors (K, d) (SQL paper Eq. 13).

    SVGD's direction is ``phi(x) = mean_j [k(x_j, x) grad log p(x_j) + grad_{x_j} k(x_j, x)]``, an
    expectation over particles ``x_j``; here they are the anchors ``y_j`` (SQL's "fixed" particles), and
    ``phi`` is evaluated at other points ``x_i`` (SQL's "updated" particles), in the poster's
    ``alpha``-scaled form for the target ``exp(E/alpha)``::

        phi(x_i) = (1/K) sum_j [ k(y_j, x_i) s_j + alpha grad_{y_j} k(y_j, x_i) ]

    with ``s_j = grad E(y_j)`` the energy gradient at anchor ``y_j`` and
    ``grad_{y_j} k(y_j, x_i) = (x_i - y_j) / sigma^2 k(y_j, x_i)``. With ``anchors = points`` it is
    :func:`svgd_direction`.
    """
    diff = points[:, None, :] - anchors[None, :, :]  # (i, j, d): x_i - y_j
    k = jnp.exp(-jnp.sum(diff * diff, axis=-1) / (2.0 * sigma**2))
    drive = k @ anchor_scores
    repulse = jnp.einsum("ij,ijd->id", k, diff) / sigma**2
    return (drive + alpha * repulse) / anchors.shape[0]


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
    # -s_j r^T - alpha r r^T / sigma^2 = u r^T with u = -(s_j + alpha r / sigma^2): one contraction
    u = -(scores[None, :, :] + (alpha / sigma**2) * diff)
    iso = jnp.sum(w, axis=1)[:, None, None] * jnp.eye(d, dtype=particles.dtype)
    return (jnp.einsum("ij,ijp,ijq->ipq", w, u, diff) + alpha * iso) / m


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
    ``e_k`` at every row give column ``k`` of every row's Jacobian at once. Differentiable: the
    per-particle modes' log-dets depend on it (their gradient needs third derivatives of the energy).
    """
    d, m = particles.shape[-1], particles.shape[-2]
    eye = jnp.eye(d, dtype=particles.dtype)
    columns = jax.vmap(lambda e: jax.jvp(score_fn, (particles,), (jnp.broadcast_to(e, particles.shape),))[1])(eye)
    return jnp.moveaxis(columns, 0, -1) / m  # (B, m, d_out, d_in)


def self_trace_probe(score_fn: ScoreFn, particles: Array, key: Array, probed: int | None = None) -> Array:
    """``(B,)``: Hutchinson's estimate of the set's mean self-term trace ``(1/m) mean_i tr grad^2 E(a_bi) / m``
    from one Rademacher probe at each of the first ``probed`` particles of every set (all ``m`` when None),
    for a score that maps ``(B, n, d)`` row-wise.

    ``E_v[v^T H v] = tr H`` for any ``H`` (``E[v v^T] = I``), exact wherever ``H`` is diagonal
    (``v_k^2 = 1``), variance ``2 sum_{k != l} H_kl^2``. The particles of a set are exchangeable (i.i.d.
    draws from q0 moved by a permutation-symmetric map), so the mean over the first ``probed`` of them
    is an unbiased estimate of the set's mean over random draws, and every use of the density (the
    soft value, the actor's loss, the entropy) averages over the set. Cost: one JVP of the score on
    ``B * probed`` rows, whatever ``d`` (the exact trace needs ``d`` JVPs on all ``B * m``).
    Differentiable: the actor's gradient through it needs third derivatives of the energy.
    """
    m = particles.shape[-2]
    sub = particles if probed is None else particles[..., :probed, :]
    v = jax.random.rademacher(key, sub.shape, dtype=particles.dtype)
    hv = jax.jvp(score_fn, (sub,), (v,))[1]
    return jnp.mean(jnp.sum(v * hv, axis=-1), axis=-1) / m


def mean_field_lipschitz_bound(scores: Array, sigma: Array, alpha: float) -> Array:
    """``B = e^{-1/2} mean_j ||s_j|| / sigma + alpha / sigma^2``: a bound on ``sup_a ||d phi_q / d a||_2``.

    ``phi_q(a) = (1/m) sum_j [k(a_j, a) s_j + alpha grad_{a_j} k(a_j, a)]`` is the mean-field drift, a
    function of a free point ``a`` (every particle moves by it with the others as ``q``). Its Jacobian
    is ``(1/m) sum_j [ -k_j s_j r_j^T / sigma^2 + alpha k_j / sigma^2 (I - r_j r_j^T / sigma^2) ]`` with
    ``r_j = a - a_j``, ``k_j = exp(-|r_j|^2 / (2 sigma^2))``. Term by term, over all ``a``:

    * ``||s_j r_j^T|| k_j / sigma^2 = ||s_j|| |r_j| k_j / sigma^2 <= ||s_j|| e^{-1/2} / sigma``
      (``r e^{-r^2/(2 sigma^2)}`` peaks at ``r = sigma``);
    * the eigenvalues of ``k_j (I - r_j r_j^T / sigma^2)`` are ``k_j`` and ``k_j (1 - t)``,
      ``t = |r_j|^2 / sigma^2``, and ``|1 - t| e^{-t/2} <= 1``, so its norm is at most 1.

    The triangle inequality gives ``B``. It bounds every particle's ``j != i`` Jacobian block too
    (:func:`interaction_jacobian`, a sub-sum of the same terms), and ``eps * B < 1`` makes the
    mean-field step map ``a -> a + eps phi_q(a)`` invertible on the whole space (the invertible-ResNet
    argument). It costs the scores' norms only (tested against a grid sup and ``jax.jacfwd``).
    ``scores``: ``(m, d)``; returns a scalar.
    """
    norms = jnp.sqrt(jnp.sum(scores * scores, axis=-1) + 1e-30)  # smooth at 0: the rule is differentiated
    return math.exp(-0.5) * jnp.mean(norms) / sigma + alpha / sigma**2


def mean_field_norm(j_int: Array) -> Array:
    """``max_i ||J_i||_F`` over a set's mean-field blocks ``(m, d, d)`` (:func:`interaction_jacobian`):
    an upper bound of the largest spectral norm, smooth in the particles and cheap in any ``d`` (no
    eigen-solver, no second derivative of the energy)."""
    return jnp.max(jnp.sqrt(jnp.sum(j_int * j_int, axis=(-2, -1)) + 1e-30))


def secant_self_term(particles: Array, scores: Array, prev_particles: Array, prev_scores: Array) -> Array:
    """``max_i ||s_i - s_i'|| / (m ||a_i - a_i'||)``: the self term ``||grad^2 E(a_i)|| / m`` estimated
    along each particle's last step ``a_i' -> a_i`` from the scores both steps computed anyway (a
    secant, so ``<= sup ||grad^2 E||`` on the segment: a diagnostic, not a bound). 0 on the first
    step (no previous step). It is what keeps a finite set from overshooting a peak whose curvature
    / m dominates the mean-field block (measured: tests/test_stein.py, periodic peaks)."""
    m = particles.shape[0]
    da = jnp.sum((particles - prev_particles) ** 2, axis=-1)
    ds = jnp.sum((scores - prev_scores) ** 2, axis=-1)
    moved = da > 0
    ratio = jnp.sqrt((ds + 1e-30) / jnp.where(moved, da, 1.0))
    return jnp.max(jnp.where(moved, ratio, 0.0)) / m


def self_term_jacobians(score_fn: ScoreFn, particles: Array) -> Array:
    """``(m, d, d)``: the self terms ``(1/m) grad^2 E(a_i)`` of one set (``d`` JVPs; a diagnostic:
    they bound nothing about the policy's density, but a step with ``eps ||grad^2 E|| / m >> 1``
    overshoots in a finite particle set)."""
    return _batched_self_jacobians(lambda x: score_fn(x[0])[None], particles[None])[0]


def spectral_norm(mats: Array) -> Array:
    """Largest singular value of each ``(..., d, d)`` matrix: ``sqrt(lambda_max(A^T A))``.

    For ``d <= 3`` from the closed-form eigenvalues of the symmetric ``A^T A`` (the quadratic
    formula; the trigonometric solution of the cubic), because a batched SVD of a thousand tiny
    matrices per SVGD step cost a CPU update 40% of its time. Above, an SVD. Tested against
    ``numpy.linalg.norm(ord=2)``.
    """
    d = mats.shape[-1]
    if d > 3:
        return jnp.linalg.norm(mats, ord=2, axis=(-2, -1))
    g = jnp.swapaxes(mats, -1, -2) @ mats
    if d == 1:
        return jnp.sqrt(g[..., 0, 0])
    if d == 2:
        tr = g[..., 0, 0] + g[..., 1, 1]
        det = g[..., 0, 0] * g[..., 1, 1] - g[..., 0, 1] ** 2
        return jnp.sqrt(0.5 * (tr + jnp.sqrt(jnp.maximum(tr * tr - 4.0 * det, 0.0))))
    q = jnp.trace(g, axis1=-2, axis2=-1) / 3.0
    off = g[..., 0, 1] ** 2 + g[..., 0, 2] ** 2 + g[..., 1, 2] ** 2
    diag = sum((g[..., k, k] - q) ** 2 for k in range(3))
    p = jnp.sqrt(jnp.maximum(diag + 2.0 * off, 0.0) / 6.0)
    safe_p = jnp.where(p > 0, p, 1.0)
    shifted = (g - q[..., None, None] * jnp.eye(3, dtype=g.dtype)) / safe_p[..., None, None]
    r = jnp.clip(small_det(shifted) / 2.0, -1.0, 1.0)
    lam = q + 2.0 * p * jnp.cos(jnp.arccos(r) / 3.0)  # p = 0: A^T A = q I
    return jnp.sqrt(jnp.maximum(lam, 0.0))


def small_det(mats: Array) -> Array:
    """Determinant of each ``(..., d, d)`` matrix: cofactor formulas for ``d <= 3``, LU above."""
    d = mats.shape[-1]
    if d == 1:
        return mats[..., 0, 0]
    if d == 2:
        return mats[..., 0, 0] * mats[..., 1, 1] - mats[..., 0, 1] * mats[..., 1, 0]
    if d == 3:
        a = mats
        return (
            a[..., 0, 0] * (a[..., 1, 1] * a[..., 2, 2] - a[..., 1, 2] * a[..., 2, 1])
            - a[..., 0, 1] * (a[..., 1, 0] * a[..., 2, 2] - a[..., 1, 2] * a[..., 2, 0])
            + a[..., 0, 2] * (a[..., 1, 0] * a[..., 2, 1] - a[..., 1, 1] * a[..., 2, 0])
        )
    return jnp.linalg.det(mats)


# ---------------------------------------------------------------------------
# Step control
# ---------------------------------------------------------------------------


def controlled_step(norm: Array, step_size: float | Array, step_control: StepControl, target_margin: float) -> Array:
    """The step ``eps`` of one particle set given ``norm`` (:func:`rule_norm`).

    * ``"fixed"``: ``eps = step_size`` (the authors' rule).
    * ``"adaptive_bound"``: ``eps = min(step_size, target_margin / B)`` with ``B`` the global bound
      :func:`mean_field_lipschitz_bound`: ``eps sup_a ||d phi_q / d a||_2 <= target_margin < 1``, so the
      mean-field step map is invertible on the whole space (proven, not measured), and every
      particle's mean-field block obeys the same margin. ``B`` costs the scores' norms only, so the
      rule and the actor's gradient through it are almost free; it is more cautious than the
      particles' blocks where the scores are large.
    * ``"adaptive"``: ``eps = min(step_size, target_margin / norm)`` with ``norm = max_i ||J_i||_F + c``
      (:func:`mean_field_norm`, ``c`` from :func:`secant_self_term`), so every particle's mean-field
      block has ``||eps J_i||_2 <= ||eps J_i||_F <= target_margin`` (``norm`` also holds the self
      term's secant estimate, :func:`secant_self_term`, for the finite set's stability): the closed form's first-order
      error per step is then ``O(target_margin^2)`` (docs/maths/entropy.md). This margin is a local
      diagnostic (the Jacobian at the particles), not a global invertibility bound; the proven bound
      is :func:`mean_field_lipschitz_bound`. Near a mode the scores shrink and the step grows back to
      ``step_size``; on a steep energy it moves each particle by a fraction of a bandwidth per step.

    The rule is part of the sampler, so ``eps`` is differentiated like everything else: the actor's
    gradient is that of the sampler whose steps move with the parameters (tested against finite
    differences). The Frobenius norm is smooth; the kinks are the ``min`` and the ``max`` over particles.
    """
    step = jnp.asarray(step_size, norm.dtype)
    if step_control == "fixed":
        return step
    return jnp.minimum(step, target_margin / jnp.maximum(norm, 1e-30))


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
    step_control: str = "fixed",
    target_margin: float = DEFAULT_TARGET_MARGIN,
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
    if isinstance(step_size, (int, float)):
        if not (math.isfinite(step_size) and step_size > 0):
            raise ValueError(f"step_size must be finite and > 0; got {step_size!r}")
    elif jnp.ndim(step_size) not in (0, 1) or (jnp.ndim(step_size) == 1 and jnp.shape(step_size) != (steps,)):
        raise ValueError(f"step_size must be a scalar or a schedule of shape ({steps},); got {jnp.shape(step_size)}")
    if isinstance(alpha, (int, float)) and not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be finite and > 0; got {alpha!r}")
    if isinstance(bandwidth, str):
        if bandwidth not in BANDWIDTH_RULES:
            raise ValueError(f"unknown bandwidth rule {bandwidth!r}; expected a float or one of {BANDWIDTH_RULES}")
    elif isinstance(bandwidth, (int, float)) and not (math.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth must be finite and > 0; got {bandwidth!r}")
    canonical_log_density(log_density)
    if normalizer not in NORMALIZERS:
        raise ValueError(f"unknown normalizer {normalizer!r}; expected one of {NORMALIZERS}")
    if step_control not in STEP_CONTROLS:
        raise ValueError(f"unknown step_control {step_control!r}; expected one of {STEP_CONTROLS}")
    if not (isinstance(target_margin, (int, float)) and math.isfinite(target_margin) and 0 < target_margin < 1):
        raise ValueError(f"target_margin must be in (0, 1) (invertibility needs margin < 1); got {target_margin!r}")


def margin_computed(diagnostics: bool, step_control: str) -> bool:
    """Whether the sampler computes the margin of its steps (for diagnostics, or because an adaptive
    rule needs it; either way from the kernel terms and the scores, no second derivative)."""
    return diagnostics or step_control != "fixed"


def rule_norm(
    particles: Array, scores: Array, sigma: Array, alpha: float, step_control: str, prev: tuple[Array, Array] | None
) -> tuple[Array, Array | None]:
    """``(norm, j_int)``: what :func:`controlled_step` divides the target margin by, and the mean-field
    blocks if they were built. ``"adaptive_bound"``: the global bound :func:`mean_field_lipschitz_bound`
    (no blocks); otherwise ``max_i ||J_i||_F`` (:func:`mean_field_norm`) plus the self term's secant
    (:func:`secant_self_term`) when ``prev`` is given."""
    if step_control == "adaptive_bound":
        return mean_field_lipschitz_bound(scores, sigma, alpha), None
    j_int = interaction_jacobian(particles, scores, sigma, alpha)  # kernel terms and scores only
    norm = mean_field_norm(j_int)
    if prev is not None:
        norm = norm + secant_self_term(particles, scores, *prev)
    return norm, j_int


def folding_computed(d: int, log_density: str, diagnostics: bool = True, step_control: str = "fixed") -> bool:
    """Whether :attr:`SVGDResult.folded` is defined (not NaN): it needs ``det(I + eps J_i)`` of a
    Jacobian block, which only the log-det and per-particle density modes compute. (``d``,
    ``diagnostics`` and ``step_control`` no longer matter; kept for callers.)"""
    return canonical_log_density(log_density) in ("mean_field_logdet", *PER_PARTICLE_MODES)


class StepInfo(NamedTuple):
    """Per-set diagnostics of one SVGD step (see :func:`svgd_update`)."""

    bandwidth: Array
    margin: Array
    step: Array
    folded: Array


def svgd_step(
    score_fn: ScoreFn,
    particles: Array,
    *,
    step_size: float,
    bandwidth: Bandwidth = "mean/2",
    alpha: float = 1.0,
    log_density: LogDensityMode = "mean_field",
    normalizer: Normalizer = "m",
    diagnostics: bool = True,
    step_control: StepControl = "fixed",
    target_margin: float = DEFAULT_TARGET_MARGIN,
    key: Array | None = None,
    probed: int | None = None,
) -> tuple[Array, Array, StepInfo]:
    """One SVGD step on one particle set: returns ``(new_particles, delta_log_q, info)``.

    ``delta_log_q`` by mode (all per particle, shape ``(m,)``):

    * ``"mean_field"`` (default; the poster's closed form): ``-eps tr`` of the mean-field map's
      Jacobian at ``a_i`` (``j != i`` terms), first order in ``eps``; first derivatives only.
    * ``"mean_field_logdet"``: ``-log|det(I + eps J_i)|`` of the same ``j != i`` Jacobian (no
      first-order error; ``d x d`` log-dets).
    * ``"per_particle"``: ``-log|det(I + eps d phi_i / d a_i)|`` of one particle's own Jacobian
      block, self term ``(1/m) grad^2 E(a_i)`` included, others and sigma held fixed (``d`` JVPs of
      the score). Not the policy's density: it is the density of ``a_i`` given the other particles,
      whose entropy lies below the marginal's (docs/maths/entropy.md; measured far below k-NN).
    * ``"per_particle_trace"``: its first-order trace (mean field plus ``-(eps/m) tr grad^2 E(a_i)``).
    * ``"per_particle_trace_probe"``: the mean field plus ``-(eps/m)`` times the set's mean self-term
      trace, estimated from one Rademacher probe at each of ``probed`` particles
      (:func:`self_trace_probe`: unbiased for the set's mean, one JVP on ``probed`` rows per step in any
      ``d``; needs ``key``). Its mean over the set, which is what every use reads, estimates that of
      ``"per_particle_trace"``.
    * ``"none"``: zeros (skip the accounting).

    Earlier names (:data:`LOG_DENSITY_ALIASES`) are accepted.

    ``info.margin = eps * max_i ||J_i||_F`` over the mean-field blocks at the particles (a local
    diagnostic from first derivatives; :func:`mean_field_lipschitz_bound` is the global bound), or
    ``eps * B`` of that bound under ``step_control="adaptive_bound"``; NaN when ``diagnostics=False``
    under the fixed rule. ``info.folded``: fraction of particles whose
    Jacobian block has ``det(I + eps J_i) <= 0`` (log-det and per-particle modes; NaN otherwise).
    ``info.step``: the ``eps`` used (see :func:`controlled_step`).
    """
    log_density = canonical_log_density(log_density)
    sigma = resolve_bandwidth(particles, bandwidth)
    single = lambda x: score_fn(x[0])[None]  # noqa: E731 - one set as a batch of one
    scores = score_fn(particles)
    j_self = _self_term(single, particles[None], log_density)
    _check_probe_args(log_density, key, probed, particles.shape[0])
    trace = _probe_trace(single, particles[None], log_density, key, probed)
    return svgd_update(
        particles,
        scores,
        sigma,
        None if j_self is None else j_self[0],
        self_trace=None if trace is None else trace[0],
        step_size=step_size,
        alpha=alpha,
        log_density=log_density,
        normalizer=normalizer,
        diagnostics=diagnostics,
        step_control=step_control,
        target_margin=target_margin,
    )


def _self_term(score_fn: ScoreFn, particles: Array, log_density: str) -> Array | None:
    """The self-term Jacobians ``(B, m, d, d)`` for a batch ``(B, m, d)`` when the density mode needs
    them (the per-particle modes), else None: the step rule never does."""
    if log_density in PER_PARTICLE_MODES:
        return _batched_self_jacobians(score_fn, particles)
    return None


def _check_probe_args(log_density: str, key: Array | None, probed: int | None, m: int) -> bool:
    """Whether the mode probes the self term; ``ValueError`` for a ``probed`` outside ``[1, m]``, or for a
    missing key in the probe mode."""
    if probed is not None and not (isinstance(probed, int) and 1 <= probed <= m):
        raise ValueError(f"probed must be an int in [1, m={m}] or None; got {probed!r}")
    if log_density not in PROBE_MODES:
        return False
    if key is None:
        raise ValueError(f"log_density={log_density!r} draws a random probe per step: pass key=")
    return True


def _probe_keys(log_density: str, key: Array | None, probed: int | None, m: int, steps: int) -> Array | None:
    """One probe key per step ``(steps, ...)`` in the probe mode (None otherwise); see :func:`_check_probe_args`."""
    return jax.random.split(key, steps) if _check_probe_args(log_density, key, probed, m) else None


def _probe_trace(score_fn: ScoreFn, particles: Array, log_density: str, key: Array, probed: int | None) -> Array | None:
    """:func:`self_trace_probe` ``(B,)`` when the mode estimates the self term's trace, else None (the
    arguments checked by :func:`_check_probe_args`)."""
    return self_trace_probe(score_fn, particles, key, probed) if log_density in PROBE_MODES else None


def svgd_update(
    particles: Array,
    scores: Array,
    sigma: Array,
    j_self: Array | None,
    prev: tuple[Array, Array] | None = None,
    *,
    self_trace: Array | None = None,
    step_gradient: bool = True,
    step_size: float | Array,
    alpha: float,
    log_density: LogDensityMode,
    normalizer: Normalizer,
    diagnostics: bool,
    step_control: StepControl,
    target_margin: float,
) -> tuple[Array, Array, StepInfo]:
    """The body of :func:`svgd_step` once the scores (and, in the per-particle modes, the self-term
    Jacobians ``(m, d, d)`` ``(1/m) grad s(a_i)``) are known; same outputs. ``prev``: the previous
    step's ``(particles, scores)`` for the self term's secant (:func:`secant_self_term`), or None.
    ``self_trace``: a scalar, the probe estimate of the set's mean ``tr grad^2 E(a_i) / m`` (probe mode
    only; :func:`self_trace_probe`), which every particle's ``Delta log q`` carries.
    ``log_density``: a canonical name."""
    m, d = particles.shape
    phi = svgd_direction(particles, scores, sigma, alpha)
    n_norm = m if normalizer == "m" else m - 1
    eye = jnp.eye(d, dtype=particles.dtype)
    nan = jnp.asarray(jnp.nan, particles.dtype)

    norm, j_int = nan, None
    if margin_computed(diagnostics, step_control):
        norm, j_int = rule_norm(particles, scores, sigma, alpha, step_control, prev)
    if j_int is None and log_density in ("per_particle", "mean_field_logdet"):
        j_int = interaction_jacobian(particles, scores, sigma, alpha)  # kernel terms and scores only
    step = controlled_step(norm, step_size, step_control, target_margin)
    if not step_gradient:  # the ablation: the chosen eps as a schedule that ignores the parameters
        step = jax.lax.stop_gradient(step)

    folded = nan
    if log_density == "mean_field":
        delta = closed_form_log_q_change(particles, scores, sigma, alpha, step, n_norm)
    elif log_density == "per_particle_trace":
        delta = closed_form_log_q_change(particles, scores, sigma, alpha, step, n_norm)
        delta = delta - step * jnp.trace(j_self, axis1=-2, axis2=-1)
    elif log_density == "per_particle_trace_probe":
        delta = closed_form_log_q_change(particles, scores, sigma, alpha, step, n_norm) - step * self_trace
    elif log_density in ("per_particle", "mean_field_logdet"):
        sign, log_abs = jnp.linalg.slogdet(eye + step * (j_int + j_self if log_density == "per_particle" else j_int))
        delta = -log_abs
        # slogdet drops the sign: a folded step must not pass unflagged
        folded = jnp.mean((jax.lax.stop_gradient(sign) <= 0).astype(particles.dtype))
    else:
        delta = jnp.zeros((m,), particles.dtype)
    if log_density == "per_particle_trace":
        j_full = (j_int if j_int is not None else interaction_jacobian(particles, scores, sigma, alpha)) + j_self
        det = small_det(eye + jax.lax.stop_gradient(step * j_full))
        folded = jnp.mean((det <= 0).astype(particles.dtype))
    margin = jax.lax.stop_gradient(step * norm)
    return particles + step * phi, delta, StepInfo(sigma, margin, jax.lax.stop_gradient(step), folded)


def svgd_sample(
    score_fn: ScoreFn,
    particles: Array,
    log_q0: Array,
    *,
    steps: int,
    step_size: float | Array,
    bandwidth: Bandwidth = "mean/2",
    alpha: float = 1.0,
    log_density: LogDensityMode = "mean_field",
    normalizer: Normalizer = "m",
    diagnostics: bool = True,
    trajectory: bool = False,
    unroll: bool = False,
    step_control: StepControl = "fixed",
    target_margin: float = DEFAULT_TARGET_MARGIN,
    key: Array | None = None,
    probed: int | None = None,
    step_gradient: bool = True,
    bandwidth_gradient: bool = False,
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
        step_size: ``eps`` (``"fixed"``), or its upper bound (``"adaptive"``); a scalar, or a
            schedule of shape ``(steps,)`` (e.g. the ``step_size`` of an adaptive run, to replay it).
        bandwidth: a fixed sigma, or a rule re-evaluated on the particles at every step.
        alpha: temperature multiplying the repulsion (and the density terms).
        log_density: accounting mode, see :func:`svgd_step`.
        normalizer: ``"m"`` (poster) or ``"m-1"`` (authors' code) in the closed form.
        diagnostics: compute the per-step invertibility margin under the fixed rule (cheap).
        trajectory: also return particles and log-densities after every step.
        unroll: fully unroll the scan in the compiled graph (small ``L``; exact FLOP counts).
        step_control: ``"fixed"``, ``"adaptive"`` or ``"adaptive_bound"`` (see :func:`controlled_step`).
        target_margin: the margin the adaptive rule keeps every step below (in ``(0, 1)``).
        key: the probes' key (``log_density="per_particle_trace_probe"`` only; the particles'
            path does not depend on it).
        probed: particles per set whose self term is probed (the first ones; None: all ``m``).
        step_gradient: differentiate through the adaptive rule's ``eps`` (default); False treats the
            chosen steps as a schedule (``stop_gradient``), an ablation whose actor gradient is biased
            wherever the rule binds (docs/maths/entropy.md §4).
        bandwidth_gradient: differentiate through a rule bandwidth (sigma moves with the particles);
            False (default) treats it as a schedule. The density accounting never differentiates
            sigma: in the mean-field limit it is a functional of q, not of one particle.
    """
    particles = jnp.asarray(particles)
    log_q0 = jnp.asarray(log_q0, dtype=particles.dtype)
    validate_svgd_args(
        particles, log_q0, steps, step_size, bandwidth, alpha, log_density, normalizer, step_control, target_margin
    )
    options = dict(steps=steps, step_size=step_size, bandwidth=bandwidth, alpha=alpha, log_density=log_density)
    options.update(normalizer=normalizer, diagnostics=diagnostics, trajectory=trajectory, unroll=unroll)
    options.update(step_control=step_control, target_margin=target_margin, key=key, probed=probed)
    options.update(step_gradient=step_gradient, bandwidth_gradient=bandwidth_gradient)
    # One set as a batch of one: the same code path as the agents' batched sampler.
    result = svgd_sample_batched(lambda x: score_fn(x[0])[None], particles[None], log_q0[None], **options)
    return SVGDResult(*(None if field is None else field[0] for field in result))


def check_batched_shapes(particles: Array, log_q0: Array) -> None:
    """``ValueError`` unless ``particles`` is ``(B, m, d)`` and ``log_q0`` is ``(B, m)``."""
    if particles.ndim != 3:
        raise ValueError(f"particles must have shape (B, m, d); got shape {tuple(particles.shape)}")
    if log_q0.shape != particles.shape[:2]:
        raise ValueError(
            f"log_q0 must have shape {tuple(particles.shape[:2])} to match particles; got {tuple(log_q0.shape)}"
        )


def svgd_sample_batched(
    score_fn: ScoreFn,
    particles: Array,
    log_q0: Array,
    *,
    steps: int,
    step_size: float | Array,
    bandwidth: Bandwidth = "mean/2",
    alpha: float = 1.0,
    log_density: LogDensityMode = "mean_field",
    normalizer: Normalizer = "m",
    diagnostics: bool = True,
    trajectory: bool = False,
    unroll: bool = False,
    step_control: StepControl = "fixed",
    target_margin: float = DEFAULT_TARGET_MARGIN,
    key: Array | None = None,
    probed: int | None = None,
    step_gradient: bool = True,
    bandwidth_gradient: bool = False,
) -> SVGDResult:
    """:func:`svgd_sample` for ``B`` independent particle sets at once, with ONE score call per step.

    ``particles``: ``(B, m, d)``; ``log_q0``: ``(B, m)``; ``score_fn`` maps ``(B, m, d)`` to its
    ``(B, m, d)`` energy gradients, row-wise (set ``b`` may have its own energy, e.g. its own state).
    Equal to ``jax.vmap`` of :func:`svgd_sample` (tested); the difference is for the compiler:
    under ``vmap`` the score's network sees the set axis outside its own batch axes, which on a
    CPU costs a transpose of every hidden activation, while here it sees one flat batch. The
    result has a leading ``B`` axis on every field (per-step fields: ``(B, L)``). Each set gets
    its own adaptive step.
    """
    particles = jnp.asarray(particles)
    log_q0 = jnp.asarray(log_q0, dtype=particles.dtype)
    check_batched_shapes(particles, log_q0)
    args = (steps, step_size, bandwidth, alpha, log_density, normalizer, step_control, target_margin)
    validate_svgd_args(particles[0], log_q0[0], *args)
    log_density = canonical_log_density(log_density)
    options = dict(alpha=alpha, log_density=log_density, normalizer=normalizer, diagnostics=diagnostics)
    options.update(step_control=step_control, target_margin=target_margin, step_gradient=step_gradient)
    step = functools.partial(svgd_update, **options)
    # Every set has its own particles, scores and bandwidth; the step schedule entry is shared.
    update = jax.vmap(
        lambda a, s, sigma, j, prev, tr, eps: step(a, s, sigma, j, prev, self_trace=tr, step_size=eps),
        (0, 0, 0, 0, 0, 0, None),
    )
    probe_keys = _probe_keys(log_density, key, probed, particles.shape[1], steps)

    def body(carry, xs):
        eps, step_key = xs
        a, log_q, prev = carry
        sigma = jax.vmap(lambda x: resolve_bandwidth(x, bandwidth, bandwidth_gradient))(a)
        scores = score_fn(a)
        j_self = _self_term(score_fn, a, log_density)
        trace = _probe_trace(score_fn, a, log_density, step_key, probed)
        a_next, delta, info = update(a, scores, sigma, j_self, prev, trace, eps)
        out = (info, a_next, log_q + delta) if trajectory else (info,)
        return (a_next, log_q + delta, (a, scores)), out

    schedule = jnp.broadcast_to(jnp.asarray(step_size, particles.dtype), (steps,))
    first = (particles, jnp.zeros_like(particles))  # no previous step: the secant is 0 on step 0
    (a_final, log_q_final, _), outs = jax.lax.scan(
        body, (particles, log_q0, first), (schedule, probe_keys), length=steps, unroll=max(steps, 1) if unroll else 1
    )
    per_set = jax.tree_util.tree_map(lambda x: jnp.moveaxis(x, 0, 1), outs)  # (L, B, ...) -> (B, L, ...)
    info = per_set[0]
    traj = log_q_traj = None
    if trajectory:
        traj = jnp.concatenate([particles[:, None], per_set[1]], axis=1)
        log_q_traj = jnp.concatenate([log_q0[:, None], per_set[2]], axis=1)
    return SVGDResult(a_final, log_q_final, info.bandwidth, info.margin, info.step, info.folded, traj, log_q_traj)


def stein_entropy(log_q: Array) -> Array:
    """Particle entropy estimate ``H ~= -(1/m) sum_i log q^L(a_i^L)`` (REFERENCE.md §1)."""
    return -jnp.mean(log_q, axis=-1)
