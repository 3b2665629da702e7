"""Environments: the multigoal family (REFERENCE.md §3) and a checked ``gymnasium.make``.

Importing this package registers the Gymnasium ids

* ``s2ac/MultiGoal4-v0``, ``s2ac/MultiGoal3-v0``: the 4-goal and 3-goal (max-entropy) envs;
* ``s2ac/MultiGoal4Obstacle-v0``, ``s2ac/MultiGoal3Obstacle-v0``: their evaluation-only
  wall variants;

each with ``max_episode_steps = 30`` (Gymnasium's ``TimeLimit``, so the time limit is a
truncation). :func:`jax_env_for` gives the task for the pure-JAX path
(:mod:`s2ac.envs.multigoal_jax`).
"""

from __future__ import annotations

import difflib
import functools
import math

import gymnasium
from gymnasium import spaces

from s2ac.envs.multigoal import (
    FOUR_GOALS,
    FOUR_GOALS_OBSTACLE,
    THREE_GOALS,
    THREE_GOALS_OBSTACLE,
    MultiGoalEnv,
    MultiGoalSpec,
    draw_multigoal,
    transition,
)

MULTIGOAL_SPECS: dict[str, MultiGoalSpec] = {
    "s2ac/MultiGoal4-v0": FOUR_GOALS,
    "s2ac/MultiGoal3-v0": THREE_GOALS,
    "s2ac/MultiGoal4Obstacle-v0": FOUR_GOALS_OBSTACLE,
    "s2ac/MultiGoal3Obstacle-v0": THREE_GOALS_OBSTACLE,
}
"""Our registered ids and the task each one runs."""

MULTIGOAL_IDS: tuple[str, ...] = tuple(MULTIGOAL_SPECS)

__all__ = [
    "FOUR_GOALS",
    "FOUR_GOALS_OBSTACLE",
    "MULTIGOAL_IDS",
    "MULTIGOAL_SPECS",
    "THREE_GOALS",
    "THREE_GOALS_OBSTACLE",
    "MultiGoalEnv",
    "MultiGoalSpec",
    "action_dim",
    "draw_multigoal",
    "is_multigoal",
    "jax_env_for",
    "make_env",
    "multigoal_spec",
    "register_envs",
    "transition",
]


def register_envs() -> None:
    """Register the multigoal ids with Gymnasium (idempotent; done at import)."""
    for env_id, task in MULTIGOAL_SPECS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id,
                entry_point="s2ac.envs.multigoal:MultiGoalEnv",
                kwargs={"task": task},
                max_episode_steps=task.horizon,
            )


register_envs()


def is_multigoal(env_id: str) -> bool:
    """Whether ``env_id`` is one of our multigoal ids."""
    return env_id in MULTIGOAL_SPECS


def multigoal_spec(env_id: str) -> MultiGoalSpec:
    """The task behind a multigoal id; ``ValueError`` naming the id otherwise."""
    try:
        return MULTIGOAL_SPECS[env_id]
    except KeyError:
        raise ValueError(
            f"{env_id!r} is not a multigoal env; known multigoal ids: {', '.join(MULTIGOAL_IDS)}"
        ) from None


def jax_env_for(env_id: str) -> MultiGoalSpec:
    """The task to pass to :mod:`s2ac.envs.multigoal_jax` (``reset``/``step``) for ``env_id``.

    Only the multigoal family has a pure-JAX version; other ids raise ``ValueError``.
    """
    return multigoal_spec(env_id)


def make_env(env_id: str, **kwargs) -> gymnasium.Env:
    """``gymnasium.make(env_id, **kwargs)`` with clear errors.

    Raises ``ValueError`` if Gymnasium does not know ``env_id`` (naming it, with close
    matches and our own ids) or if the env's action space is not a continuous ``Box``.
    """
    register_envs()
    try:
        env = gymnasium.make(env_id, **kwargs)
    except (gymnasium.error.UnregisteredEnv, gymnasium.error.DeprecatedEnv) as err:
        raise ValueError(_unknown_id_message(env_id, err)) from err
    if not isinstance(env.action_space, spaces.Box):
        kind = type(env.action_space).__name__
        env.close()
        raise ValueError(
            f"environment {env_id!r} has a {kind} action space: discrete action space not supported "
            "(every agent here needs a continuous Box action space)"
        )
    return env


@functools.lru_cache(maxsize=128)
def action_dim(env_id: str) -> int | None:
    """Size of ``env_id``'s action vector (2 for the multigoal ids), or None where the env cannot be
    made here (an unknown id, a missing simulator): presets that depend on it then keep their default.
    Cached: one ``make`` per id and process."""
    if is_multigoal(env_id):
        return 2
    try:
        env = make_env(env_id)
    except (ValueError, ImportError, gymnasium.error.Error):
        return None
    try:
        return math.prod(env.action_space.shape)
    finally:
        env.close()


def _unknown_id_message(env_id: str, err: Exception) -> str:
    close = difflib.get_close_matches(env_id, list(gymnasium.registry), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"unknown environment id {env_id!r} ({err}).{hint} Multigoal ids: {', '.join(MULTIGOAL_IDS)}."
