"""SAC-NF (Mazoure, Doan, Durand, Pineau, Hjelm, CoRL 2019 / 2020): SAC with a normalizing-flow policy.

Policy: ``z ~ N(mu(s), diag sigma(s)^2)`` (the SAC Gaussian head), then ``K`` invertible flow layers
``u = T_K o ... o T_1(z)``, then the box squash ``a = center + scale * tanh(u)``. The log-density is
exact by the change of variables::

    log pi(a|s) = log N(z; mu(s), sigma(s)) - sum_k log|det dT_k/dz_{k-1}| - log|det d squash/du|

Everything else (twin critics, the soft Bellman target, the reparameterised actor loss, fixed or
tuned alpha) is :class:`s2ac.agents.sac.SACAgent`, which this agent subclasses: only the actor
network (:meth:`SACNFAgent.actor_net`) and :meth:`SACNFAgent.sample_action` change.

Flow families (``flow``):

* ``"planar"`` (Rezende & Mohamed 2015, Eq. 10-12): ``T(z) = z + u_hat tanh(w^T z + b)``, with
  ``u_hat = u + (m(w^T u) - w^T u) w / ||w||^2``, ``m(x) = -1 + softplus(x)`` (+ 1e-4 so that it stays
  strict in float32), so ``w^T u_hat > -1`` and ``T`` is invertible;
  ``log|det| = log(1 + (1 - tanh^2(w^T z + b)) w^T u_hat)``.
* ``"radial"`` (Rezende & Mohamed 2015, Eq. 14): ``T(z) = z + beta h(r) (z - z0)``, ``h = 1/(alpha + r)``,
  ``r = ||z - z0||``, with ``alpha = softplus(.) > 0`` and ``beta = -alpha + softplus(.) >= -alpha``;
  ``log|det| = (d - 1) log(1 + beta h) + log(1 + beta alpha / (alpha + r)^2)``.
  Mazoure et al.'s code runs SAC-NF with radial flows (its example: 3 radial layers), the default here.
* ``"affine_coupling"`` (RealNVP, Dinh et al. 2017): ``distrax.MaskedCoupling`` with alternating
  masks and an elementwise ``distrax.ScalarAffine`` whose shift and bounded log-scale come from an
  MLP conditioner on the kept coordinates (and, with ``condition_flow_on_obs``, on the state). The
  stronger family: each layer is a learned non-linear function rather than one hyperplane or one
  radial bump, its log-det is a sum, and its inverse is exact.

Parameterisation: planar and radial layers are state-independent parameters after the
state-conditioned Gaussian, as in Mazoure et al.; the coupling conditioners see the state by default.
Planar and radial are not in distrax, so they are :class:`distrax.Bijector` subclasses here, and the
stack is a ``distrax.Chain``. Only ``forward_and_log_det`` is needed for sampling; the inverses
(closed form for radial, 1-D bisection for planar) give ``log pi`` of any action
(:meth:`SACNFAgent.log_prob`), used to check that the density integrates to one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from s2ac.agents import sac
from s2ac.agents.sac import SACAgent, SACConfig
from s2ac.checks import finite_positive, positive_int, require
from s2ac.distributions import normal_log_prob, squash, squash_log_det, unsquash
from s2ac.nets import ACTIVATIONS, Activation, GaussianHead
from s2ac.types import Array

FLOWS: tuple[str, ...] = ("planar", "radial", "affine_coupling")
_PLANAR_BISECTION_STEPS = 50  # float32 interval halvings: far past machine precision
_PLANAR_MARGIN = 1e-4  # w^T u_hat >= -1 + margin keeps the planar layer strictly invertible in float32


@dataclass(frozen=True)
class SACNFConfig(SACConfig):
    """SAC whose actor is a Gaussian followed by normalizing-flow layers (Mazoure et al.)."""

    advanced_fields: ClassVar[tuple[str, ...]] = (
        "condition_flow_on_obs",
        "coupling_log_scale_bound",
    )

    flow: Literal["planar", "radial", "affine_coupling"] = "radial"
    """Flow family: planar / radial (Rezende & Mohamed 2015; Mazoure et al. use radial) or RealNVP affine coupling."""
    n_flow_layers: int = 3
    """Number of flow layers K (SAC-NF code's example: 3)."""
    flow_hidden: tuple[int, ...] = (64, 64)
    """Hidden widths of each affine-coupling conditioner (unused by planar / radial)."""
    condition_flow_on_obs: bool = True
    """Affine coupling only: the conditioners also see the state (planar / radial are state-independent)."""
    coupling_log_scale_bound: float = 2.0
    """Affine coupling only: log-scales are ``b tanh(raw / b)``, bounded by b for stability."""

    def validate(self) -> None:
        super().validate()
        require(self.flow in FLOWS, f"unknown flow {self.flow!r}; expected one of {FLOWS}")
        positive_int("n_flow_layers", self.n_flow_layers)
        require(
            len(self.flow_hidden) > 0 and all(isinstance(w, int) and w > 0 for w in self.flow_hidden),
            f"flow_hidden must be positive ints; got {self.flow_hidden!r}",
        )
        require(isinstance(self.condition_flow_on_obs, bool), "condition_flow_on_obs must be a bool")
        finite_positive("coupling_log_scale_bound", self.coupling_log_scale_bound)
        require(not self.actor_renorm, "actor_renorm applies to SAC's Gaussian actor; sac-nf's flow has none")


# ---------------------------------------------------------------------------
# Planar and radial bijectors (Rezende & Mohamed 2015)
# ---------------------------------------------------------------------------


def planar_m(x: Array) -> Array:
    """``m(x) = -1 + softplus(x)`` (R&M App. A.1) plus a small margin: in float32, ``softplus`` underflows to 0
    for ``x < -17`` and ``m`` would reach exactly -1, a singular layer."""
    return -1.0 + _PLANAR_MARGIN + jax.nn.softplus(x)


def planar_u_hat(u: Array, w: Array) -> Array:
    """``u_hat = u + (m(w^T u) - w^T u) w / ||w||^2``, so ``w^T u_hat = m(w^T u) > -1`` (R&M App. A.1)."""
    wu = jnp.dot(w, u)
    return u + (planar_m(wu) - wu) * w / (jnp.sum(w * w) + 1e-12)


def radial_alpha_beta(alpha_raw: Array, beta_raw: Array) -> tuple[Array, Array]:
    """``alpha = softplus(alpha_raw) > 0``, ``beta = -alpha + softplus(beta_raw) > -alpha`` (R&M App. A.2)."""
    alpha = jax.nn.softplus(alpha_raw)
    return alpha, -alpha + jax.nn.softplus(beta_raw)


class PlanarFlow(distrax.Bijector):
    """``T(z) = z + u_hat tanh(w^T z + b)`` on the last axis; invertible because ``w^T u_hat > -1``."""

    def __init__(self, u_raw: Array, w: Array, b: Array):
        super().__init__(event_ndims_in=1)
        self.u = planar_u_hat(u_raw, w)
        self.wu = planar_m(jnp.dot(w, u_raw))  # = w^T u_hat, exactly rather than through rounding
        self.w, self.b = w, b

    def _log_det(self, pre: Array) -> Array:
        # 1 + tanh'(.) w^T u_hat > 1 - tanh'(.) >= 0 since tanh' in (0, 1] and w^T u_hat > -1.
        return jnp.log1p((1.0 - jnp.tanh(pre) ** 2) * self.wu)

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        pre = x @ self.w + self.b
        return x + self.u * jnp.tanh(pre)[..., None], self._log_det(pre)

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        """Solve ``t = s + c tanh(s + b)`` for ``s = w^T z`` (``t = w^T y``, ``c = w^T u_hat``);
        then ``z = y - u_hat tanh(s + b)``. The left side is increasing in ``s`` (``c > -1``) and
        ``|s - t| <= |c|``: bisection on that interval.
        """
        t, c = y @ self.w, self.wu
        lo, hi = t - jnp.abs(c), t + jnp.abs(c)

        def halve(_, bounds):
            lo, hi = bounds
            mid = 0.5 * (lo + hi)
            below = mid + c * jnp.tanh(mid + self.b) < t
            return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

        lo, hi = jax.lax.fori_loop(0, _PLANAR_BISECTION_STEPS, halve, (lo, hi))
        pre = 0.5 * (lo + hi) + self.b
        return y - self.u * jnp.tanh(pre)[..., None], -self._log_det(pre)


class RadialFlow(distrax.Bijector):
    """``T(z) = z + beta (z - z0) / (alpha + ||z - z0||)`` on the last axis; invertible because ``beta > -alpha``."""

    def __init__(self, z0: Array, alpha_raw: Array, beta_raw: Array):
        super().__init__(event_ndims_in=1)
        self.z0 = z0
        self.alpha, self.beta = radial_alpha_beta(alpha_raw, beta_raw)

    def _log_det(self, r: Array, d: int) -> Array:
        # (1 + beta h)^(d-1) (1 + beta h + beta h'(r) r), and 1 + beta h + beta h' r = 1 + beta alpha / (alpha + r)^2.
        bh = self.beta / (self.alpha + r)
        return (d - 1) * jnp.log1p(bh) + jnp.log1p(self.beta * self.alpha / (self.alpha + r) ** 2)

    def forward_and_log_det(self, x: Array) -> tuple[Array, Array]:
        diff = x - self.z0
        r = _safe_norm(diff)
        y = x + (self.beta / (self.alpha + r))[..., None] * diff
        return y, self._log_det(r, x.shape[-1])

    def inverse_and_log_det(self, y: Array) -> tuple[Array, Array]:
        """Closed form: ``rho = ||y - z0|| = r (1 + beta / (alpha + r))`` gives
        ``r^2 + (alpha + beta - rho) r - alpha rho = 0``, whose non-negative root is ``r``."""
        diff_y = y - self.z0
        rho = _safe_norm(diff_y)
        p = self.alpha + self.beta - rho
        r = 0.5 * (-p + jnp.sqrt(p * p + 4.0 * self.alpha * rho))
        x = self.z0 + diff_y / (1.0 + self.beta / (self.alpha + r))[..., None]
        return x, -self._log_det(r, y.shape[-1])


def _safe_norm(x: Array) -> Array:
    """``||x||`` along the last axis with a finite gradient at 0."""
    return jnp.sqrt(jnp.sum(x * x, axis=-1) + 1e-12)


# ---------------------------------------------------------------------------
# Flax modules
# ---------------------------------------------------------------------------


class CouplingConditioner(nn.Module):
    """Shift and bounded log-scale of an affine coupling layer from the kept coordinates (and the state).

    The last layer starts at zero, so every coupling layer starts as the identity.
    """

    hidden_sizes: Sequence[int]
    act_dim: int
    activation: Activation
    log_scale_bound: float

    @nn.compact
    def __call__(self, x_masked: Array, obs: Array | None) -> tuple[Array, Array]:
        h = x_masked if obs is None else jnp.concatenate([x_masked, obs], axis=-1)
        act = ACTIVATIONS[self.activation]
        for width in self.hidden_sizes:
            h = act(nn.Dense(width)(h))
        out = nn.Dense(2 * self.act_dim, kernel_init=nn.initializers.zeros)(h)
        shift, raw_scale = jnp.split(out, 2, axis=-1)
        bound = self.log_scale_bound
        return shift, bound * jnp.tanh(raw_scale / bound)


class FlowLayers(nn.Module):
    """The ``K`` flow layers as a ``distrax.Chain`` (layer 1 applied first)."""

    flow: str
    n_layers: int
    act_dim: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: Activation = "relu"
    condition_on_obs: bool = True
    log_scale_bound: float = 2.0

    def setup(self):
        d, n = self.act_dim, self.n_layers
        small = nn.initializers.normal(0.1)
        if self.flow == "planar":
            self.u_raw = [self.param(f"planar_u_{i}", small, (d,)) for i in range(n)]
            self.w = [self.param(f"planar_w_{i}", small, (d,)) for i in range(n)]
            self.b = [self.param(f"planar_b_{i}", nn.initializers.zeros, ()) for i in range(n)]
        elif self.flow == "radial":
            # alpha_raw = beta_raw = 0 gives beta = 0: each layer starts as the identity.
            self.z0 = [self.param(f"radial_z0_{i}", small, (d,)) for i in range(n)]
            self.alpha_raw = [self.param(f"radial_alpha_{i}", nn.initializers.zeros, ()) for i in range(n)]
            self.beta_raw = [self.param(f"radial_beta_{i}", nn.initializers.zeros, ()) for i in range(n)]
        elif self.flow == "affine_coupling":
            self.conditioners = [
                CouplingConditioner(self.hidden_sizes, d, self.activation, self.log_scale_bound) for _ in range(n)
            ]
        else:
            raise ValueError(f"unknown flow {self.flow!r}; expected one of {FLOWS}")

    def bijector(self, obs: Array) -> distrax.Bijector:
        """The chain ``T_K o ... o T_1``; ``obs`` (broadcastable to the inputs' batch) feeds the conditioners."""
        if self.flow == "planar":
            layers = [PlanarFlow(u, w, b) for u, w, b in zip(self.u_raw, self.w, self.b, strict=True)]
        elif self.flow == "radial":
            layers = [RadialFlow(z, a, b) for z, a, b in zip(self.z0, self.alpha_raw, self.beta_raw, strict=True)]
        else:
            cond_obs = obs if self.condition_on_obs else None
            layers = [
                distrax.MaskedCoupling(
                    mask=jnp.arange(self.act_dim) % 2 == i % 2,  # alternate which half is kept
                    conditioner=lambda x, net=net: net(x, cond_obs),
                    bijector=lambda params: distrax.ScalarAffine(shift=params[0], log_scale=params[1]),
                )
                for i, net in enumerate(self.conditioners)
            ]
        return distrax.Chain(layers[::-1])  # Chain applies its last element first

    def __call__(self, z: Array, obs: Array) -> tuple[Array, Array]:
        """``(u, log|det du/dz|)``."""
        return self.bijector(obs).forward_and_log_det(z)

    def inverse(self, u: Array, obs: Array) -> tuple[Array, Array]:
        """``(z, log|det dz/du|)``."""
        return self.bijector(obs).inverse_and_log_det(u)


class FlowPolicy(nn.Module):
    """State-conditioned Gaussian followed by :class:`FlowLayers`: returns pre-squash ``u`` and ``log q(u|s)``."""

    hidden_sizes: Sequence[int]
    act_dim: int
    activation: Activation
    log_std_min: float
    log_std_max: float
    flow: str
    n_layers: int
    flow_hidden: Sequence[int]
    condition_flow_on_obs: bool
    log_scale_bound: float

    def setup(self):
        self.base = GaussianHead(self.hidden_sizes, self.act_dim, self.activation, self.log_std_min, self.log_std_max)
        self.flows = FlowLayers(
            self.flow,
            self.n_layers,
            self.act_dim,
            self.flow_hidden,
            self.activation,
            self.condition_flow_on_obs,
            self.log_scale_bound,
        )

    def __call__(self, obs: Array, noise: Array | None = None) -> tuple[Array, Array]:
        """``u = T(mu + sigma noise)``, ``log q(u|s) = log N(z) - log|det dT/dz|``; ``noise=None`` pushes the mean."""
        mean, log_std = self.base(obs)
        std = jnp.exp(log_std)
        z = mean if noise is None else mean + std * noise
        u, log_det = self.flows(z, obs)
        return u, normal_log_prob(z, mean, std) - log_det

    def log_prob(self, obs: Array, u: Array) -> Array:
        """``log q(u|s) = log N(T^{-1}(u)) + log|det dT^{-1}/du|`` (exact, through the inverse)."""
        mean, log_std = self.base(obs)
        z, log_det_inv = self.flows.inverse(u, obs)
        return normal_log_prob(z, mean, jnp.exp(log_std)) + log_det_inv


# ---------------------------------------------------------------------------
# Agent
# ---------------------------------------------------------------------------


class SACNFAgent(SACAgent):
    """SAC with a flow policy: :class:`SACAgent` with another actor network and sampler."""

    actor_kind = "flow"

    def actor_net(self) -> FlowPolicy:
        cfg = self.config
        return FlowPolicy(
            cfg.actor_hidden,
            self.spec.act_dim,
            cfg.activation,
            cfg.log_std_min,
            cfg.log_std_max,
            cfg.flow,
            cfg.n_flow_layers,
            cfg.flow_hidden,
            cfg.condition_flow_on_obs,
            cfg.coupling_log_scale_bound,
        )

    def sample_action(self, actor_params: Any, obs: Array, key: Array) -> tuple[Array, Array]:
        """Reparameterised ``a = squash(T(mu + sigma xi))`` and the exact ``log pi(a|s)`` (module docstring).
        Acting in ``"max"`` / ``"mean"`` mode squashes the Gaussian mean through the flows."""
        noise = jax.random.normal(key, obs.shape[:-1] + (self.spec.act_dim,))
        u, log_q = self.actor.apply(actor_params, obs, noise)
        return squash(u, self.box), log_q - squash_log_det(u, self.box)

    def log_prob(self, actor_params: Any, obs: Array, action: Array) -> Array:
        """``log pi(a|s)`` of given box actions, through the flows' inverse (actions are clipped off the edges)."""
        u = unsquash(action, self.box)
        return self.actor.apply(actor_params, obs, u, method=FlowPolicy.log_prob) - squash_log_det(u, self.box)


preset_fields = sac.preset_fields
"""SAC-NF's preset fields are SAC's (tuned alpha off under ``paper`` and on multigoal)."""

__all__ = [
    "SACNFConfig",
    "SACNFAgent",
    "FLOWS",
    "FlowLayers",
    "FlowPolicy",
    "PlanarFlow",
    "RadialFlow",
    "planar_m",
    "planar_u_hat",
    "radial_alpha_beta",
]
