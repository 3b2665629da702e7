"""Critic parts: how Q is built, evaluated, trained and averaged, behind one small protocol.

* ``twin`` (:class:`TwinCritic`): two critics ``Q_1, Q_2`` with a Polyak-averaged target copy
  (REFERENCE.md §1, "Critic"); the bootstrap uses the target copy.
* ``crossq`` (:class:`CrossQCritic`): two batch-renormalised critics and no target network (Bhatt et
  al. 2024, CrossQ): ``(s, a)`` and ``(s', a')`` go through ONE forward pass in training mode, so the
  batch statistics cover both distributions, and the bootstrap ``Q(s', a')`` comes from that same pass
  (held fixed in the gradient). Running statistics live in the critic's variables
  (``critic_params["batch_stats"]``) and are what :meth:`CrossQCritic.q` uses.
* ``distributional`` (:class:`DistributionalCritic`): CrossQ's critic (joint pass, batch renorm, no
  target network) with a categorical head over ``n_atoms`` atoms on ``[v_min, v_max]`` (DIME, Celik
  et al. 2025; the maths (C1)-(C5) in :mod:`s2ac.distributional`). ``q`` is the expected value (C5).

Protocol (every kind): ``init(key, obs_dim, act_dim) -> (params, target, opt_state)``;
``q(params, obs, action)`` in evaluation mode, shape ``(n_critics, *batch)``;
``loss(params, target, batch, next)``; ``step(params, target, opt, batch, next) -> (params, opt,
metrics)``; ``after_step(target, params) -> target``. The ``next`` record (:class:`NextActions`) is
what the actor supplies at ``s'``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from s2ac import distributional as dist
from s2ac.nets import (
    Activation,
    BatchRenormSettings,
    CriticEnsemble,
    RenormCategoricalCriticEnsemble,
    RenormCriticEnsemble,
)
from s2ac.parts.base import adam, gradient_step, polyak, soft_bellman_target, twin_critic_loss
from s2ac.types import Array, Batch, Metrics

CRITICS: tuple[str, ...] = ("twin", "crossq", "distributional")
"""Every critic kind (the ``critic`` config field)."""


def check_critic(name: str) -> None:
    """``ValueError`` naming the close matches unless ``name`` is a critic kind."""
    if name not in CRITICS:
        close = difflib.get_close_matches(str(name), CRITICS, n=2)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown critic {name!r}{hint} (expected one of {', '.join(CRITICS)})")


@dataclass(frozen=True)
class NextActions:
    """What the critic's bootstrap needs from the actor at the next states ``s'``.

    ``action``: actions at ``s'``, ``(B, d)`` (one per state) or ``(B, n, d)`` (particles, or
    importance samples). ``soft_value`` maps ``min_k Q_k(s', a')`` (shape ``action.shape[:-1]``) to
    ``V(s')`` of shape ``(B,)``: for a policy with a log-density ``q - alpha log pi`` (averaged over
    the ``n`` draws); for SQL, whose sampler has no density, the importance-sampled
    ``alpha logsumexp(q / alpha) - alpha log n + alpha log vol`` of uniform draws on the box
    (:func:`s2ac.agents.sql.soft_value_uniform`). ``log_weight``: the draws' log-density or
    log importance weight, for the record (``None`` where there is none).
    """

    action: Array
    soft_value: Callable[[Array], Array]
    log_weight: Array | None = None
    report_value: bool = False
    """Also return ``value_mean``, the batch mean of ``V(s')`` (SQL logs it). Off by default: an extra
    consumer of ``V`` changes how XLA fuses the target, which moves results by float rounding."""
    draw: Any = None
    """The actor's own record of the draws (S²AC's particles, for their diagnostics), or ``None``."""


def density_next(action: Array, log_prob: Array, alpha: Any) -> NextActions:
    """:class:`NextActions` of draws ``a' ~ pi(.|s')`` with their log-density: ``V = q - alpha log pi``,
    averaged over the draws when there are several per state."""
    if action.ndim == 2:
        return NextActions(action, lambda q: q - alpha * log_prob, log_prob)
    return NextActions(action, lambda q: jnp.mean(q, axis=-1) - alpha * jnp.mean(log_prob, axis=-1), log_prob)


def broadcast_obs(obs: Array, action: Array) -> Array:
    """``obs`` ``(..., o)`` repeated over the sample axis of ``action`` ``(..., n, d)`` if it has one."""
    if action.ndim == obs.ndim + 1:
        return jnp.broadcast_to(obs[..., None, :], action.shape[:-1] + obs.shape[-1:])
    return obs


class Critic(Protocol):
    """The critic protocol (see the module docstring)."""

    name: str
    has_target: bool

    def init(self, key: Array, obs_dim: int, act_dim: int) -> tuple[Any, Any, Any]: ...

    def q(self, params: Any, obs: Array, action: Array) -> Array: ...

    def loss(self, params: Any, target: Any, batch: Batch, next: NextActions) -> tuple[Array, Any]: ...

    def step(self, params: Any, target: Any, opt: Any, batch: Batch, next: NextActions) -> tuple[Any, Any, Metrics]: ...

    def after_step(self, target: Any, params: Any) -> Any: ...


@dataclass(frozen=True)
class CriticSettings:
    """What every critic kind reads from an agent's config."""

    hidden: tuple[int, ...]
    activation: Activation
    lr: float
    adam_beta1: float
    gamma: float
    reward_scale: float
    tau: float
    renorm: BatchRenormSettings
    v_min: float = -200.0
    v_max: float = 200.0
    n_atoms: int = 101

    @classmethod
    def from_config(cls, config: Any) -> CriticSettings:
        return cls(
            tuple(config.critic_hidden),
            config.activation,
            config.critic_lr,
            config.adam_beta1,
            config.gamma,
            config.reward_scale,
            config.tau,
            renorm_settings(config),
            float(getattr(config, "v_min", -200.0)),
            float(getattr(config, "v_max", 200.0)),
            int(getattr(config, "n_atoms", 101)),
        )


def renorm_settings(config: Any) -> BatchRenormSettings:
    """The batch-renorm fields of an agent config."""
    return BatchRenormSettings(
        config.renorm_momentum,
        config.renorm_epsilon,
        config.renorm_r_max,
        config.renorm_d_max,
        config.renorm_warmup_steps,
    )


class TwinCritic:
    """Twin critics with a Polyak target copy (today's critic of every algorithm here)."""

    name = "twin"
    has_target = True

    def __init__(self, settings: CriticSettings):
        self.settings = settings
        self.net = CriticEnsemble(settings.hidden, settings.activation)
        self.tx = adam(settings.lr, settings.adam_beta1)

    def init(self, key: Array, obs_dim: int, act_dim: int) -> tuple[Any, Any, Any]:
        params = self.net.init(key, jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim)))
        return params, params, self.tx.init(params)

    def q(self, params: Any, obs: Array, action: Array) -> Array:
        """``Q_k(s, a)`` for every critic ``k``: shape ``(n_critics, *batch)``."""
        return self.net.apply(params, obs, action)

    def bellman_target(self, batch: Batch, next_soft_value: Array) -> Array:
        """``y = reward_scale r + gamma (1 - terminated) V(s')``."""
        s = self.settings
        return soft_bellman_target(s.reward_scale * batch.reward, batch.terminated, s.gamma, next_soft_value)

    def target_value(self, target: Any, batch: Batch, next: NextActions) -> tuple[Array, Array]:
        """``(y, V(s'))`` with ``V(s')`` from the target critics' ``min_k Qbar_k(s', a')``."""
        next_q = jnp.min(self.q(target, broadcast_obs(batch.next_obs, next.action), next.action), axis=0)
        value = next.soft_value(next_q)
        return self.bellman_target(batch, value), value

    def regression_loss(self, params: Any, batch: Batch, y: Array) -> tuple[Array, Metrics]:
        """:func:`~s2ac.parts.base.twin_critic_loss` of ``Q_k(s, a)`` against the fixed ``y``."""
        q = self.q(params, batch.obs, batch.action)
        return twin_critic_loss(q, y), {"q_mean": jnp.mean(q), "target_mean": jnp.mean(y)}

    def loss(self, params: Any, target: Any, batch: Batch, next: NextActions) -> tuple[Array, Metrics]:
        return self.regression_loss(params, batch, self.target_value(target, batch, next)[0])

    def step(self, params: Any, target: Any, opt: Any, batch: Batch, next: NextActions) -> tuple[Any, Any, Metrics]:
        """One Adam step; the target ``y`` is computed once, outside the gradient."""
        y, value = self.target_value(target, batch, next)
        params, opt, loss, info = gradient_step(self.tx, self.regression_loss, params, opt, batch, y)
        metrics = {"critic_loss": loss, **info}
        if next.report_value:
            metrics["value_mean"] = jnp.mean(value)
        return params, opt, metrics

    def after_step(self, target: Any, params: Any) -> Any:
        """Polyak averaging of the target copy."""
        return polyak(target, params, self.settings.tau)


class CrossQCritic(TwinCritic):
    """Twin batch-renormalised critics, no target network, one joint forward pass (CrossQ).

    ``params`` is the critic's whole Flax variable dict ``{"params", "batch_stats"}``; the optimiser
    state covers ``"params"`` only. ``target`` is ``None``.
    """

    name = "crossq"
    has_target = False

    def __init__(self, settings: CriticSettings):
        self.settings = settings
        self.net = RenormCriticEnsemble(settings.hidden, settings.activation, settings.renorm)
        self.tx = adam(settings.lr, settings.adam_beta1)

    def init(self, key: Array, obs_dim: int, act_dim: int) -> tuple[Any, Any, Any]:
        variables = self.net.init(key, jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim)))
        variables = {"params": variables["params"], "batch_stats": variables["batch_stats"]}
        return variables, None, self.tx.init(variables["params"])

    def q(self, params: Any, obs: Array, action: Array) -> Array:
        """``Q_k(s, a)`` with the running statistics (evaluation mode): shape ``(n_critics, *batch)``."""
        return self.net.apply(params, obs, action, train=False)

    def joint_pass(self, weights: Any, batch_stats: Any, batch: Batch, next: NextActions) -> tuple[Array, Array, Any]:
        """One training-mode pass over the ``B`` rows ``(s, a)`` and the ``B n`` rows ``(s', a')``:
        ``(Q_k(s, a) (K, B), min_k Q_k(s', a') (B[, n]), new batch_stats)``. With ``n`` draws per next
        state the statistics weigh the next rows ``n`` times."""
        q_all, size, new_stats = self.train_pass(weights, batch_stats, batch, next)
        next_q = jnp.min(q_all[:, size:], axis=0).reshape(next.action.shape[:-1])
        return q_all[:, :size], next_q, new_stats

    def train_pass(self, weights: Any, batch_stats: Any, batch: Batch, next: NextActions) -> tuple[Array, int, Any]:
        """The network in training mode over the ``B`` rows ``(s, a)`` followed by the ``B n`` rows
        ``(s', a')``: ``(output (K, B + B n, ...), B, new batch_stats)``."""
        n_obs = broadcast_obs(batch.next_obs, next.action)
        obs = jnp.concatenate([batch.obs, n_obs.reshape(-1, n_obs.shape[-1])])
        action = jnp.concatenate([batch.action, next.action.reshape(-1, next.action.shape[-1])])
        out, updates = self.net.apply(
            {"params": weights, "batch_stats": batch_stats}, obs, action, train=True, mutable=["batch_stats"]
        )
        return out, batch.obs.shape[0], updates["batch_stats"]

    def joint_loss(self, weights: Any, batch_stats: Any, batch: Batch, next: NextActions) -> tuple[Array, Any]:
        q, next_q, new_stats = self.joint_pass(weights, batch_stats, batch, next)
        value = jax.lax.stop_gradient(next.soft_value(next_q))
        y = self.bellman_target(batch, value)
        info = {"q_mean": jnp.mean(q), "target_mean": jnp.mean(y), "value_mean": jnp.mean(value)}
        return twin_critic_loss(q, y), (info, new_stats)

    def loss(self, params: Any, target: Any, batch: Batch, next: NextActions) -> tuple[Array, Metrics]:
        loss, (info, _) = self.joint_loss(params["params"], params["batch_stats"], batch, next)
        return loss, info

    def step(self, params: Any, target: Any, opt: Any, batch: Batch, next: NextActions) -> tuple[Any, Any, Metrics]:
        """One Adam step on the weights; the running statistics move by the joint pass."""
        weights, opt, loss, (info, stats) = gradient_step(
            self.tx, self.joint_loss, params["params"], opt, params["batch_stats"], batch, next
        )
        return {"params": weights, "batch_stats": stats}, opt, {"critic_loss": loss, **info}

    def after_step(self, target: Any, params: Any) -> Any:
        """Nothing: there is no target network."""
        return None


class DistributionalCritic(CrossQCritic):
    """Two batch-renormalised categorical critics, no target network, one joint pass (DIME's critic).

    Each critic ``k`` gives logits over the atoms ``z_j`` of (C1); ``q`` returns the expected value
    ``sum_j p_kj z_j`` (C5) in evaluation mode, so every actor sees an ordinary ``Q``. The bootstrap
    (C3) projects each critic's next-state distribution (the mixture over the draws when ``next``
    has several per state) shifted by ``r + gamma (1 - d) * bonus`` and scaled by ``gamma (1 - d)``
    (C2), and averages the two projections; ``bonus = V(s') - E[Q]`` is read from
    ``next.soft_value`` at ``Q = 0``, which is ``-alpha log pi`` for every density-based actor (an
    actor whose value is not affine in ``Q``, SQL's importance sampling, cannot use this critic).
    Loss (C4): cross-entropy to the target plus ``0.005`` times the negative entropy of the prediction,
    batch mean, summed over the critics. ``outside_mass`` (the target mass clipped to the support's
    ends) is returned as a metric; the training loop warns once when it is not small.
    """

    name = "distributional"
    has_target = False

    def __init__(self, settings: CriticSettings):
        dist.check_support(settings.v_min, settings.v_max, settings.n_atoms)
        self.settings = settings
        self.atoms = dist.support(settings.v_min, settings.v_max, settings.n_atoms)
        self.net = RenormCategoricalCriticEnsemble(
            settings.hidden, settings.n_atoms, settings.activation, settings.renorm
        )
        self.tx = adam(settings.lr, settings.adam_beta1)

    def logits(self, params: Any, obs: Array, action: Array) -> Array:
        """Logits ``(n_critics, *batch, n_atoms)`` in evaluation mode."""
        return self.net.apply(params, obs, action, train=False)

    def q(self, params: Any, obs: Array, action: Array) -> Array:
        """(C5) ``Q_k(s, a) = sum_j softmax(logits_k)_j z_j`` (running statistics): ``(n_critics, *batch)``."""
        return dist.expected_q(self.logits(params, obs, action), self.atoms)

    def target_distribution(self, next_probs: Array, batch: Batch, bonus: Array) -> tuple[Array, Array]:
        """(C3) for the batch: ``next_probs`` ``(2, B, n_atoms)``, ``bonus`` ``(B,)`` -> the target
        ``(B, n_atoms)`` (mean of the two projected distributions) and the target mass outside the support."""
        s = self.settings
        reward = s.reward_scale * batch.reward
        discount = s.gamma * (1.0 - batch.terminated)
        target = jax.vmap(dist.bootstrap_target, in_axes=(0, 0, None, 0, 0, 0))(
            next_probs[0], next_probs[1], self.atoms, reward, discount, bonus
        )
        shift = reward + discount * bonus
        outside = jax.vmap(
            lambda p1, p2, sh, sc: (
                0.5 * (dist.outside_mass(p1, self.atoms, sh, sc) + dist.outside_mass(p2, self.atoms, sh, sc))
            )
        )(next_probs[0], next_probs[1], shift, discount)
        return target, outside

    def joint_loss(self, weights: Any, batch_stats: Any, batch: Batch, next: NextActions) -> tuple[Array, Any]:
        logits, size, new_stats = self.train_pass(weights, batch_stats, batch, next)
        n_critics = logits.shape[0]
        next_probs = jax.nn.softmax(jax.lax.stop_gradient(logits[:, size:]), axis=-1)
        next_probs = next_probs.reshape(n_critics, *next.action.shape[:-1], self.settings.n_atoms)
        if next.action.ndim == 3:  # several draws per next state: their mixture
            next_probs = jnp.mean(next_probs, axis=2)
        bonus = jax.lax.stop_gradient(next.soft_value(jnp.zeros(next.action.shape[:-1], jnp.float32)))
        target, outside = self.target_distribution(next_probs, batch, bonus)
        ce = jax.vmap(jax.vmap(dist.cross_entropy_loss, in_axes=(0, 0)), in_axes=(0, None))(logits[:, :size], target)
        q = dist.expected_q(logits[:, :size], self.atoms)
        info = {
            "q_mean": jnp.mean(q),
            "target_mean": jnp.mean(jnp.sum(target * self.atoms, axis=-1)),
            "value_mean": jnp.mean(jnp.sum(jnp.mean(next_probs, axis=0) * self.atoms, axis=-1) + bonus),
            "outside_mass": jnp.mean(outside),
        }
        return jnp.sum(jnp.mean(ce, axis=-1)), (info, new_stats)


def make_critic(config: Any) -> Critic:
    """The critic part named by ``config.critic``."""
    check_critic(config.critic)
    settings = CriticSettings.from_config(config)
    kinds = {"twin": TwinCritic, "crossq": CrossQCritic, "distributional": DistributionalCritic}
    return kinds[config.critic](settings)


__all__ = [
    "CRITICS",
    "Critic",
    "CriticSettings",
    "CrossQCritic",
    "DistributionalCritic",
    "NextActions",
    "TwinCritic",
    "broadcast_obs",
    "check_critic",
    "density_next",
    "make_critic",
    "renorm_settings",
]
