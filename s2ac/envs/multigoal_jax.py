"""Pure-JAX multigoal envs (REFERENCE.md §3), for jitted and vmapped rollouts.

The dynamics, reward, termination and wall test are :func:`s2ac.envs.multigoal.transition`
evaluated with ``xp = jax.numpy``: the very function the Gymnasium env evaluates with
NumPy. The task (:class:`~s2ac.envs.multigoal.MultiGoalSpec`) is hashable and is a static
argument of every jitted function here.

Single-env functions; batch them with ``jax.vmap(..., in_axes=(None, 0, 0))`` or with
:func:`reset_batch`/:func:`step_autoreset`::

    state, obs = reset_batch(spec, n_envs)
    step_fn = jax.vmap(step_autoreset, in_axes=(None, 0, 0))
    state, next_obs, reward, terminated, truncated, info = step_fn(spec, state, actions)
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from s2ac.envs.multigoal import MultiGoalSpec, transition

Array = jax.Array


class EnvState(NamedTuple):
    """State of one env: position and the number of steps taken this episode."""

    pos: Array
    """float32 ``(2,)``."""
    t: Array
    """int32 ``()``."""


def observation(state: EnvState) -> Array:
    """The observation of a state: its position (float32 ``(2,)``)."""
    return state.pos


@partial(jax.jit, static_argnames="spec")
def reset(spec: MultiGoalSpec, pos: Array | None = None) -> tuple[EnvState, Array]:
    """Start an episode at ``spec.start``, or at ``pos`` (clipped to the arena) if given."""
    start = jnp.asarray(spec.start if pos is None else pos, dtype=jnp.float32)
    start = jnp.clip(start, -spec.bound, spec.bound)
    state = EnvState(start, jnp.zeros((), jnp.int32))
    return state, observation(state)


@partial(jax.jit, static_argnames="spec")
def step(spec: MultiGoalSpec, state: EnvState, action: Array):
    """One step: ``(state, obs, reward, terminated, truncated, info)``.

    ``truncated`` is ``t + 1 >= spec.horizon``, exactly as Gymnasium's ``TimeLimit``
    computes it (so on the last step both flags can be true). ``info`` holds arrays
    ``goal_index`` (int32, -1 if no goal reached) and ``hit_wall`` (bool).
    """
    tr = transition(jnp, spec, state.pos, action)
    t = state.t + 1
    truncated = t >= spec.horizon
    info = {"goal_index": tr.goal_index.astype(jnp.int32), "hit_wall": tr.hit_wall}
    new_state = EnvState(tr.next_pos, t)
    return new_state, observation(new_state), tr.reward, tr.terminated, truncated, info


@partial(jax.jit, static_argnames="spec")
def step_autoreset(spec: MultiGoalSpec, state: EnvState, action: Array):
    """:func:`step`, then back to the start state if the episode ended.

    Returns ``(state, next_obs, reward, terminated, truncated, info)`` where ``next_obs``
    is the true ``s'`` of this transition (what a replay buffer stores) and ``state`` is
    already reset when ``terminated | truncated``: act next from ``observation(state)``.
    """
    next_state, next_obs, reward, terminated, truncated, info = step(spec, state, action)
    start_state, _ = reset(spec)
    done = terminated | truncated
    # `done` is a scalar per env; under vmap each env selects independently.
    state = jax.tree_util.tree_map(lambda s0, s1: jnp.where(done, s0, s1), start_state, next_state)
    return state, next_obs, reward, terminated, truncated, info


def reset_batch(spec: MultiGoalSpec, n_envs: int) -> tuple[EnvState, Array]:
    """``n_envs`` start states stacked on a leading axis."""
    state, _ = reset(spec)
    state = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n_envs, *x.shape)), state)
    return state, observation(state)
