"""Soft Actor-Critic (Haarnoja et al. 2018): tanh-Gaussian actor, fixed or tuned alpha, on any critic
part (``critic="twin"``: twin critics with a Polyak target; ``"crossq"``: CrossQ's critic)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import flax
import jax.numpy as jnp

from s2ac.agents.common import ActorCriticState, CriticAgent, check_act_mode
from s2ac.checks import require
from s2ac.config import AgentConfig, is_multigoal
from s2ac.nets import GaussianHead, RenormGaussianHead
from s2ac.parts.actors import DensityActor, soft_policy_objective
from s2ac.parts.critics import renorm_settings
from s2ac.parts.temperature import Temperature
from s2ac.types import Array, EnvSpec, Metrics


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
    """SAC with the shared ``init`` / ``update`` / ``act`` interface: a :class:`~s2ac.parts.actors.DensityActor`
    (tanh-Gaussian, or batch-renormalised with ``actor_renorm``), a temperature read from the state,
    and the config's critic, composed by :class:`~s2ac.parts.update.ActorCriticUpdate`.

    Override points for a subclass with another actor (SAC-NF): :meth:`actor_net` (or ``self.actor``,
    the network), ``self.actor_tx``, :meth:`sample_action` (the draw and its log-density, used by the
    update, acting and the losses), :meth:`policy_objective`, :meth:`init_policy`, ``_act`` and the
    class attributes below. :attr:`actor_part` is built from them when it is read.
    """

    state_class = SACState
    policy_density = "sample_action"
    """``sample_action`` returns each draw's exact log-density (SAC-NF inherits it)."""
    log_density_kind = "exact"
    """What ``sample_action``'s log-density is (:data:`s2ac.parts.actors.LOG_DENSITIES`)."""
    entropy_metric = "entropy"
    """The metric name of the policy's entropy estimate, which the temperature reads."""
    actor_kind = "gaussian"
    """The registry's name of this agent's actor."""

    def __init__(self, config: SACConfig, spec: EnvSpec):
        super().__init__(config, spec)
        self.renorm = getattr(config, "actor_renorm", False)
        self.actor = self.actor_net()
        self.actor_tx = self.adam(config.actor_lr)
        self.temperature = Temperature.from_config(config, spec.act_dim)
        self.alpha_tx = self.temperature.tx
        self.target_entropy = self.temperature.target_entropy

    @property
    def actor_part(self) -> DensityActor:
        """The actor part, from the agent's network, optimiser, sampler and objective."""
        return DensityActor(
            self.actor,
            self.box,
            self.actor_tx,
            self.spec.obs_dim,
            self.sample_action,
            self.renorm,
            self.actor_kind,
            self.policy_objective,
            self.entropy_metric,
            self.log_density_kind,
        )

    def actor_net(self) -> Any:
        """The actor network: ``apply(params, obs) -> (mean, log_std)``."""
        cfg = self.config
        if self.renorm:
            return RenormGaussianHead(
                cfg.actor_hidden,
                self.spec.act_dim,
                cfg.activation,
                cfg.log_std_min,
                cfg.log_std_max,
                renorm_settings(cfg),
            )
        return GaussianHead(cfg.actor_hidden, self.spec.act_dim, cfg.activation, cfg.log_std_min, cfg.log_std_max)

    # -- policy -------------------------------------------------------------
    def draw(self, mean: Array, log_std: Array, key: Array) -> tuple[Array, Array]:
        """Reparameterised ``a = squash(mu + std * xi)`` and ``log pi(a|s)`` with the tanh correction."""
        return self.actor_part.draw(mean, log_std, key)

    def sample_action(self, actor_params: Any, obs: Array, key: Array) -> tuple[Array, Array]:
        """Reparameterised ``a = squash(mu + std * xi)`` and ``log pi(a|s)`` (running statistics for a
        batch-renormalised actor)."""
        return self.actor_part.gaussian_action(actor_params, obs, key)

    def _act(self, state: SACState, obs: Array, key: Array, mode: str = "random") -> Array:
        """``"random"``, ``"softmax"``: a policy draw; ``"max"``, ``"mean"``: ``squash(mu(s))``."""
        check_act_mode(mode, self.act_modes)
        return self.actor_part.act(state.actor_params, obs, key, mode)

    # -- losses ---------------------------------------------------------------
    def soft_value(self, state: SACState, next_obs: Array, key: Array) -> Array:
        """``V(s') = min_k Qbar_k(s', a') - alpha log pi(a'|s')`` with one ``a' ~ pi(.|s')`` (target critics)."""
        next_action, next_log_prob = self.sample_action(state.actor_params, next_obs, key)
        next_q = self.min_q(state.critic_target, next_obs, next_action)
        return next_q - jnp.exp(state.log_alpha) * next_log_prob

    def actor_loss(self, actor_params, critic_params, log_alpha, obs: Array, key: Array) -> tuple[Array, Metrics]:
        """``E_s[ alpha log pi(a|s) - min_k Q_k(s, a) ]`` with ``a`` reparameterised (Q in evaluation mode)."""
        return self.actor_part.loss(actor_params, self.q_fn(critic_params), obs, key, jnp.exp(log_alpha))

    def policy_objective(
        self, action: Array, log_prob: Array, q_fn: Any, obs: Array, alpha: Any
    ) -> tuple[Array, Metrics]:
        """The actor's loss at reparameterised draws: SAC's ``E[alpha log pi - min_k Q_k]``
        (:func:`~s2ac.parts.actors.soft_policy_objective`); ``q_fn(obs, action)`` is the critic."""
        return soft_policy_objective(action, log_prob, q_fn, obs, alpha)

    def alpha_loss(self, log_alpha: Array, entropy: Array) -> Array:
        """``-log_alpha * (target_entropy - H)``: raises alpha when the entropy is below target."""
        return self.temperature.loss(log_alpha, entropy)
