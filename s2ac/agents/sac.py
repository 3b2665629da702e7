"""Soft Actor-Critic (Haarnoja et al. 2018): tanh-Gaussian actor, twin critics, fixed or tuned alpha."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import flax
import jax
import jax.numpy as jnp

from s2ac.agents.common import ActorCriticState, CriticAgent, adam, apply_gradients, check_act_mode
from s2ac.checks import finite_positive, require
from s2ac.config import AgentConfig, is_multigoal
from s2ac.distributions import normal_log_prob, squash, squash_log_det
from s2ac.nets import GaussianHead
from s2ac.types import Array, Batch, EnvSpec, Metrics


@dataclass(frozen=True)
class SACConfig(AgentConfig):
    """Soft Actor-Critic with a tanh-Gaussian actor (Haarnoja et al. 2018)."""

    advanced_fields: ClassVar[tuple[str, ...]] = (
        "log_std_min",
        "log_std_max",
    )

    actor_hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the Gaussian actor (SAC paper: 2 x 256)."""
    auto_alpha: bool = False
    """Tune alpha to reach ``target_entropy`` (SAC v2) instead of keeping it fixed."""
    target_entropy: float | None = None
    """Target entropy for automatic alpha; None means -action_dim (SAC v2)."""
    alpha_lr: float = 3e-4
    """Adam learning rate of log alpha (SAC v2: 3e-4)."""
    log_std_min: float = -5.0
    """Lower clip of the actor's log standard deviation."""
    log_std_max: float = 2.0
    """Upper clip of the actor's log standard deviation."""

    def validate(self) -> None:
        super().validate()
        finite_positive("alpha_lr", self.alpha_lr)
        require(self.log_std_min < self.log_std_max, "log_std_min must be < log_std_max")
        if self.target_entropy is not None:
            require(math.isfinite(self.target_entropy), f"target_entropy must be finite; got {self.target_entropy!r}")


def preset_fields(preset: str, env_id: str) -> dict:
    """SAC's own preset fields: SAC v2's tuned alpha, except under the authors' settings and on
    multigoal, where every algorithm is compared at the same fixed temperature."""
    return {"auto_alpha": preset != "paper" and not is_multigoal(env_id)}


@flax.struct.dataclass
class SACState(ActorCriticState):
    """Flat training state: critics, actor, their optimiser states, ``log alpha`` and its optimiser, key, counter."""

    log_alpha: Array
    alpha_opt: Any


class SACAgent(CriticAgent):
    """SAC with the shared ``init`` / ``update`` / ``act`` interface."""

    state_class = SACState
    policy_density = "sample_action"
    """``sample_action`` returns each draw's exact log-density (SAC-NF inherits it)."""

    def __init__(self, config: SACConfig, spec: EnvSpec):
        super().__init__(config, spec)
        self.actor = GaussianHead(
            config.actor_hidden, spec.act_dim, config.activation, config.log_std_min, config.log_std_max
        )
        self.actor_tx = adam(config.actor_lr)
        self.alpha_tx = adam(config.alpha_lr)
        self.target_entropy = -float(spec.act_dim) if config.target_entropy is None else config.target_entropy

    # -- initialisation ---------------------------------------------------
    def init_policy(self, key: Array) -> dict:
        """The actor, ``log alpha`` and their optimiser states."""
        actor_params = self.actor.init(key, jnp.zeros((1, self.spec.obs_dim)))
        log_alpha = jnp.asarray(jnp.log(self.config.alpha), jnp.float32)
        return {
            "actor_params": actor_params,
            "actor_opt": self.actor_tx.init(actor_params),
            "log_alpha": log_alpha,
            "alpha_opt": self.alpha_tx.init(log_alpha),
        }

    # -- policy -------------------------------------------------------------
    def sample_action(self, actor_params: Any, obs: Array, key: Array) -> tuple[Array, Array]:
        """Reparameterised ``a = squash(mu + std * xi)`` and ``log pi(a|s)`` with the tanh correction."""
        mean, log_std = self.actor.apply(actor_params, obs)
        std = jnp.exp(log_std)
        u = mean + std * jax.random.normal(key, mean.shape)
        log_prob = normal_log_prob(u, mean, std) - squash_log_det(u, self.box)
        return squash(u, self.box), log_prob

    def _act(self, state: SACState, obs: Array, key: Array, mode: str = "random") -> Array:
        """``"random"``, ``"softmax"``: a policy draw; ``"max"``, ``"mean"``: ``squash(mu(s))``."""
        check_act_mode(mode, self.act_modes)
        if mode in ("random", "softmax"):
            return self.sample_action(state.actor_params, obs, key)[0]
        mean, _ = self.actor.apply(state.actor_params, obs)
        return squash(mean, self.box)

    # -- losses ---------------------------------------------------------------
    def soft_value(self, state: SACState, next_obs: Array, key: Array) -> Array:
        """``V(s') = min_k Qbar_k(s', a') - alpha log pi(a'|s')`` with one ``a' ~ pi(.|s')``."""
        next_action, next_log_prob = self.sample_action(state.actor_params, next_obs, key)
        next_q = jnp.min(self.critic.apply(state.critic_target, next_obs, next_action), axis=0)
        return next_q - jnp.exp(state.log_alpha) * next_log_prob

    def actor_loss(self, actor_params, critic_params, log_alpha, obs: Array, key: Array) -> tuple[Array, Metrics]:
        """``E_s[ alpha log pi(a|s) - min_k Q_k(s, a) ]`` with ``a`` reparameterised."""
        action, log_prob = self.sample_action(actor_params, obs, key)
        q = jnp.min(self.critic.apply(critic_params, obs, action), axis=0)
        loss = jnp.mean(jnp.exp(log_alpha) * log_prob - q)
        return loss, {"entropy": -jnp.mean(log_prob)}

    def alpha_loss(self, log_alpha: Array, entropy: Array) -> Array:
        """``-log_alpha * (target_entropy - H)``: raises alpha when the entropy is below target."""
        return log_alpha * jax.lax.stop_gradient(entropy - self.target_entropy)

    # -- update -------------------------------------------------------------
    def _update(self, state: SACState, batch: Batch) -> tuple[SACState, Metrics]:
        self.trace_count += 1  # runs at trace time only: counts compilations
        key, k_critic, k_actor = jax.random.split(state.key, 3)
        target = self.bellman_target(batch, self.soft_value(state, batch.next_obs, k_critic))
        critic_params, critic_opt, c_info = self.critic_step(state, batch, target)

        (a_loss, a_info), a_grads = jax.value_and_grad(self.actor_loss, has_aux=True)(
            state.actor_params, critic_params, state.log_alpha, batch.obs, k_actor
        )
        actor_params, actor_opt = apply_gradients(self.actor_tx, state.actor_params, state.actor_opt, a_grads)

        log_alpha, alpha_opt, al_loss = state.log_alpha, state.alpha_opt, jnp.zeros(())
        if self.config.auto_alpha:
            al_loss, al_grad = jax.value_and_grad(self.alpha_loss)(state.log_alpha, a_info["entropy"])
            log_alpha, alpha_opt = apply_gradients(self.alpha_tx, state.log_alpha, state.alpha_opt, al_grad)

        new_state = self.advance(
            state,
            critic_params,
            critic_opt,
            key,
            actor_params=actor_params,
            actor_opt=actor_opt,
            log_alpha=log_alpha,
            alpha_opt=alpha_opt,
        )
        metrics = {
            "actor_loss": a_loss,
            "alpha": jnp.exp(log_alpha),
            "alpha_loss": al_loss,
            **c_info,
            **a_info,
        }
        return new_state, metrics
