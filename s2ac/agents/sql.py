"""Soft Q-learning (Haarnoja, Tang, Abbeel, Levine, ICML 2017) for continuous actions.

* **Policy**: an amortized sampler ``a = squash(f_psi(s, xi))``, an MLP on ``[s, xi]``, trained by
  amortized SVGD (SQL Eq. 13-14): draw particles from ``f`` at ``s``, compute the SVGD direction
  ``phi`` of the target ``exp(Q(s, .)/alpha)`` at them, and move ``psi`` along
  ``d f / d psi^T phi`` through the surrogate loss ``-sum_i stop_gradient(phi_i) . f(s, xi_i)``.
  As in SQL's K/M split, one set of particles is the kernel's "fixed" anchors (their scores drive
  ``phi``) and a second, independent set is the one that is moved.
* **Critic**: soft Q-iteration (SQL Eq. 10-11), ``y = r + gamma (1 - terminated) Vbar(s')`` with the
  soft value ``V(s) = alpha log int exp(Q(s, a)/alpha) da`` estimated by importance sampling from the
  uniform distribution on the action box (:func:`~s2ac.parts.actors.soft_value_uniform`). Twin critics; the value uses
  ``min_k Qbar_k`` per sampled action (clipped double-Q, as in SAC and S²AC, so the baselines share
  the critic); target networks by Polyak averaging (SQL's code copied them every 1000 steps).

Where SVGD runs (``svgd_space``):

* ``"u"`` (default): on the pre-squash ``u = f(s, xi)`` with the exact push-forward target
  ``exp(Q(s, squash(u))/alpha) |det d squash/du|``, i.e. the energy of
  :meth:`s2ac.agents.common.CriticAgent.critic_energy` (as S²AC's with ``score_space="squashed"``).
  ``u`` is unbounded, so the repulsion can never push a particle past the box edge, kernel distances
  are not compressed near the edges, and the samples' distribution on the box is exactly the
  push-forward of the ``u`` target.
* ``"action"``: on the box actions with the target ``exp(Q(s, a)/alpha)`` and the gradient sent
  through ``tanh`` (the authors' S²AC code for its SQL baseline). The target ignores the boundary:
  repulsion pushes edge particles outward where ``tanh' -> 0`` and their update vanishes.
  (SQL's own code mixes the two: ``a``-space kernel and gradient of ``Q + sum log(1 - a^2)``.)

Known weakness: the soft value is a log-mean-exp of ``M`` uniform samples. When ``exp(Q/alpha)``
is peaked (small ``alpha``, large action dimension, a trained critic) almost all of the uniform
samples carry negligible weight, so the estimate has a high variance and, by Jensen's inequality,
a downward bias ``E[alpha log mean_j exp(Q_j/alpha)] <= V`` that only shrinks as ``M`` grows. The
sampler is never used in the value, so the critic does not profit from a good policy.

The ``paper`` behaviour fields (:data:`SQL_PAPER_FIELDS`) reproduce the authors' S²AC-code SQL:
``xi ~ U[0, 1)``, the value's importance constant applied to the sampler's own samples, temperature 1
inside the sampler, SVGD in action space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import flax
import jax
import jax.numpy as jnp

from s2ac import stein
from s2ac.agents.common import ActorCriticState, CriticAgent, check_act_mode, pick_action
from s2ac.checks import finite_positive, positive_int, require
from s2ac.config import AgentConfig
from s2ac.distributions import squash
from s2ac.nets import AmortizedSampler
from s2ac.parts.actors import (
    AmortizedSVGDActor,
    amortized_svgd_loss,
    box_log_volume,
    draw_noise,
    noise_mean,
    soft_value_uniform,
)
from s2ac.parts.critics import NextActions
from s2ac.parts.temperature import Temperature
from s2ac.types import Array, EnvSpec, Metrics

NOISES: tuple[str, ...] = ("normal", "uniform01")
SVGD_SPACES: tuple[str, ...] = ("u", "action")


@dataclass(frozen=True)
class SQLConfig(AgentConfig):
    """Soft Q-learning with an amortized SVGD sampler (Haarnoja et al. 2017)."""

    advanced_fields: ClassVar[tuple[str, ...]] = (
        "n_fixed_particles",
        "noise_dim",
        "noise",
        "svgd_space",
        "sampler_alpha",
        "importance_on_sampler",
    )

    actor_hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the sampler f(s, xi) (SQL code: 2 x 128; 2 x 256 here, as SAC's actor)."""
    n_value_particles: int = 50
    """M: uniform action samples per next state in the soft value (SQL code: 16; more lowers its variance)."""
    n_svgd_particles: int = 16
    """Particles per state moved by the amortized SVGD step, and candidates of the "max"/"softmax" actions."""
    n_fixed_particles: int = 16
    """Kernel anchor particles per state whose scores drive the SVGD direction (SQL's "fixed" set;
    SQL code: 16 particles split 8 fixed / 8 updated)."""
    noise_dim: int | None = None
    """Dimension of xi; None means the action dimension (SQL code and authors' code)."""
    noise: Literal["normal", "uniform01"] = "normal"
    """Distribution of xi: N(0, I) (SQL paper and code) or U[0, 1) (authors' S²AC code, ``paper``)."""
    bandwidth: float | Literal["mean/2", "median"] = "median"
    """Kernel bandwidth: a fixed sigma, or a rule of ``s2ac.stein`` applied per state to the anchors
    (SQL code: sigma^2 = median / (2 log K) of the fixed-to-updated squared distances; "median" is the same
    heuristic on the anchors' own pairs with log(K + 1))."""
    svgd_space: Literal["u", "action"] = "u"
    """Where SVGD runs: pre-squash u with the push-forward target (correct), or box actions with
    exp(Q/alpha) and the gradient sent through tanh (authors' code). See the module docstring."""
    sampler_alpha: float | None = None
    """Temperature of the SVGD target exp(Q/alpha); None uses ``alpha``. Authors' code: 1."""
    importance_on_sampler: bool = False
    """Soft value from the sampler's own samples with the uniform proposal's importance constant
    (authors' code: a biased, max-like estimate, since those samples are not uniform) instead of
    uniform samples on the box (SQL)."""

    @property
    def effective_sampler_alpha(self) -> float:
        """The temperature the sampler actually uses (derived, never written back)."""
        return self.alpha if self.sampler_alpha is None else self.sampler_alpha

    def validate(self) -> None:
        super().validate()
        require(
            not self.auto_alpha,
            "auto_alpha needs the policy's log-density, and SQL's amortized sampler has none; keep alpha fixed",
        )
        require(
            self.critic != "distributional",
            "critic='distributional' shifts the return distribution by -alpha log pi, and SQL's sampler has no "
            "log-density; use critic='twin' or 'crossq'",
        )
        positive_int("n_value_particles", self.n_value_particles)
        positive_int("n_svgd_particles", self.n_svgd_particles)
        positive_int("n_fixed_particles", self.n_fixed_particles)
        require(self.n_fixed_particles >= 2, f"n_fixed_particles must be >= 2 for SVGD; got {self.n_fixed_particles}")
        if self.noise_dim is not None:
            positive_int("noise_dim", self.noise_dim)
        require(self.noise in NOISES, f"unknown noise {self.noise!r}; expected one of {NOISES}")
        require(
            self.svgd_space in SVGD_SPACES, f"unknown svgd_space {self.svgd_space!r}; expected one of {SVGD_SPACES}"
        )
        if isinstance(self.bandwidth, str):
            require(
                self.bandwidth in stein.BANDWIDTH_RULES,
                f"unknown bandwidth rule {self.bandwidth!r}; expected a float or one of {stein.BANDWIDTH_RULES}",
            )
        else:
            finite_positive("bandwidth", self.bandwidth)
        if self.sampler_alpha is not None:
            finite_positive("sampler_alpha", self.sampler_alpha)
        require(isinstance(self.importance_on_sampler, bool), "importance_on_sampler must be a bool")


# The authors' S²AC code's SQL baseline (REFERENCE.md §2 and their actor_sql.py / core.py).
SQL_PAPER_FIELDS = dict(noise="uniform01", importance_on_sampler=True, sampler_alpha=1.0, svgd_space="action")


def preset_fields(preset: str, env_id: str) -> dict:
    """SQL's own preset fields: the authors' S²AC-code baseline under ``paper``."""
    return dict(SQL_PAPER_FIELDS) if preset == "paper" else {}


# ---------------------------------------------------------------------------
# Agent
# ---------------------------------------------------------------------------


@flax.struct.dataclass
class SQLState(ActorCriticState):
    """Flat training state: critic, target critic, the sampler f (``actor_*``), optimiser states, PRNG key, counter."""


class SQLAgent(CriticAgent):
    """Soft Q-learning with the shared ``init`` / ``update`` / ``act`` interface: an
    :class:`~s2ac.parts.actors.AmortizedSVGDActor` (no density; the critic's ``next`` record holds
    uniform importance samples) and a fixed temperature without state fields."""

    state_class = SQLState
    policy_density = "none"
    """The amortized sampler has no tractable log-density."""

    def __init__(self, config: SQLConfig, spec: EnvSpec):
        super().__init__(config, spec)
        self.noise_dim = spec.act_dim if config.noise_dim is None else config.noise_dim
        self.sampler_alpha = config.effective_sampler_alpha
        self.log_volume = box_log_volume(self.box)
        self.sampler = AmortizedSampler(config.actor_hidden, spec.act_dim, config.activation)
        self.actor_tx = self.adam(config.actor_lr)
        self.actor_part = AmortizedSVGDActor(config, self.box, spec.act_dim, spec.obs_dim, self.sampler, self.actor_tx)
        self.temperature = Temperature.from_config(config, spec.act_dim, fixed_in_state=False, stateless=True)

    # -- sampler ------------------------------------------------------------------
    def sample_u(self, actor_params: Any, obs: Array, key: Array, n: int) -> Array:
        """``n`` pre-squash samples ``u = f(s, xi)`` per state: shape ``(B, n, d)``."""
        return self.actor_part.sample_u(actor_params, obs, key, n)

    def energy(self, critic_params: Any, obs: Array, x: Array) -> Array:
        """Energy ``alpha_s log p`` of the SVGD target for one state's particles ``x`` (n, d).

        ``"u"``: ``min_k Q_k(s, squash(u)) + alpha_s log|det d squash/du|``; ``"action"``: ``min_k Q_k(s, a)``
        (:meth:`~s2ac.agents.common.CriticAgent.critic_energy`).
        """
        return self.actor_part.energy(self.q_fn(critic_params), obs, x)

    def sampler_loss(self, actor_params: Any, critic_params: Any, obs: Array, key: Array) -> tuple[Array, Metrics]:
        """Amortized SVGD surrogate (SQL Eq. 13-14), averaged over states; critic held fixed."""
        return self.actor_part.loss(actor_params, self.q_fn(critic_params), obs, key)

    # -- critic -------------------------------------------------------------------
    def next_actions(self, actor_params: Any, next_obs: Array, key: Array) -> NextActions:
        """The critic's ``next`` record: M actions per next state, uniform on the box (SQL) or the
        sampler's own (``importance_on_sampler``), reduced by :func:`soft_value_uniform` (importance
        sampling, no policy density)."""
        return self.actor_part.next_at(actor_params, next_obs, key)

    def soft_value(self, target_params: Any, actor_params: Any, next_obs: Array, key: Array) -> Array:
        """``Vbar(s')`` from M actions: uniform on the box (SQL), or the sampler's own (``importance_on_sampler``)."""
        next_actions = self.next_actions(actor_params, next_obs, key)
        return next_actions.soft_value(self.min_q(target_params, next_obs, next_actions.action))

    # -- acting -------------------------------------------------------------------
    def _act(self, state: SQLState, obs: Array, key: Array, mode: str = "random") -> Array:
        """``"random"``: one ``f(s, xi)``; ``"mean"``: ``f(s, E[xi])`` (one deterministic pass);
        ``"max"`` / ``"softmax"``: best of / ``exp(Q/alpha)``-weighted pick among ``n_svgd_particles`` samples."""
        check_act_mode(mode, self.act_modes)
        k_sample, k_pick = jax.random.split(key)
        if mode == "mean":
            noise = jnp.full((obs.shape[0], self.noise_dim), noise_mean(self.config.noise), obs.dtype)
            return squash(self.sampler.apply(state.actor_params, obs, noise), self.box)
        if mode == "random":
            return squash(self.sample_u(state.actor_params, obs, k_sample, 1)[:, 0], self.box)
        actions = squash(self.sample_u(state.actor_params, obs, k_sample, self.config.n_svgd_particles), self.box)
        q = self.min_q(state.critic_params, obs, actions)
        return pick_action(actions, q, k_pick, mode, self.config.alpha)


__all__ = [
    "SQLConfig",
    "SQLAgent",
    "SQLState",
    "SQL_PAPER_FIELDS",
    "amortized_svgd_loss",
    "box_log_volume",
    "draw_noise",
    "noise_mean",
    "soft_value_uniform",
]
