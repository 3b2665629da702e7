"""Actor parts: how a policy draws actions, what it knows of their density, and how it is trained.

An actor sees the critic only through a q function ``q_fn(obs, action) -> Q_k(s, a)`` of shape
``(n_critics, *batch)`` (the critic part's :meth:`~s2ac.parts.critics.TwinCritic.q` at fixed
parameters, in evaluation mode).

Protocol (:class:`Actor`):

* ``fields``: the names of its ``(params, opt_state)`` in the agent's state (unchanged from the
  agents' own, so checkpoints keep their structure);
* ``init(key) -> (params, opt_state)``;
* ``sample(params, q_fn, obs, key, alpha) -> Draw``: actions with a log-density record whose
  ``kind`` is one of :data:`LOG_DENSITIES`;
* ``next(params, q_fn, batch, key, alpha) -> NextActions``: what the critic's bootstrap uses at
  ``s'`` (:class:`~s2ac.parts.critics.NextActions`), and ``next_metrics(next)`` what it reports of it;
* ``loss(params, q_fn, obs, key, alpha) -> (loss, metrics)`` and ``step(...)``: one gradient step
  on it (:func:`~s2ac.parts.base.gradient_step`), reporting :attr:`Actor.metrics`;
* ``entropy_from``: where the temperature reads the policy's entropy (``"step"``: the actor step's
  ``entropy`` metric; ``"next"``: the next-state draws'; ``None``: no density).

Kinds:

* :class:`DensityActor` (``gaussian``, ``flow``): one reparameterised draw per state with its
  exact log-density (SAC, SAC-NF, CrossQ).
* :class:`SVGDActor` (``svgd``): ``m`` particles per state moved by ``L`` SVGD steps from q0; the
  log-density is S²AC's closed form (or, for the per-particle modes, a bound below the truth);
  S²AC(phi,theta) trains q0 through the sampler, S²AC(phi) has no parameters.
* :class:`AmortizedSVGDActor` (``amortized-svgd``): SQL's sampler ``f(s, xi)`` trained by amortized
  SVGD; no density, so its ``next`` record holds uniform importance samples on the box.
* :class:`Amortizer` (``amortizer``): S²AC's amortized sampler ``g(s, xi)``, a follower trained
  after the update on the leader's particles (MMD); no density.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import flax
import jax
import jax.numpy as jnp

from s2ac import stein
from s2ac.distributions import ActionBox, normal_log_prob, squash, squash_log_det, truncated_normal_sample
from s2ac.parts.base import gradient_step
from s2ac.parts.critics import NextActions, broadcast_obs, density_next
from s2ac.types import Array, Batch, Metrics

QFn = Callable[[Array, Array], Array]
"""``q_fn(obs, action) -> Q_k(s, a)``, shape ``(n_critics, *batch)``."""

LOG_DENSITIES: tuple[str, ...] = ("exact", "closed_form", "lower_bound", "none")
"""What a :class:`Draw`'s ``log_prob`` is: the exact log-density (change of variables), S²AC's closed
form through the SVGD steps, a bound below the truth, or nothing (no tractable density)."""

LOWER_BOUND_MODES: tuple[str, ...] = ("per_particle", "per_particle_trace")
"""S²AC log-density modes that account for one particle's own Jacobian block only: a conditional
density, below the truth (:mod:`s2ac.stein`)."""


@flax.struct.dataclass
class Draw:
    """An actor's draw: ``action`` ``(B, d)`` or ``(B, n, d)``, its log-density record ``log_prob``
    (``None`` for kind ``"none"``), the record's ``kind`` and the actor's own ``extra`` output."""

    action: Array
    log_prob: Array | None
    kind: str = flax.struct.field(pytree_node=False, default="none")
    extra: Any = None


def min_q(q_fn: QFn, obs: Array, action: Array) -> Array:
    """``min_k Q_k(s, a)``: shape ``action.shape[:-1]`` (``obs`` repeated over a sample axis)."""
    return jnp.min(q_fn(broadcast_obs(obs, action), action), axis=0)


def energy(q_fn: QFn, box: ActionBox, obs: Array, u: Array, squashed: bool, alpha: Any) -> Array:
    """SVGD energy ``alpha log p`` of points ``u`` (..., n, d) at states ``obs`` (..., o): shape (..., n).

    ``squashed``: ``min_k Q_k(s, squash(u)) + alpha log|det d squash/du|``, i.e. ``alpha`` times the log
    of the push-forward target ``exp(Q/alpha) |squash'(u)|`` on the pre-squash ``u`` (REFERENCE.md §1
    "Squashing"); otherwise ``min_k Q_k(s, u)`` at ``u`` taken as an action.
    """
    obs_rep = jnp.broadcast_to(obs[..., None, :], (*u.shape[:-1], obs.shape[-1]))
    if not squashed:
        return jnp.min(q_fn(obs_rep, u), axis=0)
    q = jnp.min(q_fn(obs_rep, squash(u, box)), axis=0)
    return q + alpha * squash_log_det(u, box)


class Actor(Protocol):
    """The actor protocol (see the module docstring)."""

    name: str
    kind: str
    fields: tuple[str, str]
    metrics: tuple[str, ...]
    entropy_from: str | None

    def init(self, key: Array) -> tuple[Any, Any]: ...

    def sample(self, params: Any, q_fn: QFn, obs: Array, key: Array, alpha: Any = None) -> Draw: ...

    def next(self, params: Any, q_fn: QFn, batch: Batch, key: Array, alpha: Any) -> NextActions: ...

    def next_metrics(self, next: NextActions) -> Metrics: ...

    def loss(self, params: Any, q_fn: QFn, obs: Array, key: Array, alpha: Any) -> tuple[Array, Any]: ...

    def step(
        self, params: Any, opt: Any, q_fn: QFn, obs: Array, key: Array, alpha: Any
    ) -> tuple[Any, Any, Metrics]: ...


# ---------------------------------------------------------------------------
# Density actors: SAC's tanh-Gaussian, SAC-NF's flow
# ---------------------------------------------------------------------------


def soft_policy_objective(action: Array, log_prob: Array, q_fn: QFn, obs: Array, alpha: Any) -> tuple[Array, Metrics]:
    """``E_s[ alpha log pi(a|s) - min_k Q_k(s, a) ]`` (SAC, Haarnoja et al. 2018b, Eq. 7) and the entropy
    estimate ``-E[log pi]``."""
    q = jnp.min(q_fn(obs, action), axis=0)
    return jnp.mean(alpha * log_prob - q), {"entropy": -jnp.mean(log_prob)}


class DensityActor:
    """Reparameterised draws ``a = squash(u)`` with their exact ``log pi(a|s)`` (SAC, SAC-NF, CrossQ).

    ``net(obs) -> (first, second)``: the Gaussian head's ``(mean, log_std)``, or a flow policy's
    ``(u, log q(u|s))`` at the mean noise; ``first`` squashed is the deterministic action.
    ``sample_action(params, obs, key) -> (action, log_prob)`` is the draw and
    ``objective(action, log_prob, q_fn, obs, alpha) -> (loss, metrics)`` the actor's loss at the draws
    (the agent's methods, so an agent subclass that overrides them changes the update too);
    :meth:`gaussian_action` and :func:`soft_policy_objective` are SAC's. ``entropy_metric``: the metric
    a tuned temperature reads; ``kind``: what ``log_prob`` is (:data:`LOG_DENSITIES`). ``renorm``: a
    batch-renormalised Gaussian head (CrossQ's ``brn_actor``), trained in training mode
    (:meth:`renorm_loss`), drawn from with its running statistics.
    """

    fields = ("actor_params", "actor_opt")
    metrics = ("actor_loss", "entropy")
    entropy_from = "step"

    def __init__(
        self,
        net: Any,
        box: ActionBox,
        tx: Any,
        obs_dim: int,
        sample_action: Callable[[Any, Array, Array], tuple[Array, Array]] | None = None,
        renorm: bool = False,
        name: str = "gaussian",
        objective: Callable[..., tuple[Array, Metrics]] | None = None,
        entropy_metric: str = "entropy",
        kind: str = "exact",
    ):
        self.net, self.box, self.tx, self.obs_dim, self.renorm, self.name = net, box, tx, obs_dim, renorm, name
        self.sample_action = self.gaussian_action if sample_action is None else sample_action
        self.objective = soft_policy_objective if objective is None else objective
        self.entropy_metric, self.kind = entropy_metric, kind

    def init(self, key: Array) -> tuple[Any, Any]:
        """The network and its optimiser state (a batch-renormalised network's optimiser covers its
        weights, not its running statistics)."""
        params = self.net.init(key, jnp.zeros((1, self.obs_dim)))
        if self.renorm:
            params = {"params": params["params"], "batch_stats": params["batch_stats"]}
            return params, self.tx.init(params["params"])
        return params, self.tx.init(params)

    def draw(self, mean: Array, log_std: Array, key: Array) -> tuple[Array, Array]:
        """``u = mu + std * xi``, ``a = squash(u)`` and ``log pi(a|s) = log N(u; mu, std) - log|det d squash/du|``."""
        std = jnp.exp(log_std)
        u = mean + std * jax.random.normal(key, mean.shape)
        log_prob = normal_log_prob(u, mean, std) - squash_log_det(u, self.box)
        return squash(u, self.box), log_prob

    def gaussian_action(self, params: Any, obs: Array, key: Array) -> tuple[Array, Array]:
        """A tanh-Gaussian draw and its log-density (running statistics for a batch-renormalised head)."""
        return self.draw(*self.net.apply(params, obs), key)

    def sample(self, params: Any, q_fn: QFn, obs: Array, key: Array, alpha: Any = None) -> Draw:
        action, log_prob = self.sample_action(params, obs, key)
        return Draw(action, log_prob, self.kind)

    def act(self, params: Any, obs: Array, key: Array, mode: str) -> Array:
        """``"random"``, ``"softmax"``: a policy draw; ``"max"``, ``"mean"``: the squashed mean pass."""
        if mode in ("random", "softmax"):
            return self.sample_action(params, obs, key)[0]
        return squash(self.net.apply(params, obs)[0], self.box)

    def next(self, params: Any, q_fn: QFn, batch: Batch, key: Array, alpha: Any) -> NextActions:
        """One ``a' ~ pi(.|s')`` per next state: ``V(s') = min_k Q(s', a') - alpha log pi(a'|s')``."""
        action, log_prob = self.sample_action(params, batch.next_obs, key)
        return density_next(action, log_prob, alpha)

    def next_metrics(self, next: NextActions) -> Metrics:
        return {}

    def loss(self, params: Any, q_fn: QFn, obs: Array, key: Array, alpha: Any) -> tuple[Array, Metrics]:
        """:meth:`objective` with ``a`` reparameterised in ``params``."""
        action, log_prob = self.sample_action(params, obs, key)
        return self.objective(action, log_prob, q_fn, obs, alpha)

    def renorm_loss(self, weights: Any, batch_stats: Any, q_fn: QFn, obs: Array, key: Array, alpha: Any):
        """:meth:`loss` of a batch-renormalised head in training mode; aux: ``(metrics, new batch_stats)``."""
        variables = {"params": weights, "batch_stats": batch_stats}
        (mean, log_std), updates = self.net.apply(variables, obs, train=True, mutable=["batch_stats"])
        action, log_prob = self.draw(mean, log_std, key)
        loss, info = self.objective(action, log_prob, q_fn, obs, alpha)
        return loss, (info, updates["batch_stats"])

    def step(self, params: Any, opt: Any, q_fn: QFn, obs: Array, key: Array, alpha: Any) -> tuple[Any, Any, Metrics]:
        if self.renorm:
            weights, opt, loss, (info, stats) = gradient_step(
                self.tx, self.renorm_loss, params["params"], opt, params["batch_stats"], q_fn, obs, key, alpha
            )
            params = {"params": weights, "batch_stats": stats}
        else:
            params, opt, loss, info = gradient_step(self.tx, self.loss, params, opt, q_fn, obs, key, alpha)
        return params, opt, {"actor_loss": loss, **info}


# ---------------------------------------------------------------------------
# SVGD actor: S²AC(phi,theta) and S²AC(phi)
# ---------------------------------------------------------------------------


class Particles(NamedTuple):
    """The SVGD sampler's output for a batch of states (leading axes ``(B, m)``)."""

    u: Array  # pre-squash particles u^L
    action: Array  # executed actions squash(u^L)
    log_prob: Array  # log pi(a|s) with the tanh correction
    bandwidth: Array  # (B, L)
    invertibility_margin: Array  # (B, L)
    step_size: Array  # (B, L) steps actually taken
    folded: Array  # (B, L) fraction of particles whose step map folded (det <= 0)


def keep_wide_matmuls(min_contraction: int):
    """``jax.checkpoint`` policy: save the output of every matrix product that contracts over at least
    ``min_contraction`` elements (the critic's hidden-to-hidden products and their transposes), and
    recompute everything else. Those products are most of the FLOPs of a recomputation, while their
    outputs are a few tensors per SVGD step; the element-wise passes are cheap to redo.
    """

    def policy(prim, *avals, **params) -> bool:
        if prim is not jax.lax.dot_general_p:
            return False
        (lhs_contracting, _), _ = params["dimension_numbers"]
        return math.prod(avals[0].shape[d] for d in lhs_contracting) >= min_contraction

    return policy


def particle_diagnostics(particles: Particles, with_margin: bool = True, with_folding: bool = True) -> Metrics:
    """Entropy estimate per state batch, particle spread, bandwidth, step size and, where the sampler
    computed them (``with_margin`` / ``with_folding``; see :attr:`SVGDActor.diagnostics_available`),
    the invertibility margin's max and median over states, the fraction of states with a step at
    margin >= 1, and the fraction of folded particle steps."""
    metrics = {
        "entropy": -jnp.mean(particles.log_prob),
        "particle_spread": jnp.mean(jnp.std(particles.action, axis=1)),
    }
    if particles.bandwidth.shape[-1] == 0:  # L = 0: the policy is q0 itself, no SVGD step to report
        return metrics
    metrics.update(bandwidth=jnp.mean(particles.bandwidth), svgd_step_size=jnp.mean(particles.step_size))
    if with_margin:
        per_state = jnp.max(particles.invertibility_margin, axis=-1)  # the worst step of each state
        metrics.update(
            invertibility_margin=jnp.max(per_state),
            invertibility_margin_median=jnp.median(per_state),
            invalid_state_fraction=jnp.mean(per_state >= 1.0),
        )
    if with_folding:
        metrics["folded_fraction"] = jnp.mean(particles.folded)
    return metrics


class SVGDActor:
    """S²AC's sampler: ``m`` particles per state from q0, moved by ``L`` SVGD steps on
    ``exp(Q/alpha)`` (REFERENCE.md §1). ``config``: an S²AC config (sampler fields); ``init_net``:
    the learned q0's Gaussian head (used when ``config.init == "learned"``; S²AC(phi) has none).
    ``log pi(a|s) = log q^L(u^L|s) - log|det d squash/du|``.
    """

    name = "svgd"
    fields = ("init_params", "init_opt")
    metrics = ("actor_loss", "init_std", "init_mean_abs", "actor_invertibility_margin")
    entropy_from = "next"

    def __init__(self, config: Any, box: ActionBox, act_dim: int, obs_dim: int, init_net: Any, tx: Any):
        self.config, self.box, self.act_dim, self.obs_dim = config, box, act_dim, obs_dim
        self.init_net, self.tx = init_net, tx
        self.learned = config.init == "learned"
        mode = stein.canonical_log_density(config.log_density)
        self.kind = "lower_bound" if mode in LOWER_BOUND_MODES else "closed_form"

    def init(self, key: Array) -> tuple[Any, Any]:
        """The learned q0 network and its optimiser state (``(None, None)`` for the fixed q0)."""
        if not self.learned:
            return None, None
        params = self.init_net.init(key, jnp.zeros((1, self.obs_dim)))
        return params, self.tx.init(params)

    def sampler_alpha(self, alpha: Any) -> Any:
        """The sampler's temperature: the config's ``sampler_alpha`` if set, else ``alpha``."""
        return alpha if self.config.sampler_alpha is None else self.config.sampler_alpha

    @property
    def diagnostics_available(self) -> tuple[bool, bool]:
        """``(margin, folding)``: which step diagnostics the next-state particles (sampled with
        ``diagnostics=log_margin``) carry; see :func:`s2ac.stein.margin_computed`."""
        cfg = self.config
        return (
            stein.margin_computed(cfg.log_margin, cfg.svgd_step_control),
            stein.folding_computed(self.act_dim, cfg.log_density, cfg.log_margin, cfg.svgd_step_control),
        )

    def initial_particles(self, params: Any, obs: Array, key: Array) -> tuple[Array, Array]:
        """``(u0, log q0(u0))`` of shape ``(B, m, d)`` and ``(B, m)``."""
        cfg = self.config
        shape = (obs.shape[0], cfg.n_particles, self.act_dim)
        if not self.learned:
            u0 = cfg.init_std * jax.random.normal(key, shape)
            return u0, normal_log_prob(u0, 0.0, cfg.init_std)
        mean, log_std = self.init_net.apply(params, obs)
        mean = jnp.broadcast_to(mean[:, None, :], shape)
        std = jnp.broadcast_to(jnp.exp(log_std)[:, None, :], shape)
        u0, log_q0 = truncated_normal_sample(key, mean, std, cfg.truncation)
        if cfg.init_density == "untruncated":
            log_q0 = normal_log_prob(u0, mean, std)
        return u0, log_q0

    def energy(self, q_fn: QFn, obs: Array, u: Array, sampler_alpha: Any) -> Array:
        """:func:`energy` in the config's ``score_space`` (``"squashed"``: the push-forward target)."""
        return energy(q_fn, self.box, obs, u, self.config.score_space == "squashed", sampler_alpha)

    def sample_particles(
        self, params: Any, q_fn: QFn, obs: Array, key: Array, diagnostics: bool, sampler_alpha: Any
    ) -> Particles:
        """Draw ``m`` particles per state from q0 and move them with ``L`` SVGD steps.
        ``diagnostics=False`` skips the per-step invertibility margin (NaN then) where nobody reads it."""
        cfg = self.config
        u0, log_q0 = self.initial_particles(params, obs, key)
        # Rows are independent, so the gradient of the summed energy is the row-wise score; one
        # call scores every state's particles (no vmap over states: see svgd_sample_batched).
        score_fn = jax.grad(lambda u: jnp.sum(self.energy(q_fn, obs, u, sampler_alpha)))
        if cfg.remat_score:  # only changes what the actor's backward pass stores
            keep_matmuls = cfg.remat_keep_matmuls if cfg.remat_keep_matmuls is not None else cfg.svgd_steps <= 3
            keep = keep_wide_matmuls(min(cfg.critic_hidden)) if keep_matmuls else None
            score_fn = jax.checkpoint(score_fn, policy=keep)
        res = stein.svgd_sample_batched(
            score_fn,
            u0,
            log_q0,
            steps=cfg.svgd_steps,
            step_size=cfg.svgd_step_size,
            bandwidth=cfg.bandwidth,
            alpha=sampler_alpha,
            log_density=cfg.log_density,
            normalizer=cfg.normalizer,
            unroll=cfg.unroll_svgd,
            step_control=cfg.svgd_step_control,
            target_margin=cfg.svgd_target_margin,
            diagnostics=diagnostics,
            key=jax.random.fold_in(key, 1),  # the self-term probes (probe mode only); u0 keeps ``key``
            probed=cfg.self_term_probes,
            step_gradient=cfg.svgd_step_gradient,
            bandwidth_gradient=cfg.bandwidth_gradient,
        )
        log_prob = res.log_q - squash_log_det(res.particles, self.box)
        return Particles(
            res.particles,
            squash(res.particles, self.box),
            log_prob,
            res.bandwidth,
            res.invertibility_margin,
            res.step_size,
            res.folded,
        )

    def sample(
        self, params: Any, q_fn: QFn, obs: Array, key: Array, alpha: Any = None, diagnostics: bool = True
    ) -> Draw:
        alpha = self.config.alpha if alpha is None else alpha
        particles = self.sample_particles(params, q_fn, obs, key, diagnostics, self.sampler_alpha(alpha))
        return Draw(particles.action, particles.log_prob, self.kind, particles)

    def next(self, params: Any, q_fn: QFn, batch: Batch, key: Array, alpha: Any) -> NextActions:
        """Particles at ``s'`` (drift from the online critic, outside the critic's gradient):
        ``V(s') = (1/m) sum_j [min_k Q(s', a'_j) - alpha log pi(a'_j|s')]``."""
        particles = jax.lax.stop_gradient(
            self.sample_particles(params, q_fn, batch.next_obs, key, self.config.log_margin, self.sampler_alpha(alpha))
        )
        return dataclasses.replace(density_next(particles.action, particles.log_prob, alpha), draw=particles)

    def next_metrics(self, next: NextActions) -> Metrics:
        """:func:`particle_diagnostics` of the next-state particles (their entropy drives a tuned alpha)."""
        return particle_diagnostics(next.draw, *self.diagnostics_available)

    def loss(
        self, params: Any, q_fn: QFn, obs: Array, key: Array, alpha: Any, sampler_alpha: Any = None
    ) -> tuple[Array, Metrics]:
        """``E_s[ alpha (1/m) sum_i log pi(a_i|s) - (1/m) sum_i min_k Q_k(s, a_i) ]`` through the sampler,
        as a function of the q0 network's parameters."""
        sampler_alpha = self.sampler_alpha(alpha) if sampler_alpha is None else sampler_alpha
        particles = self.sample_particles(params, q_fn, obs, key, False, sampler_alpha)
        q = min_q(q_fn, obs, particles.action)
        loss = jnp.mean(alpha * particles.log_prob - q)
        mean, log_std = self.init_net.apply(params, obs)
        info = {"init_std": jnp.mean(jnp.exp(log_std)), "init_mean_abs": jnp.mean(jnp.abs(mean))}
        # The actor pass samples with diagnostics=False: a margin exists only if the step rule needed it.
        if stein.margin_computed(False, self.config.svgd_step_control) and self.config.svgd_steps > 0:
            info["actor_invertibility_margin"] = jnp.max(particles.invertibility_margin)
        return loss, info

    def step(self, params: Any, opt: Any, q_fn: QFn, obs: Array, key: Array, alpha: Any) -> tuple[Any, Any, Metrics]:
        """One q0 step through the sampler (S²AC(phi,theta)); nothing for S²AC(phi)."""
        if not self.learned:
            return params, opt, {}
        params, opt, loss, info = gradient_step(self.tx, self.loss, params, opt, q_fn, obs, key, alpha)
        return params, opt, {"actor_loss": loss, **info}


# ---------------------------------------------------------------------------
# Amortized samplers: SQL's, and S²AC's amortizer
# ---------------------------------------------------------------------------


def box_log_volume(box: ActionBox) -> float:
    """``log vol(box) = sum_k log(high_k - low_k) = sum_k log(2 scale_k)`` (``d log 2`` for ``[-1, 1]^d``)."""
    return float(jnp.sum(jnp.log(2.0 * jnp.asarray(box.scale))))


def soft_value_uniform(q: Array, alpha: float, log_volume: float) -> Array:
    """Soft value by importance sampling from the uniform distribution ``U`` on the action box (SQL Eq. 10).

    ``V = alpha log E_{a~U}[exp(Q(a)/alpha) / U(a)]`` with ``U(a) = 1/vol``, estimated from ``M`` samples
    ``q_j = Q(a_j)`` (last axis)::

        V ~= alpha logsumexp_j(q_j / alpha) - alpha log M + alpha log vol(box)

    For ``[-1, 1]^d``, ``log vol = d log 2``; for ``Q == c``, ``V = c + alpha log vol``.
    """
    m = q.shape[-1]
    return alpha * jax.nn.logsumexp(q / alpha, axis=-1) - alpha * math.log(m) + alpha * log_volume


def amortized_svgd_loss(
    moved: Array, anchors: Array, anchor_scores: Array, sigma: Array, alpha: float
) -> tuple[Array, Array]:
    """Surrogate ``-(1/n) sum_i stop_gradient(phi(x_i)) . x_i`` (SQL Eq. 14) for one state; returns ``(loss, phi)``.

    Its gradient in the sampler's parameters ``psi`` is ``-(1/n) sum_i (d x_i/d psi)^T phi(x_i)``:
    gradient descent moves every sample ``x_i = f(s, xi_i)`` along the SVGD direction ``phi``
    (:func:`s2ac.stein.svgd_direction_anchored`; anchors, scores and bandwidth carry no gradient).
    """
    sg = jax.lax.stop_gradient
    phi = sg(stein.svgd_direction_anchored(sg(moved), sg(anchors), sg(anchor_scores), sg(sigma), alpha))
    return -jnp.mean(jnp.sum(phi * moved, axis=-1)), phi


def draw_noise(key: Array, shape: tuple[int, ...], noise: str) -> Array:
    """``xi ~ N(0, I)`` (``"normal"``) or ``xi ~ U[0, 1)`` (``"uniform01"``)."""
    if noise == "normal":
        return jax.random.normal(key, shape)
    return jax.random.uniform(key, shape)


def noise_mean(noise: str) -> float:
    """``E[xi]`` per coordinate: the input of the one-pass deterministic action."""
    return 0.0 if noise == "normal" else 0.5


class AmortizedSVGDActor:
    """SQL's sampler ``u = f(s, xi)``, ``a = squash(u)``, trained by amortized SVGD toward
    ``exp(Q/alpha_s)`` (SQL Eq. 13-14); no density. ``config``: an SQL config."""

    name = "amortized-svgd"
    kind = "none"
    fields = ("actor_params", "actor_opt")
    metrics = ("actor_loss", "svgd_grad_norm", "bandwidth", "particle_spread")
    entropy_from = None

    def __init__(self, config: Any, box: ActionBox, act_dim: int, obs_dim: int, net: Any, tx: Any):
        self.config, self.box, self.act_dim, self.obs_dim, self.net, self.tx = config, box, act_dim, obs_dim, net, tx
        self.noise_dim = act_dim if config.noise_dim is None else config.noise_dim
        self.sampler_alpha = config.effective_sampler_alpha
        self.log_volume = box_log_volume(box)

    def init(self, key: Array) -> tuple[Any, Any]:
        params = self.net.init(key, jnp.zeros((1, self.obs_dim)), jnp.zeros((1, self.noise_dim)))
        return params, self.tx.init(params)

    def sample_u(self, params: Any, obs: Array, key: Array, n: int) -> Array:
        """``n`` pre-squash samples ``u = f(s, xi)`` per state: shape ``(B, n, d)``."""
        noise = draw_noise(key, (obs.shape[0], n, self.noise_dim), self.config.noise)
        return self.net.apply(params, obs, noise)

    def sample(self, params: Any, q_fn: QFn, obs: Array, key: Array, alpha: Any = None, n: int = 1) -> Draw:
        return Draw(squash(self.sample_u(params, obs, key, n), self.box), None, self.kind)

    def energy(self, q_fn: QFn, obs: Array, x: Array) -> Array:
        """Energy of the SVGD target in ``svgd_space`` (``"u"``: the push-forward target; ``"action"``:
        ``min_k Q_k(s, a)``)."""
        return energy(q_fn, self.box, obs, x, self.config.svgd_space == "u", self.sampler_alpha)

    def next(self, params: Any, q_fn: QFn, batch: Batch, key: Array, alpha: Any) -> NextActions:
        """:meth:`next_at` the batch's next states (the critic plays no part in the draws)."""
        return self.next_at(params, batch.next_obs, key)

    def next_at(self, params: Any, next_obs: Array, key: Array) -> NextActions:
        """``M`` actions per next state, uniform on the box (SQL) or the sampler's own
        (``importance_on_sampler``), reduced by :func:`soft_value_uniform`; ``log_weight`` is
        ``log 1/U(a) = log vol(box)``."""
        cfg = self.config
        shape = (next_obs.shape[0], cfg.n_value_particles, self.act_dim)
        if cfg.importance_on_sampler:
            actions = squash(self.sample_u(params, next_obs, key, cfg.n_value_particles), self.box)
        else:
            low, high = self.box.center - self.box.scale, self.box.center + self.box.scale
            actions = jax.random.uniform(key, shape, minval=low, maxval=high)
        log_weight = jnp.full(shape[:-1], self.log_volume)
        return NextActions(actions, lambda q: soft_value_uniform(q, cfg.alpha, self.log_volume), log_weight, True)

    def next_metrics(self, next: NextActions) -> Metrics:
        return {}

    def loss(self, params: Any, q_fn: QFn, obs: Array, key: Array, alpha: Any = None) -> tuple[Array, Metrics]:
        """Amortized SVGD surrogate (SQL Eq. 13-14), averaged over states; critic held fixed."""
        cfg = self.config
        k_fixed, k_moved = jax.random.split(key)
        # Two independent draws; the anchors' pass is outside the gradient (no backward pass through it).
        u_fixed = self.sample_u(jax.lax.stop_gradient(params), obs, k_fixed, cfg.n_fixed_particles)
        u_moved = self.sample_u(params, obs, k_moved, cfg.n_svgd_particles)
        to_space = (lambda u: squash(u, self.box)) if cfg.svgd_space == "action" else (lambda u: u)
        anchors, moved = jax.lax.stop_gradient(to_space(u_fixed)), to_space(u_moved)

        def one_state(obs_row: Array, anchors_row: Array, moved_row: Array) -> tuple[Array, Array, Array]:
            # Rows are independent, so the gradient of the summed energy is the row-wise score.
            scores = jax.grad(lambda y: jnp.sum(self.energy(q_fn, obs_row, y)))(anchors_row)
            sigma = stein.resolve_bandwidth(anchors_row, cfg.bandwidth)
            loss, phi = amortized_svgd_loss(moved_row, anchors_row, scores, sigma, self.sampler_alpha)
            return loss, sigma, jnp.mean(jnp.linalg.norm(phi, axis=-1))

        losses, sigmas, phi_norms = jax.vmap(one_state)(obs, anchors, moved)
        actions = squash(jax.lax.stop_gradient(u_moved), self.box)
        info = {
            "svgd_grad_norm": jnp.mean(phi_norms),
            "bandwidth": jnp.mean(sigmas),
            "particle_spread": jnp.mean(jnp.std(actions, axis=1)),
        }
        return jnp.mean(losses), info

    def step(self, params: Any, opt: Any, q_fn: QFn, obs: Array, key: Array, alpha: Any) -> tuple[Any, Any, Metrics]:
        params, opt, loss, info = gradient_step(self.tx, self.loss, params, opt, q_fn, obs, key)
        return params, opt, {"actor_loss": loss, **info}


def mmd_loss(samples: Array, anchors: Array, sigmas: Array) -> Array:
    """Squared MMD between ``samples`` (n, d) and ``anchors`` (m, d) for one state (Gretton et al. 2012, Eq. 5)::

        MMD^2 = mean_{i,i'} k(x_i, x_i') - 2 mean_{i,j} k(x_i, y_j) + mean_{j,j'} k(y_j, y_j'),
        k(x, y) = sum_s exp(-||x - y||^2 / (2 sigma_s^2))

    (the biased V-statistic; its diagonal terms are constant). Anchors and bandwidths carry no gradient.
    """
    anchors, sigmas = jax.lax.stop_gradient(anchors), jax.lax.stop_gradient(sigmas)

    def mean_kernel(x: Array, y: Array) -> Array:
        sq = jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)
        return jnp.sum(jnp.mean(jnp.exp(-sq[..., None] / (2.0 * sigmas**2)), axis=(0, 1)))

    return mean_kernel(samples, samples) - 2.0 * mean_kernel(samples, anchors) + mean_kernel(anchors, anchors)


class Amortizer:
    """S²AC's amortized sampler ``u = g(s, xi)``, ``xi ~ N(0, I)``: a follower trained after the update to
    match the leader's particles ``u^L`` at the batch's states by MMD in ``u`` space (:func:`mmd_loss`,
    with S²AC's bandwidth times ``mmd_bandwidth_scales``); no density. ``config``: an amortized S²AC config."""

    name = "amortizer"
    kind = "none"
    fields = ("amortizer_params", "amortizer_opt")
    metrics = ("amortizer_loss", "amortizer_mean_gap")

    def __init__(self, config: Any, box: ActionBox, act_dim: int, obs_dim: int, net: Any, tx: Any):
        self.config, self.box, self.act_dim, self.obs_dim, self.net, self.tx = config, box, act_dim, obs_dim, net, tx
        self.noise_dim = act_dim if config.noise_dim is None else config.noise_dim
        self.mmd_scales = jnp.asarray(config.mmd_bandwidth_scales, jnp.float32)

    def init(self, key: Array) -> tuple[Any, Any]:
        params = self.net.init(key, jnp.zeros((1, self.obs_dim)), jnp.zeros((1, self.noise_dim)))
        return params, self.tx.init(params)

    def sample_u(self, params: Any, obs: Array, key: Array, n: int) -> Array:
        """``n`` pre-squash samples ``u = g(s, xi)`` per state: shape ``(B, n, d)``."""
        noise = jax.random.normal(key, (obs.shape[0], n, self.noise_dim))
        return self.net.apply(params, obs, noise)

    def sample(self, params: Any, q_fn: QFn, obs: Array, key: Array, alpha: Any = None, n: int = 1) -> Draw:
        return Draw(squash(self.sample_u(params, obs, key, n), self.box), None, self.kind)

    def loss(self, params: Any, obs: Array, particles_u: Array, key: Array) -> tuple[Array, Metrics]:
        """Mean over states of ``MMD^2(g(s, .), particles at s)`` in ``u`` space."""
        u = self.sample_u(params, obs, key, self.config.effective_n_amortizer_samples)

        def one_state(samples: Array, anchors: Array) -> Array:
            sigma = stein.resolve_bandwidth(anchors, self.config.bandwidth)
            return mmd_loss(samples, anchors, sigma * self.mmd_scales)

        loss = jnp.mean(jax.vmap(one_state)(u, particles_u))
        gap = jnp.linalg.norm(jnp.mean(u, axis=1) - jnp.mean(particles_u, axis=1), axis=-1)
        return loss, {"amortizer_mean_gap": jnp.mean(jax.lax.stop_gradient(gap))}

    def follow(self, params: Any, opt: Any, leader: Draw, obs: Array, key: Array) -> tuple[Any, Any, Metrics]:
        """One MMD step toward the leader's particles (``leader.extra.u``, held fixed)."""
        params, opt, loss, info = gradient_step(self.tx, self.loss, params, opt, obs, leader.extra.u, key)
        return params, opt, {"amortizer_loss": loss, **info}


ACTORS: tuple[str, ...] = ("gaussian", "flow", "svgd", "amortized-svgd", "diffusion")
"""Every actor kind an algorithm names in the registry (the amortizer follows an ``svgd`` actor)."""

__all__ = [
    "ACTORS",
    "LOG_DENSITIES",
    "Actor",
    "AmortizedSVGDActor",
    "Amortizer",
    "DensityActor",
    "Draw",
    "Particles",
    "QFn",
    "SVGDActor",
    "amortized_svgd_loss",
    "box_log_volume",
    "draw_noise",
    "energy",
    "keep_wide_matmuls",
    "min_q",
    "mmd_loss",
    "noise_mean",
    "particle_diagnostics",
    "soft_policy_objective",
    "soft_value_uniform",
]
