"""Primitives every part shares: the optimiser, one gradient step (:func:`gradient_step`), Polyak
averaging, the soft Bellman target, the twin-critic regression loss and the policy-delay gate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from s2ac import schedules
from s2ac.types import Array, Metrics


def adam(learning_rate: float, b1: float = 0.9) -> optax.GradientTransformation:
    """Adam as used by every part (authors: Adam, lr 1e-3; CrossQ: ``b1 = 0.5``), at the rate's schedule
    (:mod:`s2ac.schedules`: constant, or linear to 0 when the agent's config says so)."""
    return optax.adam(schedules.learning_rate(learning_rate), b1=b1)


def apply_gradients(tx: optax.GradientTransformation, params: Any, opt_state: Any, grads: Any) -> tuple[Any, Any]:
    """One optimiser step: returns ``(new_params, new_opt_state)``."""
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def gradient_step(
    tx: optax.GradientTransformation, loss_fn: Callable[..., tuple[Array, Any]], params: Any, opt_state: Any, *args: Any
) -> tuple[Any, Any, Array, Any]:
    """The one gradient step every part takes: ``(loss, aux), g = value_and_grad(loss_fn)(params, *args)``
    (``g = d loss / d params``; ``args`` carry no gradient), then :func:`apply_gradients`. Returns
    ``(new_params, new_opt_state, loss, aux)``."""
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, *args)
    params, opt_state = apply_gradients(tx, params, opt_state, grads)
    return params, opt_state, loss, aux


def polyak(target: Any, online: Any, tau: float) -> Any:
    """``target <- (1 - tau) target + tau online`` (soft target update)."""
    return optax.incremental_update(online, target, tau)


def soft_bellman_target(reward: Array, terminated: Array, gamma: float, next_soft_value: Array) -> Array:
    """``y = r + gamma (1 - terminated) V_soft(s')``; truncation is not terminal (REFERENCE.md §1)."""
    return reward + gamma * (1.0 - terminated) * next_soft_value


def twin_critic_loss(q_values: Array, target: Array) -> Array:
    """``sum_k 0.5 * mean_b (Q_k(s_b, a_b) - y_b)^2`` for ``q_values`` of shape ``(n_critics, B)``."""
    return 0.5 * jnp.sum(jnp.mean((q_values - jax.lax.stop_gradient(target)[None]) ** 2, axis=-1))


def every(period: int, step: Array, fn: Callable[[Any], tuple[Any, Metrics]], fields: Any) -> tuple[Any, Metrics]:
    """``fn(fields)`` on updates whose ``step`` is a multiple of ``period`` (the policy delay), else
    ``fields`` unchanged with zero metrics. ``period == 1`` calls ``fn`` directly (no ``lax.cond``, so
    the compiled update is the one without a delay)."""
    if period == 1:
        return fn(fields)

    def skip(fields: Any) -> tuple[Any, Metrics]:
        shapes = jax.eval_shape(fn, fields)[1]
        return fields, jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    return jax.lax.cond(step % period == 0, fn, skip, fields)
