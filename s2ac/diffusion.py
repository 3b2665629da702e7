"""Diffusion sampler of DIME and the lower bound on its entropy.

Everything here is written for ONE sample (one state's action) of dimension ``d``; callers
``jax.vmap`` over states and samples (:func:`sample_batched` does it for a batch of states).
No agent code: the score network is any callable ``score_fn(x, step) -> (d,)``.

Equations (numbered as in ``docs/algorithms/dime.md``; Celik et al., "DIME: Diffusion-Based Maximum
Entropy Reinforcement Learning", ICML 2025, the section deriving the discrete-time entropy bound,
following the time-reversed diffusion sampler "DIS" of Berner et al.):

* (D1) prior ``x_0 ~ p_0 = N(0, sigma_0^2 I)``, ``sigma_0 = 2.5``, fixed.
* (D2) step size ``dt_n = softplus(theta_dt) * c(n)``, cosine schedule
  ``c(n) = (1 - c_min) cos^p(pi/2 * (1 + s - t_n) / (1 + s)) + c_min`` with ``t_n = (N - n) / N``.
* (D3) friction ``gamma = softplus(theta_gamma)`` per dimension; ``eta_n = dt_n / gamma``
  (the code's ``sigma^2 = 1 / gamma``), noise scale ``sqrt(2 eta_n)``.
* (D4) forward (generative) Euler-Maruyama kernel
  ``F_n(x' | x) = N(x'; x + eta_n (grad log p_0(x) + f_theta(x, n)), 2 eta_n I)``.
* (D5) fixed backward kernel ``B_n(x | x') = N(x; x' + eta_n grad log p_0(x'), 2 eta_n I)``: the
  prior's Ornstein-Uhlenbeck drift only (no learned part).
* (D6) entropy lower bound of the pre-squash endpoint ``x_N`` (the path-space data-processing
  inequality ``KL(P_fwd || P_bwd) >= KL`` of the endpoint marginals)::

      H(x_N) >= E[ sum_n (log B_n(x_n | x_{n+1}) - log F_n(x_{n+1} | x_n)) - log p_0(x_0) ]

* (D7) squash ``a = tanh(x_N)``: ``H(a) = H(x_N) + E[log|det d tanh / dx|]``, with
  ``log tanh'(x) = 2 (log 2 - x - softplus(-2 x))``.
* (D8) the DIME costs: running ``= -(sum of log-ratios + tanh log-det)``, terminal ``= log p_0(x_0)``,
  per-sample bound ``= -(running + terminal)``; the policy loss is
  ``E[-Q(s, a) + alpha (running + terminal)] = E[-Q - alpha * bound]``, differentiated through every step.

The per-sample bound is an unbiased estimate of the right-hand side of (D6)+(D7), a LOWER bound on
the entropy: its log-density kind is :data:`LOG_DENSITY_KIND` (``"lower_bound"``), distinct from an
exact change of variables and from SVGD's closed form.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from s2ac.checks import finite_positive, require

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]
"""``score_fn(x, step) -> (d,)``: the learned drift ``f_theta`` for one sample ``x`` of shape ``(d,)``
at step index ``step`` (a float scalar ``0, 1, ..., N - 1``, as the authors' network receives it)."""

LOG_DENSITY_KIND = "lower_bound"
"""What :attr:`DiffusionResult.entropy_bound` is: a lower bound on the entropy (reports label it)."""


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """Static settings of the sampler. Defaults: the DIME paper version (``configs/sampler/dis.yaml``,
    ``configs/sampler/dt_schedule/cosine.yaml``, ``configs/base.yaml`` at commit 9f6a044)."""

    n_steps: int = 16
    """Euler-Maruyama steps ``N`` (``alg.actor.diff_steps``: 16; the authors report 2 fails, 16 = 32)."""
    prior_std: float = 2.5
    """``sigma_0`` of the fixed prior (``sampler.init_std``)."""
    init_step_size: float = 0.1
    """Initial ``softplus(theta_dt)`` (``dt``; learnable, ``learn_dt: True``)."""
    init_friction: float = 1.0
    """Initial friction ``gamma`` per dimension (``sampler.friction``; ``learn_friction: True``)."""
    schedule_min: float = 0.001
    """``c_min`` of the cosine schedule (D2)."""
    schedule_s: float = 0.008
    """Offset ``s`` of the cosine schedule (D2)."""
    schedule_pow: float = 2.0
    """Power ``p`` of the cosine schedule (D2)."""
    squash: bool = True
    """Return ``tanh(x_N)`` and add its log-det (D7); False for targets on all of R^d."""

    def __post_init__(self) -> None:
        check_diffusion_steps(self.n_steps)
        for name in ("prior_std", "init_step_size", "init_friction", "schedule_pow"):
            finite_positive(name, getattr(self, name))
        require(0.0 <= self.schedule_min < 1.0, f"schedule_min must be in [0, 1); got {self.schedule_min!r}")
        require(self.schedule_s >= 0.0, f"schedule_s must be >= 0; got {self.schedule_s!r}")


def check_diffusion_steps(n_steps: object) -> None:
    """One line for a bad step count (zero, negative, or not an int)."""
    require(
        isinstance(n_steps, int) and not isinstance(n_steps, bool) and n_steps >= 1,
        f"diffusion steps (n_steps) must be an int >= 1 (DIME uses 16); got {n_steps!r}",
    )


class SamplerParams(NamedTuple):
    """The sampler's own learnable parameters (the score network's live elsewhere).

    Attributes:
        step_size_raw: ``()`` ``theta_dt``; ``softplus`` of it is the step size before the schedule (D2).
        friction_raw: ``(d,)`` ``theta_gamma``; ``softplus`` of it is the friction (D3).
    """

    step_size_raw: Array
    friction_raw: Array


class DiffusionResult(NamedTuple):
    """Output of :func:`sample` for one sample.

    Attributes:
        action: ``(d,)`` ``tanh(x_N)`` (or ``x_N`` without squashing).
        pre_squash: ``(d,)`` ``x_N``.
        log_ratio: ``()`` ``sum_n log B_n(x_n | x_{n+1}) - log F_n(x_{n+1} | x_n)`` (D6).
        log_det_squash: ``()`` tanh log-det at ``x_N`` (0 without squashing) (D7).
        prior_log_prob: ``()`` ``log p_0(x_0)``, the terminal cost (D8).
        running_cost: ``()`` ``-(log_ratio + log_det_squash)`` (D8).
        entropy_bound: ``()`` ``-(running_cost + prior_log_prob)``; its mean over samples is a lower
            bound on the entropy of ``action`` (D6, D7).
        trajectory: ``(N + 1, d)`` ``x_0 .. x_N`` (pre-squash), or ``None``.
    """

    action: Array
    pre_squash: Array
    log_ratio: Array
    log_det_squash: Array
    prior_log_prob: Array
    running_cost: Array
    entropy_bound: Array
    trajectory: Array | None = None


def inverse_softplus(y: float) -> float:
    """``x`` with ``softplus(x) = y`` (for initialising raw parameters; host-side)."""
    return y if y > 20.0 else math.log(math.expm1(y))


def init_sampler_params(config: DiffusionConfig, act_dim: int) -> SamplerParams:
    """Raw parameters whose softplus gives ``config.init_step_size`` and ``config.init_friction``."""
    require(isinstance(act_dim, int) and act_dim >= 1, f"act_dim must be an int >= 1; got {act_dim!r}")
    return SamplerParams(
        step_size_raw=jnp.asarray(inverse_softplus(config.init_step_size), jnp.float32),
        friction_raw=jnp.full((act_dim,), inverse_softplus(config.init_friction), jnp.float32),
    )


AUTHORS_RUNNING_COST_TARGET_PER_DIM = 4.0
"""The DIME code's temperature target: mean running cost vs ``4 |A|`` (``diffusion/dime.py``; yaml 6.0 unread)."""


def dime_target_entropy(act_dim: int, config: DiffusionConfig) -> float:
    """The authors' temperature target written as a target on the entropy bound (D10).

    Their rule drives the mean RUNNING cost to ``4 |A|``; the terminal cost ``log p_0(x_0)`` has the
    constant mean ``-|A| (1/2) log(2 pi e sigma_0^2)``, so in expectation the rule drives the bound
    ``-(running + terminal)`` to ``-(4 - (1/2) log(2 pi e sigma_0^2)) |A|`` (``-1.665 |A|`` at
    ``sigma_0 = 2.5``).
    """
    prior_entropy_per_dim = 0.5 * math.log(2.0 * math.pi * math.e * config.prior_std**2)
    return -(AUTHORS_RUNNING_COST_TARGET_PER_DIM - prior_entropy_per_dim) * act_dim


def cosine_schedule(step: Array, config: DiffusionConfig) -> Array:
    """``c(n)`` of (D2): near 1 at the first step, falling to ``c_min`` + a little at the last."""
    t = (config.n_steps - step) / config.n_steps
    offset = 1.0 + config.schedule_s
    cos = jnp.cos(0.5 * jnp.pi * (offset - t) / offset)
    return (1.0 - config.schedule_min) * cos**config.schedule_pow + config.schedule_min


def step_sizes(params: SamplerParams, config: DiffusionConfig) -> Array:
    """``(N,)`` ``dt_n = softplus(theta_dt) c(n)`` (D2)."""
    steps = jnp.arange(config.n_steps, dtype=jnp.float32)
    return jax.nn.softplus(params.step_size_raw) * cosine_schedule(steps, config)


def friction(params: SamplerParams) -> Array:
    """``(d,)`` ``gamma = softplus(theta_gamma)`` (D3)."""
    return jax.nn.softplus(params.friction_raw)


def gaussian_log_prob(x: Array, mean: Array, scale: Array) -> Array:
    """``log N(x; mean, diag(scale^2))`` summed over the last axis (``scale`` broadcasts)."""
    z = (x - mean) / scale
    return jnp.sum(-0.5 * z * z - jnp.log(scale) - 0.5 * math.log(2.0 * math.pi), axis=-1)


def prior_log_prob(x: Array, config: DiffusionConfig) -> Array:
    """``log p_0(x)`` of (D1)."""
    return gaussian_log_prob(x, jnp.zeros_like(x), jnp.asarray(config.prior_std, x.dtype))


def prior_score(x: Array, config: DiffusionConfig) -> Array:
    """``grad log p_0(x) = -x / sigma_0^2``, the drift both kernels share (D4, D5)."""
    return -x / config.prior_std**2


def tanh_log_det(x: Array) -> Array:
    """``sum_i log(1 - tanh(x_i)^2)`` in the stable form ``2 (log 2 - x - softplus(-2 x))`` (D7)."""
    return jnp.sum(2.0 * (math.log(2.0) - x - jax.nn.softplus(-2.0 * x)), axis=-1)


def sample(
    score_fn: ScoreFn,
    params: SamplerParams,
    config: DiffusionConfig,
    key: Array,
    trajectory: bool = False,
    deterministic: bool = False,
) -> DiffusionResult:
    """Draw one sample by (D1)-(D5) and account the bound (D6)-(D8); differentiable in ``params``
    and through ``score_fn`` along all ``N`` steps (the reparameterised noise carries the gradient).

    ``deterministic``: the noise-free chain (``x_0 = 0`` and every step's noise 0, i.e. the path at the
    mean of the noise), a deterministic action for evaluation; its bound fields are not an entropy."""
    d = params.friction_raw.shape[-1]
    key0, key_steps = jax.random.split(key)
    # The prior is fixed: its sample carries no gradient (the authors' learn_prior: False).
    x0 = config.prior_std * jax.random.normal(key0, (d,), jnp.float32)
    etas = step_sizes(params, config)[:, None] / friction(params)[None, :]  # (N, d)
    noise = jax.random.normal(key_steps, (config.n_steps, d), jnp.float32)
    if deterministic:
        x0, noise = jnp.zeros_like(x0), jnp.zeros_like(noise)

    def step(carry, inputs):
        x, log_ratio = carry
        n, eta, eps = inputs
        scale = jnp.sqrt(2.0 * eta)
        fwd_mean = x + eta * (prior_score(x, config) + score_fn(x, n))  # (D4)
        x_new = fwd_mean + scale * eps
        bwd_mean = x_new + eta * prior_score(x_new, config)  # (D5)
        log_ratio = log_ratio + gaussian_log_prob(x, bwd_mean, scale) - gaussian_log_prob(x_new, fwd_mean, scale)
        return (x_new, log_ratio), x_new

    steps = jnp.arange(config.n_steps, dtype=jnp.float32)
    (x_n, log_ratio), path = jax.lax.scan(step, (x0, jnp.zeros((), jnp.float32)), (steps, etas, noise))
    log_det = tanh_log_det(x_n) if config.squash else jnp.zeros((), x_n.dtype)
    action = jnp.tanh(x_n) if config.squash else x_n
    terminal = prior_log_prob(x0, config)
    running = -(log_ratio + log_det)
    return DiffusionResult(
        action=action,
        pre_squash=x_n,
        log_ratio=log_ratio,
        log_det_squash=log_det,
        prior_log_prob=terminal,
        running_cost=running,
        entropy_bound=-(running + terminal),
        trajectory=jnp.concatenate([x0[None], path]) if trajectory else None,
    )


def sample_batched(
    score_apply: Callable[[Array, Array, Array], Array],
    params: SamplerParams,
    config: DiffusionConfig,
    obs: Array,
    key: Array,
    deterministic: bool = False,
) -> DiffusionResult:
    """One sample per state: ``obs (B, o)`` -> fields with a leading ``B`` axis.

    ``score_apply(x, obs_row, step) -> (d,)`` is the state-conditioned network (e.g. a bound
    ``DiffusionScoreNet.apply``); each state gets its own key, as in the authors' ``sample``.
    """
    keys = jax.random.split(key, obs.shape[0])

    def one(o, k):
        return sample(lambda x, n: score_apply(x, o, n), params, config, k, deterministic=deterministic)

    return jax.vmap(one)(obs, keys)


__all__ = [
    "LOG_DENSITY_KIND",
    "DiffusionConfig",
    "DiffusionResult",
    "SamplerParams",
    "check_diffusion_steps",
    "AUTHORS_RUNNING_COST_TARGET_PER_DIM",
    "cosine_schedule",
    "dime_target_entropy",
    "friction",
    "gaussian_log_prob",
    "init_sampler_params",
    "inverse_softplus",
    "prior_log_prob",
    "prior_score",
    "sample",
    "sample_batched",
    "step_sizes",
    "tanh_log_det",
]
