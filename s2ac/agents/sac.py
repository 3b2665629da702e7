"""Soft Actor-Critic (Haarnoja et al. 2018): tanh-Gaussian actor, fixed or tuned alpha, on any critic
part (``critic="twin"``: twin critics with a Polyak target; ``"crossq"``: CrossQ's critic)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import flax
import jax
import jax.numpy as jnp

from s2ac.agents.common import ActorCriticState, CriticAgent, apply_gradients, check_act_mode
from s2ac.checks import require
from s2ac.config import AgentConfig, is_multigoal
from s2ac.distributions import normal_log_prob, squash, squash_log_det
from s2ac.nets import GaussianHead, RenormGaussianHead
from s2ac.parts.base import every
from s2ac.parts.critics import density_next, renorm_settings
from s2ac.parts.temperature import Temperature
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
    actor_renorm: bool = False
    """Batch-renormalise the actor as the critic (CrossQ's ``brn_actor``): the actor loss runs in training
    mode, acting and next-state draws use the running statistics."""
    log_std_min: float = -5.0
    """Lower clip of the actor's log standard deviation."""
    log_std_max: float = 2.0
    """Upper clip of the actor's log standard deviation."""

    def validate(self) -> None:
        super().validate()
        require(self.log_std_min < self.log_std_max, "log_std_min must be < log_std_max")
        require(
            not self.actor_renorm or self.batch_size >= 2,
            f"actor_renorm normalises by batch statistics, which need batch_size >= 2; got {self.batch_size}",
        )


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
    log_density_kind = "exact"
    """What ``sample_action``'s log-density is: ``"exact"`` (change of variables); DIME's is a
    ``"lower_bound"`` on the entropy (:data:`s2ac.diffusion.LOG_DENSITY_KIND`)."""
    entropy_metric = "entropy"
    """The metric name of the policy's entropy estimate, which the temperature reads."""

    def __init__(self, config: SACConfig, spec: EnvSpec):
        super().__init__(config, spec)
        self.renorm = getattr(config, "actor_renorm", False)
        if self.renorm:
            self.actor = RenormGaussianHead(
                config.actor_hidden,
                spec.act_dim,
                config.activation,
                config.log_std_min,
                config.log_std_max,
                renorm_settings(config),
            )
        else:
            self.actor = GaussianHead(
                config.actor_hidden, spec.act_dim, config.activation, config.log_std_min, config.log_std_max
            )
        self.actor_tx = self.adam(config.actor_lr)
        self.temperature = Temperature.from_config(config, spec.act_dim)
        self.alpha_tx = self.temperature.tx
        self.target_entropy = self.temperature.target_entropy

    # -- initialisation ---------------------------------------------------
    def init_policy(self, key: Array) -> dict:
        """The actor, ``log alpha`` and their optimiser states (a batch-renormalised actor's
        optimiser covers its weights, not its running statistics)."""
        actor_params = self.actor.init(key, jnp.zeros((1, self.spec.obs_dim)))
        if self.renorm:
            actor_params = {"params": actor_params["params"], "batch_stats": actor_params["batch_stats"]}
        log_alpha, alpha_opt = self.temperature.init()
        return {
            "actor_params": actor_params,
            "actor_opt": self.actor_tx.init(actor_params["params"] if self.renorm else actor_params),
            "log_alpha": log_alpha,
            "alpha_opt": alpha_opt,
        }

    # -- policy -------------------------------------------------------------
    def draw(self, mean: Array, log_std: Array, key: Array) -> tuple[Array, Array]:
        """Reparameterised ``a = squash(mu + std * xi)`` and ``log pi(a|s)`` with the tanh correction."""
        std = jnp.exp(log_std)
        u = mean + std * jax.random.normal(key, mean.shape)
        log_prob = normal_log_prob(u, mean, std) - squash_log_det(u, self.box)
        return squash(u, self.box), log_prob

    def sample_action(self, actor_params: Any, obs: Array, key: Array) -> tuple[Array, Array]:
        """Reparameterised ``a = squash(mu + std * xi)`` and ``log pi(a|s)`` (running statistics for a
        batch-renormalised actor)."""
        return self.draw(*self.actor.apply(actor_params, obs), key)

    def _act(self, state: SACState, obs: Array, key: Array, mode: str = "random") -> Array:
        """``"random"``, ``"softmax"``: a policy draw; ``"max"``, ``"mean"``: ``squash(mu(s))``."""
        check_act_mode(mode, self.act_modes)
        if mode in ("random", "softmax"):
            return self.sample_action(state.actor_params, obs, key)[0]
        mean, _ = self.actor.apply(state.actor_params, obs)
        return squash(mean, self.box)

    # -- losses ---------------------------------------------------------------
    def soft_value(self, state: SACState, next_obs: Array, key: Array) -> Array:
        """``V(s') = min_k Qbar_k(s', a') - alpha log pi(a'|s')`` with one ``a' ~ pi(.|s')`` (target critics)."""
        next_action, next_log_prob = self.sample_action(state.actor_params, next_obs, key)
        next_q = self.min_q(state.critic_target, next_obs, next_action)
        return next_q - jnp.exp(state.log_alpha) * next_log_prob

    def actor_loss(self, actor_params, critic_params, log_alpha, obs: Array, key: Array) -> tuple[Array, Metrics]:
        """``E_s[ alpha log pi(a|s) - min_k Q_k(s, a) ]`` with ``a`` reparameterised (Q in evaluation mode)."""
        action, log_prob = self.sample_action(actor_params, obs, key)
        return self.policy_objective(action, log_prob, critic_params, log_alpha, obs)

    def renorm_actor_loss(self, weights, batch_stats, critic_params, log_alpha, obs: Array, key: Array):
        """:meth:`actor_loss` of a batch-renormalised actor in training mode; the aux output carries
        ``(metrics, new batch_stats)``."""
        variables = {"params": weights, "batch_stats": batch_stats}
        (mean, log_std), updates = self.actor.apply(variables, obs, train=True, mutable=["batch_stats"])
        action, log_prob = self.draw(mean, log_std, key)
        loss, info = self.policy_objective(action, log_prob, critic_params, log_alpha, obs)
        return loss, (info, updates["batch_stats"])

    def policy_objective(self, action, log_prob, critic_params, log_alpha, obs: Array) -> tuple[Array, Metrics]:
        q = jnp.min(self.q(critic_params, obs, action), axis=0)
        loss = jnp.mean(jnp.exp(log_alpha) * log_prob - q)
        return loss, {"entropy": -jnp.mean(log_prob)}

    def alpha_loss(self, log_alpha: Array, entropy: Array) -> Array:
        """``-log_alpha * (target_entropy - H)``: raises alpha when the entropy is below target."""
        return self.temperature.loss(log_alpha, entropy)

    # -- update -------------------------------------------------------------
    def actor_step(self, fields: tuple, critic_params: Any, obs: Array, key: Array) -> tuple[tuple, Metrics]:
        """One actor step, then one temperature step: ``fields = (actor_params, actor_opt, log_alpha, alpha_opt)``."""
        actor_params, actor_opt, log_alpha, alpha_opt = fields
        if self.renorm:
            (loss, (info, stats)), grads = jax.value_and_grad(self.renorm_actor_loss, has_aux=True)(
                actor_params["params"], actor_params["batch_stats"], critic_params, log_alpha, obs, key
            )
            weights, actor_opt = apply_gradients(self.actor_tx, actor_params["params"], actor_opt, grads)
            actor_params = {"params": weights, "batch_stats": stats}
        else:
            (loss, info), grads = jax.value_and_grad(self.actor_loss, has_aux=True)(
                actor_params, critic_params, log_alpha, obs, key
            )
            actor_params, actor_opt = apply_gradients(self.actor_tx, actor_params, actor_opt, grads)
        log_alpha, alpha_opt, al_loss = self.temperature.step(log_alpha, alpha_opt, info[self.entropy_metric])
        return (actor_params, actor_opt, log_alpha, alpha_opt), {"actor_loss": loss, "alpha_loss": al_loss, **info}

    def _update(self, state: SACState, batch: Batch) -> tuple[SACState, Metrics]:
        self.trace_count += 1  # runs at trace time only: counts compilations
        key, k_critic, k_actor = jax.random.split(state.key, 3)
        next_action, next_log_prob = self.sample_action(state.actor_params, batch.next_obs, k_critic)
        next_actions = density_next(next_action, next_log_prob, jnp.exp(state.log_alpha))
        critic_params, critic_opt, c_info = self.critic_step(state, batch, next_actions)

        fields = (state.actor_params, state.actor_opt, state.log_alpha, state.alpha_opt)
        (actor_params, actor_opt, log_alpha, alpha_opt), a_info = every(
            self.config.policy_delay,
            state.step,
            lambda f: self.actor_step(f, critic_params, batch.obs, k_actor),
            fields,
        )
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
        return new_state, {"alpha": jnp.exp(log_alpha), **c_info, **a_info}
