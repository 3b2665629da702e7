"""Shared fixtures of the agent tests: env specs, random batches, and the in-box action check."""

import jax
import jax.numpy as jnp
from tiny import HOPPER, MULTIGOAL

from s2ac.types import Batch, EnvSpec

__all__ = ["HOPPER", "MULTIGOAL", "acts_of_every_mode", "assert_acts_in_box", "random_batch"]


def random_batch(spec: EnvSpec, batch_size: int = 16, seed: int = 0) -> Batch:
    """Random transitions with actions inside the box and about 20% terminal."""
    k = jax.random.split(jax.random.PRNGKey(seed), 5)
    low, high = jnp.asarray(spec.action_low), jnp.asarray(spec.action_high)
    return Batch(
        obs=jax.random.normal(k[0], (batch_size, spec.obs_dim)),
        action=jax.random.uniform(k[1], (batch_size, spec.act_dim), minval=low, maxval=high),
        reward=jax.random.normal(k[2], (batch_size,)),
        next_obs=jax.random.normal(k[3], (batch_size, spec.obs_dim)),
        terminated=(jax.random.uniform(k[4], (batch_size,)) < 0.2).astype(jnp.float32),
    )


def acts_of_every_mode(agent, state, obs, key, modes) -> dict:
    """``{mode: agent.act(state, obs, key, mode)}``, the modes traced into ONE compiled program: each
    mode is a static argument, so calling ``act`` mode by mode compiles the sampler once per mode."""
    return dict(zip(modes, jax.jit(lambda s, o, k: [agent.act(s, o, k, mode=m) for m in modes])(state, obs, key)))


def assert_acts_in_box(agent, spec: EnvSpec, modes=None, n: int = 7, tol: float = 1e-6) -> None:
    """Every action mode (default: those the agent accepts) returns ``(n, act_dim)`` actions inside the
    env's box (to within ``tol``)."""
    modes = tuple(agent.act_modes if modes is None else modes)
    state = agent.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (n, spec.obs_dim))
    low, high = jnp.asarray(spec.action_low), jnp.asarray(spec.action_high)
    for mode, action in acts_of_every_mode(agent, state, obs, jax.random.PRNGKey(2), modes).items():
        assert action.shape == (n, spec.act_dim), mode
        assert bool(jnp.all(action >= low - tol) & jnp.all(action <= high + tol)), mode
