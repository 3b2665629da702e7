"""What the agents share: their interface, Polyak averaging, the soft Bellman target, the twin-critic
loss, the optimiser, and running many compiled updates in one call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import optax

from s2ac.types import Array, Batch, EnvSpec, Metrics


class Agent(Protocol):
    """The shape shared by every algorithm (pure functions over a flat state pytree)."""

    config: Any
    spec: EnvSpec
    policy_density: str
    """How the policy's log-density is available: one of :data:`POLICY_DENSITIES`."""

    def init(self, key: Array) -> Any: ...

    def update(self, state: Any, batch: Batch) -> tuple[Any, Metrics]: ...

    def act(self, state: Any, obs: Array, key: Array, mode: str) -> Array: ...


ACT_MODES = ("random", "max", "softmax", "mean")

POLICY_DENSITIES = ("particles", "sample_action", "none")
"""``particles``: ``sample_particles(actor_params, critic_params, obs, key).log_prob`` (S²AC's SVGD density);
``sample_action``: ``sample_action(actor_params, obs, key) -> (action, log_prob)`` (SAC, SAC-NF);
``none``: no tractable density (SQL)."""


WORST_CASE_METRICS = ("invertibility_margin", "actor_invertibility_margin")
"""Update metrics reduced by their maximum over a round's updates (see :func:`scan_updates`)."""


def polyak(target: Any, online: Any, tau: float) -> Any:
    """``target <- (1 - tau) target + tau online`` (soft target update)."""
    return optax.incremental_update(online, target, tau)


def soft_bellman_target(reward: Array, terminated: Array, gamma: float, next_soft_value: Array) -> Array:
    """``y = r + gamma (1 - terminated) V_soft(s')``; truncation is not terminal (REFERENCE.md §1)."""
    return reward + gamma * (1.0 - terminated) * next_soft_value


def twin_critic_loss(q_values: Array, target: Array) -> Array:
    """``sum_k 0.5 * mean_b (Q_k(s_b, a_b) - y_b)^2`` for ``q_values`` of shape ``(n_critics, B)``."""
    return 0.5 * jnp.sum(jnp.mean((q_values - jax.lax.stop_gradient(target)[None]) ** 2, axis=-1))


def scan_updates(update: Callable[[Any, Batch], tuple[Any, Metrics]]) -> Callable[[Any, Batch], tuple[Any, Metrics]]:
    """Many gradient steps in one compiled call: ``batches`` has a leading ``(n_updates,)`` axis.

    Returns the final state and the metrics averaged over the updates (so the host syncs
    once per chunk, not per gradient step), except :data:`WORST_CASE_METRICS`, which are maxima:
    a bound such as the invertibility margin must hold at every update, not on average.
    """

    def run(state: Any, batches: Batch) -> tuple[Any, Metrics]:
        state, metrics = jax.lax.scan(update, state, batches)
        return state, {k: (jnp.max if k in WORST_CASE_METRICS else jnp.mean)(v, axis=0) for k, v in metrics.items()}

    return run


def apply_gradients(tx: optax.GradientTransformation, params: Any, opt_state: Any, grads: Any) -> tuple[Any, Any]:
    """One optimiser step: returns ``(new_params, new_opt_state)``."""
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def adam(learning_rate: float) -> optax.GradientTransformation:
    """Adam as used by every agent here (authors: Adam, lr 1e-3)."""
    return optax.adam(learning_rate)
