"""The plain data types every layer shares: arrays, metrics, transitions and env shapes.

A leaf module: it imports nothing of ``s2ac``, so any module may import it.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import jax
import numpy as np

Array = jax.Array
Metrics = dict[str, Array]


class Batch(NamedTuple):
    """Transitions; ``action`` is the executed action in the env's box."""

    obs: Array
    action: Array
    reward: Array
    next_obs: Array
    terminated: Array


class EnvSpec(NamedTuple):
    """Static shape information of a continuous-action environment."""

    obs_dim: int
    act_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]

    @classmethod
    def from_env(cls, env: gym.Env) -> EnvSpec:
        """Read the spec off a Gymnasium env; reject what the agents cannot handle."""
        act, obs = env.action_space, env.observation_space
        if not isinstance(act, gym.spaces.Box):
            discrete = (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)
            kind = (
                "discrete"
                if isinstance(act, discrete)
                else "composite"
                if isinstance(act, (gym.spaces.Dict, gym.spaces.Tuple))
                else "non-Box"
            )
            raise ValueError(
                f"{kind} action space not supported: got {type(act).__name__} {act}; the agents need one continuous, "
                "flat Box"
            )
        if not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
            raise ValueError(f"observation space must be a flat Box; got {obs}")
        if len(act.shape) != 1:
            raise ValueError(f"action space must be a flat Box; got shape {act.shape}")
        if not (np.all(np.isfinite(act.low)) and np.all(np.isfinite(act.high))):
            raise ValueError(f"action space must be bounded; got low={act.low}, high={act.high}")
        return cls(int(obs.shape[0]), int(act.shape[0]), tuple(map(float, act.low)), tuple(map(float, act.high)))


__all__ = ["Array", "Batch", "EnvSpec", "Metrics"]
