"""Shared fixtures of the agent tests: env specs, random batches, and the in-box action check."""

import jax
import jax.numpy as jnp

from s2ac.types import Batch, EnvSpec

HOPPER = EnvSpec(11, 3, (-1.0,) * 3, (1.0,) * 3)
MULTIGOAL = EnvSpec(2, 2, (-1.0,) * 2, (1.0,) * 2)


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


def assert_acts_in_box(agent, spec: EnvSpec, modes=None, n: int = 7) -> None:
    """Every action mode (default: those the agent accepts) returns ``(n, act_dim)`` actions inside the env's box."""
    modes = agent.act_modes if modes is None else modes
    state = agent.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (n, spec.obs_dim))
    low, high = jnp.asarray(spec.action_low), jnp.asarray(spec.action_high)
    for mode in modes:
        action = agent.act(state, obs, jax.random.PRNGKey(2), mode)
        assert action.shape == (n, spec.act_dim), mode
        assert bool(jnp.all(action >= low - 1e-6) & jnp.all(action <= high + 1e-6)), mode
