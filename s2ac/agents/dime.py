"""DIME (Celik et al., ICML 2025, arXiv 2502.02316): a tanh-squashed diffusion sampler trained toward
``exp(Q/alpha)`` through a lower bound on its entropy, on the ``distributional`` critic part.

The agent is SAC with its actor pieces replaced (:class:`DIMEAgent` overrides the actor's network,
initialisation, sampling, acting and the Q reduction of the actor loss; the critic step, the policy
delay and the temperature step are SAC's), so that it can become an actor part as it stands.
Equations (D1)-(D10) and (C1)-(C5) as numbered in ``docs/algorithms/dime.md``.

* Sampling (D1)-(D5): :func:`s2ac.diffusion.sample_batched` with the score network
  :class:`s2ac.diffusion_net.DiffusionScoreNet`; ``a = center + scale * tanh(x_N)`` on the env's box.
* ``log pi`` is replaced by ``-bound`` (D6)-(D8), the per-sample entropy lower bound of ``tanh(x_N)``
  in the normalised box ``[-1, 1]^d`` (the authors' units). Its kind is ``"lower_bound"``
  (:data:`s2ac.diffusion.LOG_DENSITY_KIND`); the metric is ``entropy_bound``.
* Actor loss (D9): ``E[-mean_k Q_k(s, a) - alpha * bound]`` (the MEAN of the two critics, as the
  authors), differentiated through every step; gradients pass ``zero_nans`` and element-wise
  ``clip(actor_grad_clip)`` before Adam (the authors' ``optax.clip(1.0)``).
* Critic (C3): the bootstrap shift is ``r + gamma (1 - d) alpha * bound(s', a')``.
* Temperature (D10): tuned from ``alpha = 1`` by Adam (lr 1e-3, beta1 0.9) on ``log alpha`` toward
  :func:`s2ac.diffusion.dime_target_entropy` (the authors' rule ``E[running cost] -> 4 |A|`` written as a
  target on the bound: ``-1.665 |A|`` at ``sigma_0 = 2.5``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import jax.numpy as jnp
import optax

from s2ac.agents.common import CriticAgent, check_act_mode
from s2ac.agents.sac import SACAgent, SACConfig, SACState
from s2ac.checks import finite_positive, require
from s2ac.config import is_multigoal
from s2ac.diffusion import (
    LOG_DENSITY_KIND,
    DiffusionConfig,
    SamplerParams,
    check_diffusion_steps,
    dime_target_entropy,
    init_sampler_params,
    sample_batched,
)
from s2ac.diffusion_net import DiffusionScoreNet
from s2ac.parts.temperature import Temperature
from s2ac.types import Array, EnvSpec, Metrics


@dataclass(frozen=True)
class DIMEConfig(SACConfig):
    """DIME: diffusion actor on the distributional critic. Defaults: the paper version's settings."""

    advanced_fields: ClassVar[tuple[str, ...]] = ("prior_std", "init_step_size", "init_friction", "actor_grad_clip")

    diffusion_steps: int = 16
    """Euler-Maruyama steps of the sampler (DIME: 16; the authors report 16 as good as 32)."""
    prior_std: float = 2.5
    """Standard deviation of the fixed Gaussian prior ``x_0`` (DIME: 2.5)."""
    init_step_size: float = 0.1
    """Initial learnable step size before the cosine schedule (DIME: 0.1)."""
    init_friction: float = 1.0
    """Initial learnable friction per action dimension (DIME: 1)."""
    actor_grad_clip: float = 1.0
    """Element-wise clip of the actor's gradient before Adam (DIME: ``optax.clip(1.0)``)."""
    actor_hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the score network, all equal (DIME: 3 x 256 GELU; the time embedding has the same width)."""
    critic: str = "distributional"
    critic_hidden: tuple[int, ...] = (2048, 2048)
    activation: str = "relu"
    batch_size: int = 256
    critic_lr: float = 3e-4
    actor_lr: float = 3e-4
    adam_beta1: float = 0.5
    policy_delay: int = 3
    auto_alpha: bool = True
    alpha: float = 1.0
    alpha_lr: float = 1e-3

    def validate(self) -> None:
        super().validate()
        check_diffusion_steps(self.diffusion_steps)
        for name in ("prior_std", "init_step_size", "init_friction", "actor_grad_clip"):
            finite_positive(name, getattr(self, name))
        require(
            len(set(self.actor_hidden)) == 1,
            f"actor_hidden gives the score network's layers, which share one width; got {self.actor_hidden!r}",
        )
        require(not self.actor_renorm, "actor_renorm applies to SAC's Gaussian actor, not DIME's diffusion sampler")

    def diffusion(self) -> DiffusionConfig:
        """The sampler's static settings."""
        return DiffusionConfig(
            n_steps=self.diffusion_steps,
            prior_std=self.prior_std,
            init_step_size=self.init_step_size,
            init_friction=self.init_friction,
        )


QUICK_FIELDS = dict(
    critic_hidden=(256, 256),
    actor_hidden=(64, 64, 64),
    batch_size=128,
    diffusion_steps=8,
    renorm_warmup_steps=5_000,
)
"""Sized for 2 CPU cores: critic 2 x 256 (paper 2 x 2048), score net 3 x 64 (3 x 256), batch 128 (256),
8 diffusion steps (16), and a 5k-update renorm warm-up (100k) so that renormalisation starts inside a
quick run."""


def preset_fields(preset: str, env_id: str) -> dict:
    """The paper's settings (the config's defaults) under ``paper`` and ``corrected``; smaller networks
    and 8 steps under ``quick``. On multigoal (not ``paper``) alpha is fixed, as for every algorithm.
    The critic's support off multigoal is set for every distributional critic
    (:func:`s2ac.config.distributional_support`)."""
    fields: dict = dict(critic_hidden=(2048, 2048), actor_hidden=(256, 256, 256))
    if preset == "quick":
        fields = dict(QUICK_FIELDS)
    if is_multigoal(env_id) and preset != "paper":
        fields.update(auto_alpha=False)
    return fields


def train_preset_fields(preset: str, env_id: str) -> dict:
    """Schedule: under ``paper``, random actions and no update for the first 5000 env steps and two
    updates per env step (UTD 2: 100 updates every 50 steps). ``quick`` keeps one per env step."""
    if preset == "paper":
        return dict(learning_starts=5_000, random_steps=5_000, gradient_steps=100, train_freq=50)
    return {}


class DIMEAgent(SACAgent):
    """SAC with DIME's diffusion actor: only the actor pieces differ (see the module docstring)."""

    state_class = SACState
    log_density_kind = LOG_DENSITY_KIND
    entropy_metric = "entropy_bound"
    actor_kind = "diffusion"

    def __init__(self, config: DIMEConfig, spec: EnvSpec):
        CriticAgent.__init__(self, config, spec)  # SAC's Gaussian actor is not built
        self.renorm = False
        self.diffusion = config.diffusion()
        width = config.actor_hidden[0]
        self.actor = DiffusionScoreNet(spec.act_dim, width=width, n_layers=len(config.actor_hidden), time_width=width)
        self.actor_tx = optax.chain(optax.zero_nans(), optax.clip(config.actor_grad_clip), self.adam(config.actor_lr))
        target = config.target_entropy
        if target is None:
            target = dime_target_entropy(spec.act_dim, self.diffusion)
        # The authors' temperature optimiser is Adam with the default beta1 = 0.9.
        self.temperature = Temperature(config.auto_alpha, config.alpha, target, config.alpha_lr, 0.9)
        self.alpha_tx = self.temperature.tx
        self.target_entropy = target

    def init_policy(self, key: Array) -> dict:
        """Score network, the sampler's step size and friction (D2, D3), ``log alpha``, optimisers."""
        d = self.spec.act_dim
        score = self.actor.init(key, jnp.zeros((d,)), jnp.zeros((self.spec.obs_dim,)), jnp.zeros(()))
        actor_params = {"score": score, "sampler": init_sampler_params(self.diffusion, d)._asdict()}
        log_alpha, alpha_opt = self.temperature.init()
        return {
            "actor_params": actor_params,
            "actor_opt": self.actor_tx.init(actor_params),
            "log_alpha": log_alpha,
            "alpha_opt": alpha_opt,
        }

    def diffuse(self, actor_params: Any, obs: Array, key: Array, deterministic: bool = False):
        """(D1)-(D8) for each state of ``obs`` ``(B, o)``: the :class:`~s2ac.diffusion.DiffusionResult`."""
        params = SamplerParams(**actor_params["sampler"])

        def score(x, o, n):
            return self.actor.apply(actor_params["score"], x, o, n)

        return sample_batched(score, params, self.diffusion, obs, key, deterministic=deterministic)

    def sample_action(self, actor_params: Any, obs: Array, key: Array) -> tuple[Array, Array]:
        """``a = center + scale * tanh(x_N)`` and ``-bound`` in the place of ``log pi(a|s)`` (a lower
        bound on the entropy of ``tanh(x_N)``, so ``-bound`` is an upper bound on ``E[log pi]``)."""
        batched = obs.reshape(-1, obs.shape[-1])
        result = self.diffuse(actor_params, batched, key)
        action = self.box.center + self.box.scale * result.action
        return action.reshape(*obs.shape[:-1], -1), -result.entropy_bound.reshape(obs.shape[:-1])

    def _act(self, state: SACState, obs: Array, key: Array, mode: str = "random") -> Array:
        """``"random"``, ``"softmax"``: a sampler draw; ``"max"``, ``"mean"``: the noise-free chain
        (``x_0 = 0``, no step noise). The authors evaluate with draws (their ``deterministic`` is ignored)."""
        check_act_mode(mode, self.act_modes)
        if mode in ("random", "softmax"):
            return self.sample_action(state.actor_params, obs, key)[0]
        batched = obs.reshape(-1, obs.shape[-1])
        result = self.diffuse(state.actor_params, batched, key, deterministic=True)
        return (self.box.center + self.box.scale * result.action).reshape(*obs.shape[:-1], -1)

    def policy_objective(self, action, log_prob, q_fn, obs: Array, alpha: Any) -> tuple[Array, Metrics]:
        """(D9): ``E[alpha (-bound) - mean_k Q_k(s, a)]``; the metric is the mean bound (a LOWER bound)."""
        q = jnp.mean(q_fn(obs, action), axis=0)
        loss = jnp.mean(alpha * log_prob - q)
        return loss, {"entropy_bound": -jnp.mean(log_prob)}


__all__ = ["DIMEAgent", "DIMEConfig", "QUICK_FIELDS", "preset_fields", "train_preset_fields"]
