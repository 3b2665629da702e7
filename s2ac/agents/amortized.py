"""Amortized S²AC: a network ``g(s, xi)`` trained to imitate the S²AC SVGD sampler, so acting costs one pass.

The critic and the q0 network are trained exactly as in :class:`s2ac.agents.s2ac.S2ACAgent` (its
update runs unchanged); after it, one step trains the amortizer ``u = g(s, xi)``, ``xi ~ N(0, I)``,
``a = squash(u)``, to reproduce the distribution of the S²AC particles ``u^L`` at the same states.

Imitation objective: the squared maximum mean discrepancy (Gretton et al. 2012, the biased
V-statistic of Eq. 5) between ``g``'s samples and the S²AC particles, per state, in ``u`` space, with
a sum of RBF kernels whose bandwidths are S²AC's own (rule or fixed sigma, from the particles)
times ``mmd_bandwidth_scales``. Why MMD rather than the other two options:

* amortized SVGD with the S²AC particles as the kernel anchors,
  ``phi(x) = (1/m) sum_j [k(y_j, x) grad E(y_j) + alpha grad_{y_j} k(y_j, x)]``, carries (almost) no
  signal: when the anchors ``y_j`` are good samples of the target ``p ~ exp(E/alpha)``, Stein's
  identity ``E_{y~p}[k(y, x) grad log p(y) + grad_y k(y, x)] = 0`` makes ``phi(x)`` vanish at *every*
  ``x``, wherever ``g``'s samples are (``tests/test_amortized.py`` measures this). SVGD's direction
  is the KL gradient only when the expectation runs over the distribution being moved; SQL
  (:mod:`s2ac.agents.sql`) does that with ``g``'s own samples, which targets ``exp(Q/alpha)`` and
  ignores the S²AC particles;
* regression needs paired targets, and the sampler's particles are not paired with ``xi``.

MMD with a characteristic kernel is zero only when the two distributions agree, needs no critic
gradient, and is cheap (``m x m`` kernel matrices per state). Its gradient is an attraction of each
``g`` sample to the particles plus a repulsion from the other ``g`` samples, the same two forces as
SVGD, with the particles standing in for the score. The particles are drawn again after the S²AC
update at the batch's states (forward only, no gradient), with the updated critic and q0.

Acting with ``act_with="amortized"``: ``"random"`` is one pass of ``g``; ``"max"`` draws
``n_act_candidates`` samples of ``g`` in one batched pass and keeps the one with the highest
``min_k Q_k`` (the S²AC rule applied to ``g``'s samples; one critic pass more); ``"softmax"`` draws
one of them with probability ``~ exp(Q/alpha)``. ``act_with="svgd"`` acts with the S²AC sampler.
As for S²AC, there is no ``"mean"`` mode (:data:`s2ac.agents.common.PARTICLE_ACT_MODES`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import flax
import jax

from s2ac.agents import s2ac as s2ac_agent
from s2ac.agents.common import check_act_mode, pick_action
from s2ac.agents.s2ac import S2ACAgent, S2ACConfig, S2ACState
from s2ac.checks import finite_positive, positive_int, require
from s2ac.config import quick_width
from s2ac.distributions import squash
from s2ac.nets import AmortizedSampler
from s2ac.parts.actors import Amortizer, mmd_loss
from s2ac.types import Array, EnvSpec, Metrics

ACT_WITH: tuple[str, ...] = ("svgd", "amortized")


@dataclass(frozen=True)
class AmortizedS2ACConfig(S2ACConfig):
    """S²AC plus an amortized sampler ``g(s, xi)`` that imitates its SVGD particles."""

    advanced_fields: ClassVar[tuple[str, ...]] = (
        "noise_dim",
        "n_amortizer_samples",
        "mmd_bandwidth_scales",
        "n_act_candidates",
    )

    amortizer_hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of g (as SAC's actor, so acting costs about what SAC's does)."""
    amortizer_lr: float = 1e-3
    """Adam learning rate of g (authors: 1e-3 for every network)."""
    noise_dim: int | None = None
    """Dimension of xi ~ N(0, I); None means the action dimension."""
    n_amortizer_samples: int | None = None
    """Samples of g per state in the imitation loss; None means ``n_particles``."""
    mmd_bandwidth_scales: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    """The MMD kernel is a sum of RBFs with S²AC's bandwidth times these factors (robust to its scale)."""
    n_act_candidates: int | None = None
    """Samples of g per state among which "max" / "softmax" pick; None means ``n_particles``."""
    act_with: Literal["svgd", "amortized"] = "amortized"
    """Act with g (one forward pass) or with the S²AC SVGD sampler."""

    @property
    def effective_n_amortizer_samples(self) -> int:
        """Samples of g per state in the loss (derived, never written back)."""
        return self.n_particles if self.n_amortizer_samples is None else self.n_amortizer_samples

    @property
    def effective_n_act_candidates(self) -> int:
        """Candidates per state for "max" / "softmax" (derived, never written back)."""
        return self.n_particles if self.n_act_candidates is None else self.n_act_candidates

    def validate(self) -> None:
        super().validate()
        require(
            len(self.amortizer_hidden) > 0 and all(isinstance(w, int) and w > 0 for w in self.amortizer_hidden),
            f"amortizer_hidden must be positive ints; got {self.amortizer_hidden!r}",
        )
        finite_positive("amortizer_lr", self.amortizer_lr)
        for name in ("noise_dim", "n_amortizer_samples", "n_act_candidates"):
            if getattr(self, name) is not None:
                positive_int(name, getattr(self, name))
        require(
            len(self.mmd_bandwidth_scales) > 0,
            f"mmd_bandwidth_scales must not be empty; got {self.mmd_bandwidth_scales!r}",
        )
        for scale in self.mmd_bandwidth_scales:
            finite_positive("mmd_bandwidth_scales entries", scale)
        require(self.act_with in ACT_WITH, f"unknown act_with {self.act_with!r}; expected one of {ACT_WITH}")


@flax.struct.dataclass
class AmortizedS2ACState(S2ACState):
    """:class:`S2ACState` (so the S²AC update runs on it unchanged) plus the amortizer and its optimiser."""

    amortizer_params: Any
    amortizer_opt: Any


class AmortizedS2ACAgent(S2ACAgent):
    """S²AC with an amortized sampler for cheap acting; same ``init`` / ``update`` / ``act`` interface.
    The amortizer is the composed update's follower (:class:`~s2ac.parts.actors.Amortizer`)."""

    def __init__(self, config: AmortizedS2ACConfig, spec: EnvSpec):
        super().__init__(config, spec)
        self.noise_dim = spec.act_dim if config.noise_dim is None else config.noise_dim
        self.amortizer = AmortizedSampler(config.amortizer_hidden, spec.act_dim, config.activation)
        self.amortizer_tx = self.adam(config.amortizer_lr)
        self.follower = Amortizer(config, self.box, spec.act_dim, spec.obs_dim, self.amortizer, self.amortizer_tx)
        self.mmd_scales = self.follower.mmd_scales

    def init(self, key: Array) -> AmortizedS2ACState:
        k_s2ac, k_amortizer = jax.random.split(key)
        base = super().init(k_s2ac)
        params, opt = self.follower.init(k_amortizer)
        fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        return AmortizedS2ACState(**fields, amortizer_params=params, amortizer_opt=opt)

    # -- amortized sampler -------------------------------------------------------------
    def amortized_u(self, amortizer_params: Any, obs: Array, key: Array, n: int) -> Array:
        """``n`` pre-squash samples ``u = g(s, xi)`` per state: shape ``(B, n, d)``."""
        return self.follower.sample_u(amortizer_params, obs, key, n)

    def amortizer_loss(
        self, amortizer_params: Any, obs: Array, particles_u: Array, key: Array
    ) -> tuple[Array, Metrics]:
        """Mean over states of ``MMD^2(g(s, .), S²AC particles at s)`` in ``u`` space (module docstring)."""
        return self.follower.loss(amortizer_params, obs, particles_u, key)

    # -- acting -------------------------------------------------------------------------
    def _act(self, state: AmortizedS2ACState, obs: Array, key: Array, mode: str = "random") -> Array:
        if self.config.act_with == "svgd":
            return super()._act(state, obs, key, mode)
        check_act_mode(mode, self.act_modes)
        k_sample, k_pick = jax.random.split(key)
        if mode == "random":
            return squash(self.amortized_u(state.amortizer_params, obs, k_sample, 1)[:, 0], self.box)
        n = self.config.effective_n_act_candidates
        actions = squash(self.amortized_u(state.amortizer_params, obs, k_sample, n), self.box)
        q = self.min_q(state.critic_params, obs, actions)
        return pick_action(actions, q, k_pick, mode, self.temperatures(state)[0])


def preset_fields(preset: str, env_id: str) -> dict:
    """S²AC's preset fields, and the amortizer's width under ``quick``."""
    fields = s2ac_agent.preset_fields(preset, env_id)
    if preset == "quick":
        fields["amortizer_hidden"] = quick_width(env_id)
    return fields


__all__ = ["AmortizedS2ACConfig", "AmortizedS2ACAgent", "AmortizedS2ACState", "ACT_WITH", "mmd_loss"]
