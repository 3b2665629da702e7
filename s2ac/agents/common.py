"""What the agents share: their interface, the action modes, Polyak averaging, the soft Bellman target,
the twin-critic loss, the optimiser, running many compiled updates in one call, and the twin-critic
agent base (:class:`CriticAgent`: critic state, ``init``, ``min_q``, critic step, squashed energy,
particle pick) that S²AC, SQL and SAC build on."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

import flax
import jax
import jax.numpy as jnp

from s2ac.distributions import ActionBox
from s2ac.parts.actors import energy, min_q
from s2ac.parts.base import adam, apply_gradients, gradient_step, polyak, soft_bellman_target, twin_critic_loss
from s2ac.parts.critics import make_critic
from s2ac.parts.update import ActorCriticUpdate
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
    """Base of the agents: a critic part (:mod:`s2ac.parts.critics`, named by ``config.critic``), an
    actor part (:mod:`s2ac.parts.actors`) and a temperature part (:mod:`s2ac.parts.temperature`),
    trained by the one composed update (:class:`~s2ac.parts.update.ActorCriticUpdate`).

    Subclasses set :attr:`state_class` and ``self.actor_part`` / ``self.temperature`` (after
    ``super().__init__``), implement ``_act``, and may add a ``follower`` part. ``init_policy(key)``
    returns the policy's state fields (the actor's and the temperature's by default). The policy sees
    the critic only through :meth:`q` (evaluation mode: running statistics for a batch-renormalised
    critic).
    """

    state_class: type[CriticState] = CriticState
    act_modes: tuple[str, ...] = ACT_MODES
    """The modes ``act`` accepts."""
    follower: Any = None
    """An actor part trained after the update on the actor's draws (S²AC's amortizer), or None."""

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

    def composed_update(self) -> ActorCriticUpdate:
        """The composed update of this agent's parts (built when ``update`` is first traced, so a
        subclass may replace a part after ``__init__``)."""
        return ActorCriticUpdate(
            self.critic_part, self.actor_part, self.temperature, self.config.policy_delay, self.follower
        )

    def _update(self, state: Any, batch: Batch) -> tuple[Any, Metrics]:
        self.trace_count += 1  # runs at trace time only: counts compilations
        return self.composed_update()(state, batch)

    def _act(self, state: Any, obs: Array, key: Array, mode: str = "random") -> Array:
        raise NotImplementedError

    def adam(self, learning_rate: float):
        """Adam with the config's ``adam_beta1`` (every optimiser of the agent)."""
        return adam(learning_rate, self.config.adam_beta1)

    def init_policy(self, key: Array) -> dict:
        """The policy's state fields: the actor's (from ``key``) and the temperature's."""
        params, opt = self.actor_part.init(key)
        return {**dict(zip(self.actor_part.fields, (params, opt), strict=True)), **self.temperature.init_fields()}

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

    def q_fn(self, critic_params: Any):
        """The critic as an actor sees it: ``q_fn(obs, action)`` = :meth:`q` at ``critic_params``."""
        return functools.partial(self.critic_part.q, critic_params)

    def min_q(self, critic_params: Any, obs: Array, actions: Array) -> Array:
        """``min_k Q_k(s, a_i)`` for ``actions`` of shape ``(B, n, d)`` at ``obs`` ``(B, o)``: shape ``(B, n)``."""
        return min_q(self.q_fn(critic_params), obs, actions)

    def critic_energy(self, critic_params: Any, obs: Array, u: Array, squashed: bool, alpha: float) -> Array:
        """SVGD energy ``alpha log p`` of points ``u`` (..., n, d) at states ``obs`` (..., o), Q in
        evaluation mode (:func:`s2ac.parts.actors.energy`)."""
        return energy(self.q_fn(critic_params), self.box, obs, u, squashed, alpha)

    def bellman_target(self, batch: Batch, next_soft_value: Array) -> Array:
        """``y = reward_scale r + gamma (1 - terminated) V_soft(s')`` (:func:`soft_bellman_target`)."""
        cfg = self.config
        return soft_bellman_target(cfg.reward_scale * batch.reward, batch.terminated, cfg.gamma, next_soft_value)


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
    "gradient_step",
    "pick_action",
    "polyak",
    "scan_updates",
    "soft_bellman_target",
    "twin_critic_loss",
]
