"""Policy evaluation: one episode runner and one summary for every path.

:func:`run_episodes` plays a batch of episodes side by side, all actions of a time step from one
policy call, on any :class:`EpisodeBatch`: :class:`GymEpisodes` (Gymnasium envs, used by the
training loop, ``s2ac eval`` and the class API) or the pure-JAX multigoal batch of
:mod:`s2ac.jax_loop`. :meth:`EpisodeStats.summary` turns the outcomes into the ``eval/`` metrics:
returns, lengths and, for multigoal, which goal each episode reached and whether it touched a wall.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np

BatchPolicy = Callable[[np.ndarray, int], np.ndarray]
"""``(obs (n, obs_dim), t) -> actions (n, act_dim)`` for the ``n`` episodes of a batch at step ``t``."""
COVERAGE_SHARE = 0.05
"""A goal is covered when at least this share of the test episodes end there (a goal reached once
by noise in 50 episodes does not count)."""
TRAIN_STREAM, EVAL_STREAM = 0, 1
"""Reset-seed streams of training and evaluation episodes."""


def episode_seed(seed: int, episode: int, stream: int = TRAIN_STREAM) -> int:
    """A reset seed for episode ``episode`` of ``stream`` (0: training, 1: evaluation).

    Seeding every reset from (seed, stream, episode) makes the env state at an episode
    boundary reproducible without pickling the env, which is what exact resume needs.
    """
    return int(np.random.SeedSequence((seed, stream, episode)).generate_state(1)[0])


class StepResult(NamedTuple):
    """One time step of a batch of episodes (arrays with a leading ``(n,)`` axis)."""

    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    goal_index: np.ndarray | None  # goal reached at a terminal step (multigoal), else None
    hit_wall: np.ndarray | None  # the step was cancelled by a wall (multigoal obstacle variants)


class EpisodeBatch(Protocol):
    """``n`` episodes played side by side."""

    n: int

    def reset(self) -> np.ndarray: ...

    def step(self, actions: np.ndarray, active: np.ndarray) -> StepResult: ...


def evaluation_seeds(seed: int, n: int) -> list[int]:
    """Reset seeds of evaluation episodes ``0 .. n-1`` of a run with ``seed`` (stream 1)."""
    return [episode_seed(seed, i, EVAL_STREAM) for i in range(n)]


class GymEpisodes:
    """Gymnasium envs, episode ``i`` reset with ``seeds[i]`` (e.g. :func:`evaluation_seeds`).

    Only active episodes are stepped (a finished Gymnasium env must not be stepped again).
    """

    def __init__(self, envs: Sequence, seeds: Sequence[int]):
        if len(envs) != len(seeds):
            raise ValueError(f"{len(envs)} envs but {len(seeds)} reset seeds")
        self.envs, self.seeds, self.n = list(envs), list(seeds), len(envs)

    def reset(self) -> np.ndarray:
        return np.stack([np.asarray(env.reset(seed=s)[0], np.float32) for env, s in zip(self.envs, self.seeds)])

    def step(self, actions: np.ndarray, active: np.ndarray) -> StepResult:
        obs = np.zeros((self.n, *self.envs[0].observation_space.shape), np.float32)
        reward, terminated, truncated = np.zeros(self.n), np.zeros(self.n, bool), np.zeros(self.n, bool)
        goal, hit, has_goal = np.full(self.n, -1), np.zeros(self.n, bool), False
        for i in np.flatnonzero(active):
            o, r, term, trunc, info = self.envs[i].step(actions[i])
            obs[i], reward[i], terminated[i], truncated[i] = o, float(r), bool(term), bool(trunc)
            if "goal_index" in info:
                has_goal = True
                goal[i] = int(info["goal_index"])
            hit[i] = bool(info.get("hit_wall", False))
        return StepResult(obs, reward, terminated, truncated, goal if has_goal else None, hit if has_goal else None)


@dataclass
class EpisodeStats:
    """Per-episode outcomes of an evaluation."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    goals: list[int] = field(default_factory=list)  # goal index reached, -1 if none (multigoal only)
    hit_wall: list[bool] = field(default_factory=list)
    trajectories: list[np.ndarray] = field(default_factory=list)  # (length + 1, obs_dim) per episode

    def summary(self, prefix: str = "eval/") -> dict[str, float]:
        """Mean/std return and length; for multigoal the success rate, goals reached and covered
        (:data:`COVERAGE_SHARE`), each goal's share and, where walls were hit, what followed."""
        out = {
            f"{prefix}mean_reward": float(np.mean(self.returns)),
            f"{prefix}std_reward": float(np.std(self.returns)),
            f"{prefix}mean_ep_length": float(np.mean(self.lengths)),
        }
        if self.goals:
            out.update(_goal_summary(self.goals, self.hit_wall, prefix))
        return out


def goal_outcomes(goals, hit_wall, n_goals: int) -> dict[str, np.ndarray]:
    """Outcome statistics over the last axis (episodes) of ``goals`` (goal index reached, -1 for
    none) and ``hit_wall``; any leading axes (seeds) are kept. ``goal_fractions`` has a last axis of
    ``n_goals``; a goal is covered at :data:`COVERAGE_SHARE`; ``goal_given_hit`` is NaN without hits."""
    goals, hit = np.asarray(goals), np.asarray(hit_wall, bool)
    reached = goals >= 0
    fractions = np.zeros((*goals.shape[:-1], n_goals))
    for g in range(n_goals):
        fractions[..., g] = np.mean(goals == g, axis=-1)
    hit_rate, escape = hit.mean(axis=-1), (hit & reached).mean(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        goal_given_hit = np.where(hit_rate > 0, escape / hit_rate, np.nan)
    return {
        "goal_fractions": fractions,
        "success_rate": reached.mean(axis=-1),
        "goals_covered": (fractions >= COVERAGE_SHARE).sum(axis=-1).astype(np.float64),
        "n_goals_reached": (fractions > 0).sum(axis=-1).astype(np.float64),
        "hit_wall": hit_rate,
        "hit_wall_and_goal": escape,
        "goal_given_hit": goal_given_hit,
    }


def _goal_summary(goals: list[int], hit_wall: list[bool], prefix: str) -> dict[str, float]:
    stats = goal_outcomes(goals, hit_wall, max(goals) + 1)
    out = {f"{prefix}{k}": float(stats[k]) for k in ("success_rate", "n_goals_reached", "goals_covered")}
    for goal, share in enumerate(stats["goal_fractions"]):
        if share > 0:
            out[f"{prefix}goal_{goal}_fraction"] = float(share)
    if stats["hit_wall"] > 0:  # obstacle variants: did the episodes that touched the wall still reach a goal?
        out[f"{prefix}wall_hit_rate"] = float(stats["hit_wall"])
        out[f"{prefix}goal_after_wall_hit"] = float(stats["goal_given_hit"])
    return out


def run_episodes(
    episodes: EpisodeBatch, policy: BatchPolicy, keep_trajectories: bool = False, max_steps: int | None = None
) -> EpisodeStats:
    """Play every episode of ``episodes`` to its end (or ``max_steps``), all steps ``t`` of the batch
    from one ``policy(obs, t)`` call; finished episodes keep their last observation."""
    obs = episodes.reset()
    n = episodes.n
    active = np.ones(n, bool)
    returns, lengths = np.zeros(n), np.zeros(n, np.int64)
    goals, hits, has_goal = np.full(n, -1, np.int64), np.zeros(n, bool), False
    paths = [[o] for o in obs] if keep_trajectories else None
    t = 0
    while active.any() and (max_steps is None or t < max_steps):
        res = episodes.step(np.asarray(policy(obs, t)), active)
        returns += np.where(active, res.reward, 0.0)
        lengths += active
        if res.goal_index is not None:
            has_goal = True
            goals = np.where(active & res.terminated, res.goal_index, goals)
            hits |= active & res.hit_wall
        obs = np.where(active[:, None], res.obs, obs)
        if paths is not None:
            for i in np.flatnonzero(active):
                paths[i].append(res.obs[i])
        active &= ~(res.terminated | res.truncated)
        t += 1
    stats = EpisodeStats(returns.tolist(), lengths.tolist())
    if has_goal:
        stats.goals, stats.hit_wall = goals.tolist(), hits.tolist()
    if paths is not None:
        stats.trajectories = [np.stack(p) for p in paths]
    return stats


__all__ = [
    "COVERAGE_SHARE",
    "EVAL_STREAM",
    "TRAIN_STREAM",
    "BatchPolicy",
    "EpisodeBatch",
    "EpisodeStats",
    "GymEpisodes",
    "StepResult",
    "episode_seed",
    "evaluation_seeds",
    "goal_outcomes",
    "run_episodes",
]
