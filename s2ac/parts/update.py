"""One composed max-entropy actor-critic update, the same for every algorithm here.

For a state ``s`` and a minibatch ``B`` (keys ``k_next``, ``k_actor`` split from the state's key)::

    alpha      = temperature.value(log_alpha)
    next       = actor.next(actor_params, Q(critic_params), B, k_next, alpha)      # a' at s'
    critic     = critic.step(critic_params, critic_target, critic_opt, B, next)   # soft Bellman regression
    if step % policy_delay == 0:
        actor      = actor.step(actor_params, actor_opt, Q(new critic_params), B.obs, k_actor, alpha)
        log_alpha  = temperature.step(log_alpha, alpha_opt, H)                     # H: actor's or next's entropy
    critic_target = critic.after_step(critic_target, new critic_params)          # Polyak, or nothing
    [follower.follow(..., actor.sample(new state at B.obs))]                      # S²AC's amortizer

The actor sees the critic only through ``Q(params) = partial(critic.q, params)``. Every gradient
step is :func:`~s2ac.parts.base.gradient_step`. The state's field names are the parts' own
(``actor.fields``, ``temperature.fields``), so every agent keeps its state and checkpoint layout.
An agent's ``jax.jit`` of this function is built once per (config, env spec) by
:func:`s2ac.agents.make_agent`.
"""

from __future__ import annotations

import functools
from typing import Any

import jax

from s2ac.parts.base import every
from s2ac.types import Array, Batch, Metrics


class ActorCriticUpdate:
    """``update(state, batch) -> (state, metrics)`` from a critic, an actor, a temperature and the
    policy delay (see the module docstring); ``follower`` is an optional second actor trained after
    the update on the first one's draws (:class:`~s2ac.parts.actors.Amortizer`)."""

    def __init__(self, critic: Any, actor: Any, temperature: Any, policy_delay: int, follower: Any = None):
        self.critic, self.actor, self.temperature = critic, actor, temperature
        self.policy_delay, self.follower = policy_delay, follower

    def q_fn(self, critic_params: Any):
        """The critic as the actor sees it: ``q_fn(obs, action) -> Q_k(s, a)`` in evaluation mode."""
        return functools.partial(self.critic.q, critic_params)

    def temperature_fields(self, state: Any) -> tuple[Any, Any]:
        """``(log_alpha, alpha_opt)`` of ``state``, ``(None, None)`` for a stateless temperature."""
        if not self.temperature.fields:
            return None, None
        return tuple(getattr(state, f) for f in self.temperature.fields)

    def policy_step(self, fields: tuple, q_fn: Any, obs: Array, key: Array, alpha: Any, next_info: Metrics):
        """One actor step, then one temperature step on the policy's entropy."""
        actor_params, actor_opt, log_alpha, alpha_opt = fields
        actor_params, actor_opt, info = self.actor.step(actor_params, actor_opt, q_fn, obs, key, alpha)
        if self.temperature.steps:
            if self.actor.entropy_from == "step":
                entropy = info[getattr(self.actor, "entropy_metric", "entropy")]
            else:
                entropy = next_info["entropy"]
            log_alpha, alpha_opt, info["alpha_loss"] = self.temperature.step(log_alpha, alpha_opt, entropy)
        return (actor_params, actor_opt, log_alpha, alpha_opt), info

    def __call__(self, state: Any, batch: Batch) -> tuple[Any, Metrics]:
        critic, actor, temperature = self.critic, self.actor, self.temperature
        key, k_next, k_actor = jax.random.split(state.key, 3)
        actor_params, actor_opt = (getattr(state, f) for f in actor.fields)
        log_alpha, alpha_opt = self.temperature_fields(state)
        alpha = temperature.value(log_alpha)

        next = actor.next(actor_params, self.q_fn(state.critic_params), batch, k_next, alpha)
        critic_params, critic_opt, metrics = critic.step(
            state.critic_params, state.critic_target, state.critic_opt, batch, next
        )
        next_info = actor.next_metrics(next)

        q_fn = self.q_fn(critic_params)
        fields = (actor_params, actor_opt, log_alpha, alpha_opt)
        (actor_params, actor_opt, log_alpha, alpha_opt), info = every(
            self.policy_delay,
            state.step,
            lambda f: self.policy_step(f, q_fn, batch.obs, k_actor, alpha, next_info),
            fields,
        )
        metrics.update(info)
        metrics.update(next_info)
        metrics["alpha"] = temperature.report(log_alpha)

        policy = dict(zip(actor.fields, (actor_params, actor_opt), strict=True))
        policy.update(zip(temperature.fields, (log_alpha, alpha_opt), strict=False))
        state = state.replace(
            critic_params=critic_params,
            critic_target=critic.after_step(state.critic_target, critic_params),
            critic_opt=critic_opt,
            key=key,
            step=state.step + 1,
            **policy,
        )
        if self.follower is not None:
            state, f_info = self.follow(state, batch)
            metrics.update(f_info)
        return state, metrics

    def follow(self, state: Any, batch: Batch) -> tuple[Any, Metrics]:
        """The follower's step toward the updated actor's draws at the batch's states (forward only)."""
        key, k_draw, k_follow = jax.random.split(state.key, 3)
        log_alpha, _ = self.temperature_fields(state)
        leader = jax.lax.stop_gradient(
            self.actor.sample(
                getattr(state, self.actor.fields[0]),
                self.q_fn(state.critic_params),
                batch.obs,
                k_draw,
                self.temperature.value(log_alpha),
            )
        )
        params, opt = (getattr(state, f) for f in self.follower.fields)
        params, opt, info = self.follower.follow(params, opt, leader, batch.obs, k_follow)
        return state.replace(key=key, **dict(zip(self.follower.fields, (params, opt), strict=True))), info


__all__ = ["ActorCriticUpdate"]
