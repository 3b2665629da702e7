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
import optax

from s2ac import schedules
from s2ac.distributions import ActionBox, squash, squash_log_det
from s2ac.nets import CriticEnsemble
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
    """Adam as used by every agent here (authors: Adam, lr 1e-3), at the rate's schedule
    (:mod:`s2ac.schedules`: constant, or linear to 0 when the agent's config says so)."""
    return optax.adam(schedules.learning_rate(learning_rate))


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
    """The state every agent has: twin critics, their Polyak target and optimiser, PRNG key, counter.

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
    """Base of the agents: twin critics ``Q_k(s, a)`` with a Polyak target, trained on a soft Bellman target.

    Subclasses set :attr:`state_class`, implement ``init_policy(key) -> dict`` (their state fields),
    ``_update`` and ``_act``, and call ``super().__init__`` first.
    """

    state_class: type[CriticState] = CriticState
    act_modes: tuple[str, ...] = ACT_MODES
    """The modes ``act`` accepts."""

    def __init__(self, config: Any, spec: EnvSpec):
        config.validate()
        self.config, self.spec = config, spec
        self.box = ActionBox.from_bounds(spec.action_low, spec.action_high)
        self.critic = CriticEnsemble(config.critic_hidden, config.activation)
        self.critic_tx = adam(config.critic_lr)
        self.trace_count = 0
        self.update = jax.jit(self._update)
        self.act = jax.jit(self._act, static_argnames="mode")

    def _update(self, state: Any, batch: Batch) -> tuple[Any, Metrics]:
        raise NotImplementedError

    def _act(self, state: Any, obs: Array, key: Array, mode: str = "random") -> Array:
        raise NotImplementedError

    def init_policy(self, key: Array) -> dict:
        """The policy's state fields (none here)."""
        return {}

    def init(self, key: Array) -> Any:
        """Critic and target from one key, the policy's fields (:meth:`init_policy`) from a second."""
        k_critic, k_policy, key = jax.random.split(key, 3)
        obs = jnp.zeros((1, self.spec.obs_dim))
        critic_params = self.critic.init(k_critic, obs, jnp.zeros((1, self.spec.act_dim)))
        return self.state_class(
            critic_params=critic_params,
            critic_target=critic_params,
            critic_opt=self.critic_tx.init(critic_params),
            key=key,
            step=jnp.zeros((), jnp.int32),
            **self.init_policy(k_policy),
        )

    def min_q(self, critic_params: Any, obs: Array, actions: Array) -> Array:
        """``min_k Q_k(s, a_i)`` for ``actions`` of shape ``(B, n, d)`` at ``obs`` ``(B, o)``: shape ``(B, n)``."""
        obs_rep = jnp.broadcast_to(obs[:, None, :], actions.shape[:2] + obs.shape[-1:])
        return jnp.min(self.critic.apply(critic_params, obs_rep, actions), axis=0)

    def critic_energy(self, critic_params: Any, obs: Array, u: Array, squashed: bool, alpha: float) -> Array:
        """SVGD energy ``alpha log p`` of points ``u`` (..., n, d) at states ``obs`` (..., o): shape (..., n).

        ``squashed``: ``min_k Q_k(s, squash(u)) + alpha log|det d squash/du|``, i.e. ``alpha`` times the log
        of the push-forward target ``exp(Q/alpha) |squash'(u)|`` on the pre-squash ``u`` (REFERENCE.md §1
        "Squashing"); otherwise ``min_k Q_k(s, u)`` at ``u`` taken as an action.
        """
        obs_rep = jnp.broadcast_to(obs[..., None, :], (*u.shape[:-1], obs.shape[-1]))
        if not squashed:
            return jnp.min(self.critic.apply(critic_params, obs_rep, u), axis=0)
        q = jnp.min(self.critic.apply(critic_params, obs_rep, squash(u, self.box)), axis=0)
        return q + alpha * squash_log_det(u, self.box)

    def bellman_target(self, batch: Batch, next_soft_value: Array) -> Array:
        """``y = reward_scale r + gamma (1 - terminated) V_soft(s')`` (:func:`soft_bellman_target`)."""
        cfg = self.config
        return soft_bellman_target(cfg.reward_scale * batch.reward, batch.terminated, cfg.gamma, next_soft_value)

    def critic_loss(self, critic_params: Any, batch: Batch, target: Array) -> tuple[Array, Metrics]:
        """:func:`twin_critic_loss` of ``Q_k(s, a)`` against the (fixed) target ``y``."""
        q = self.critic.apply(critic_params, batch.obs, batch.action)
        return twin_critic_loss(q, target), {"q_mean": jnp.mean(q), "target_mean": jnp.mean(target)}

    def critic_step(self, state: CriticState, batch: Batch, target: Array) -> tuple[Any, Any, Metrics]:
        """One Adam step on :meth:`critic_loss`: ``(critic_params, critic_opt, metrics)``."""
        (loss, info), grads = jax.value_and_grad(self.critic_loss, has_aux=True)(state.critic_params, batch, target)
        critic_params, critic_opt = apply_gradients(self.critic_tx, state.critic_params, state.critic_opt, grads)
        return critic_params, critic_opt, {"critic_loss": loss, **info}

    def advance(self, state: CriticState, critic_params: Any, critic_opt: Any, key: Array, **fields: Any) -> Any:
        """The next state: new critic, Polyak-averaged target, new key, ``step + 1`` and the policy's ``fields``."""
        return state.replace(
            critic_params=critic_params,
            critic_target=polyak(state.critic_target, critic_params, self.config.tau),
            critic_opt=critic_opt,
            key=key,
            step=state.step + 1,
            **fields,
        )
