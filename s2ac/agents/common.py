"""What the agents share: their interface, the action modes, Polyak averaging, the soft Bellman target,
the twin-critic loss, the optimiser, running many compiled updates in one call, and the twin-critic
agent base (:class:`CriticAgent`: critic state, ``init``, ``min_q``, critic step, squashed energy,
particle pick) that S²AC, SQL and SAC build on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import flax
import jax
import jax.numpy as jnp

from s2ac.distributions import ActionBox, squash, squash_log_det
from s2ac.parts.base import adam, apply_gradients, polyak, soft_bellman_target, twin_critic_loss
from s2ac.parts.critics import NextActions, broadcast_obs, make_critic
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
"""Every action mode of ``Agent.act``: ``"random"`` a policy draw (training); ``"max"`` the deterministic
test action; ``"softmax"`` a draw among candidates with probability ``~ exp(Q/alpha)`` (a policy draw
for SAC / SAC-NF); ``"mean"`` one deterministic pass at the mean of the policy's noise (SAC, SAC-NF,
SQL). The particle policies (S²AC, amortized S²AC) have no mean pass and accept only
:data:`PARTICLE_ACT_MODES`."""

PARTICLE_ACT_MODES = ("random", "max", "softmax")
"""Action modes of a policy that picks one of several candidate actions (see :func:`pick_action`)."""

POLICY_DENSITIES = ("particles", "sample_action", "none")
"""``particles``: ``sample_particles(init_params, critic_params, obs, key).log_prob`` (S²AC's SVGD density);
``sample_action``: ``sample_action(actor_params, obs, key) -> (action, log_prob)`` (SAC, SAC-NF);
``none``: no tractable density (SQL)."""


WORST_CASE_METRICS = ("invertibility_margin", "actor_invertibility_margin")
"""Update metrics reduced by their maximum over a round's updates (see :func:`scan_updates`)."""


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


def check_act_mode(mode: str, modes: tuple[str, ...]) -> None:
    """``ValueError`` naming the valid modes unless ``mode`` is one of ``modes`` (static, at trace time)."""
    if mode not in modes:
        raise ValueError(f"unknown action mode {mode!r} for this agent; expected one of {modes}")


def pick_action(actions: Array, q: Array, key: Array, mode: str, alpha: float) -> Array:
    """One of the candidates ``actions`` (B, n, d) per state, by their min-Q ``q`` (B, n).

    ``"random"``: uniform index; ``"max"``: ``argmax_i q_i``; ``"softmax"``: ``i ~ exp(q_i / alpha)``
    (the Boltzmann policy of the soft Q-function restricted to the candidates).
    """
    batch, n = q.shape
    if mode == "random":
        idx = jax.random.randint(key, (batch,), 0, n)
    elif mode == "max":
        idx = jnp.argmax(q, axis=-1)
    elif mode == "softmax":
        idx = jax.random.categorical(key, q / alpha, axis=-1)
    else:
        raise ValueError(f"unknown action mode {mode!r}; expected one of {PARTICLE_ACT_MODES}")
    return jnp.take_along_axis(actions, idx[:, None, None], axis=1)[:, 0]


@flax.struct.dataclass
class CriticState:
    """The state every agent has: the critics, their target (``None`` for a critic without one, such as
    ``crossq``) and optimiser, PRNG key, counter.

    Agents subclass it with their policy's fields (flax serialises fields by name, so the order is free).
    """

    critic_params: Any
    critic_target: Any
    critic_opt: Any
    key: Array
    step: Array


@flax.struct.dataclass
class ActorCriticState(CriticState):
    """:class:`CriticState` plus one policy network and its optimiser state (SQL, SAC)."""

    actor_params: Any
    actor_opt: Any


class CriticAgent:
    """Base of the agents: the critic part named by ``config.critic`` (:mod:`s2ac.parts.critics`),
    trained on a soft Bellman target from the policy's :class:`~s2ac.parts.critics.NextActions`.

    Subclasses set :attr:`state_class`, implement ``init_policy(key) -> dict`` (their state fields),
    ``_update`` and ``_act``, and call ``super().__init__`` first. The policy sees the critic only
    through :meth:`q` (evaluation mode: running statistics for a batch-renormalised critic).
    """

    state_class: type[CriticState] = CriticState
    act_modes: tuple[str, ...] = ACT_MODES
    """The modes ``act`` accepts."""

    def __init__(self, config: Any, spec: EnvSpec):
        config.validate()
        self.config, self.spec = config, spec
        self.box = ActionBox.from_bounds(spec.action_low, spec.action_high)
        self.critic_part = make_critic(config)
        self.critic = self.critic_part.net
        """The critic network; ``critic.apply(critic_params, obs, action)`` is Q in evaluation mode, except
        for the ``distributional`` critic, whose network gives logits over atoms: use :meth:`q` for Q."""
        self.critic_tx = self.critic_part.tx
        self.trace_count = 0
        self.update = jax.jit(self._update)
        self.act = jax.jit(self._act, static_argnames="mode")

    def _update(self, state: Any, batch: Batch) -> tuple[Any, Metrics]:
        raise NotImplementedError

    def _act(self, state: Any, obs: Array, key: Array, mode: str = "random") -> Array:
        raise NotImplementedError

    def adam(self, learning_rate: float):
        """Adam with the config's ``adam_beta1`` (every optimiser of the agent)."""
        return adam(learning_rate, self.config.adam_beta1)

    def init_policy(self, key: Array) -> dict:
        """The policy's state fields (none here)."""
        return {}

    def init(self, key: Array) -> Any:
        """Critic and target from one key, the policy's fields (:meth:`init_policy`) from a second."""
        k_critic, k_policy, key = jax.random.split(key, 3)
        critic_params, critic_target, critic_opt = self.critic_part.init(k_critic, self.spec.obs_dim, self.spec.act_dim)
        return self.state_class(
            critic_params=critic_params,
            critic_target=critic_target,
            critic_opt=critic_opt,
            key=key,
            step=jnp.zeros((), jnp.int32),
            **self.init_policy(k_policy),
        )

    def q(self, critic_params: Any, obs: Array, actions: Array) -> Array:
        """``Q_k(s, a)`` of every critic in evaluation mode: shape ``(n_critics, *batch)``."""
        return self.critic_part.q(critic_params, obs, actions)

    def min_q(self, critic_params: Any, obs: Array, actions: Array) -> Array:
        """``min_k Q_k(s, a_i)`` for ``actions`` of shape ``(B, n, d)`` at ``obs`` ``(B, o)``: shape ``(B, n)``."""
        return jnp.min(self.q(critic_params, broadcast_obs(obs, actions), actions), axis=0)

    def critic_energy(self, critic_params: Any, obs: Array, u: Array, squashed: bool, alpha: float) -> Array:
        """SVGD energy ``alpha log p`` of points ``u`` (..., n, d) at states ``obs`` (..., o): shape (..., n).

        ``squashed``: ``min_k Q_k(s, squash(u)) + alpha log|det d squash/du|``, i.e. ``alpha`` times the log
        of the push-forward target ``exp(Q/alpha) |squash'(u)|`` on the pre-squash ``u`` (REFERENCE.md §1
        "Squashing"); otherwise ``min_k Q_k(s, u)`` at ``u`` taken as an action. Q is evaluated in
        evaluation mode (see :meth:`q`).
        """
        obs_rep = jnp.broadcast_to(obs[..., None, :], (*u.shape[:-1], obs.shape[-1]))
        if not squashed:
            return jnp.min(self.q(critic_params, obs_rep, u), axis=0)
        q = jnp.min(self.q(critic_params, obs_rep, squash(u, self.box)), axis=0)
        return q + alpha * squash_log_det(u, self.box)

    def bellman_target(self, batch: Batch, next_soft_value: Array) -> Array:
        """``y = reward_scale r + gamma (1 - terminated) V_soft(s')`` (:func:`soft_bellman_target`)."""
        cfg = self.config
        return soft_bellman_target(cfg.reward_scale * batch.reward, batch.terminated, cfg.gamma, next_soft_value)

    def critic_step(self, state: CriticState, batch: Batch, next: NextActions) -> tuple[Any, Any, Metrics]:
        """One step of the critic part on the bootstrap from ``next``: ``(critic_params, critic_opt, metrics)``."""
        return self.critic_part.step(state.critic_params, state.critic_target, state.critic_opt, batch, next)

    def advance(self, state: CriticState, critic_params: Any, critic_opt: Any, key: Array, **fields: Any) -> Any:
        """The next state: new critic, its target after the part's ``after_step`` (Polyak or nothing),
        new key, ``step + 1`` and the policy's ``fields``."""
        return state.replace(
            critic_params=critic_params,
            critic_target=self.critic_part.after_step(state.critic_target, critic_params),
            critic_opt=critic_opt,
            key=key,
            step=state.step + 1,
            **fields,
        )


__all__ = [
    "ACT_MODES",
    "PARTICLE_ACT_MODES",
    "POLICY_DENSITIES",
    "WORST_CASE_METRICS",
    "ActorCriticState",
    "Agent",
    "CriticAgent",
    "CriticState",
    "adam",
    "apply_gradients",
    "check_act_mode",
    "pick_action",
    "polyak",
    "scan_updates",
    "soft_bellman_target",
    "twin_critic_loss",
]
