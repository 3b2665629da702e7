"""What the class API accepts as an environment: an id, a ``gym.Env``, or a factory.

A training run steps one env and evaluates on fresh copies of it, so every source gives both:

* an id: ``make_env(id)`` for each;
* a ``gym.Env``: that env itself for training (its wrappers and make kwargs, such as
  ``max_episode_steps``, are kept), and ``gymnasium.make(env.spec)`` for copies (Gymnasium's spec
  records the make kwargs and the wrappers applied after ``make``);
* a factory ``() -> gym.Env``: one call per env.

Vector envs (``gymnasium.vector.VectorEnv``, SB3's ``VecEnv``) are refused: a run steps one env,
which is what keeps resume exact; several seeds run side by side as a lockstep group instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium

from s2ac.envs import make_env
from s2ac.types import EnvSpec

VECTOR_ENV_MESSAGE = (
    "vector envs are not supported: an s2ac run steps one env (which keeps resume exact); pass one env, "
    "an env id or a factory, and run several seeds as a lockstep group (s2ac sweep --lockstep)"
)


@dataclass
class EnvSource:
    """One training env, a maker of evaluation copies, and the id recorded in the run's config."""

    env_id: str
    env: gymnasium.Env
    make_copy: Callable[[], gymnasium.Env]

    @property
    def spec(self) -> EnvSpec:
        return EnvSpec.from_env(self.env)


def _is_vector(env: Any) -> bool:
    return isinstance(env, gymnasium.vector.VectorEnv) or (hasattr(env, "num_envs") and hasattr(env, "step_async"))


def _id_of(env: gymnasium.Env) -> str:
    spec = env.spec
    return spec.id if spec is not None and spec.id else type(env.unwrapped).__name__


def _copier(env: gymnasium.Env) -> Callable[[], gymnasium.Env]:
    spec = env.spec

    def make_copy() -> gymnasium.Env:
        if spec is None:
            raise ValueError(
                f"cannot make evaluation copies of {env} (it has no Gymnasium spec): pass a factory "
                "(lambda: MyEnv(...)) or a registered id instead, or disable evaluation (eval_freq=0)"
            )
        return gymnasium.make(spec)

    return make_copy


def eval_maker(env: Any) -> Callable[[], gymnasium.Env]:
    """A maker of envs like ``env`` (an id, a ``gym.Env`` to copy, or a factory): the evaluation envs."""
    if isinstance(env, str):
        return lambda: make_env(env)
    if _is_vector(env):
        raise ValueError(VECTOR_ENV_MESSAGE)
    if isinstance(env, gymnasium.Env):
        return _copier(env)
    if callable(env):
        return env
    raise TypeError(f"env must be an env id, a gymnasium.Env or a factory () -> env; got {type(env).__name__}")


def env_source(env: Any) -> EnvSource:
    """Resolve ``env`` (an id, a ``gym.Env`` or a factory) for training; see the module docstring."""
    make_copy = eval_maker(env)
    train_env = env if isinstance(env, gymnasium.Env) else make_copy()
    if _is_vector(train_env):
        raise ValueError(VECTOR_ENV_MESSAGE)
    if not isinstance(train_env, gymnasium.Env):
        raise TypeError(f"the env factory returned a {type(train_env).__name__}, not a gymnasium.Env")
    EnvSpec.from_env(train_env)  # a clear error for spaces the agents cannot handle
    return EnvSource(env if isinstance(env, str) else _id_of(train_env), train_env, make_copy)


__all__ = ["EnvSource", "VECTOR_ENV_MESSAGE", "env_source", "eval_maker"]
