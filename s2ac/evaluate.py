"""Policy evaluation: returns, lengths and (for multigoal) which goal each episode reached."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

PolicyFn = Callable[[np.ndarray, int, int], np.ndarray]  # (obs, episode, t) -> action
COVERAGE_SHARE = 0.05
"""A goal is covered when at least this share of the test episodes end there (a goal reached once
by noise in 50 episodes does not count)."""


def episode_seed(seed: int, episode: int, stream: int = 0) -> int:
    """A reset seed for episode ``episode`` of ``stream`` (0: training, 1: evaluation).

    Seeding every reset from (seed, stream, episode) makes the env state at an episode
    boundary reproducible without pickling the env, which is what exact resume needs.
    """
    return int(np.random.SeedSequence((seed, stream, episode)).generate_state(1)[0])


@dataclass
class EpisodeStats:
    """Per-episode outcomes of an evaluation."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    goals: list[int] = field(default_factory=list)  # goal index reached, -1 if none (multigoal only)
    hit_wall: list[bool] = field(default_factory=list)
    trajectories: list[np.ndarray] = field(default_factory=list)

    def summary(self, prefix: str = "eval/") -> dict[str, float]:
        out = {
            f"{prefix}mean_reward": float(np.mean(self.returns)),
            f"{prefix}std_reward": float(np.std(self.returns)),
            f"{prefix}mean_ep_length": float(np.mean(self.lengths)),
        }
        if self.goals:
            reached = [g for g in self.goals if g >= 0]
            out[f"{prefix}success_rate"] = len(reached) / len(self.goals)
            out[f"{prefix}n_goals_reached"] = float(len(set(reached)))
            shares = {goal: self.goals.count(goal) / len(self.goals) for goal in sorted(set(reached))}
            out[f"{prefix}goals_covered"] = float(sum(share >= COVERAGE_SHARE for share in shares.values()))
            for goal, share in shares.items():
                out[f"{prefix}goal_{goal}_fraction"] = share
            hits = [g for g, hit in zip(self.goals, self.hit_wall) if hit]
            if hits:  # obstacle variants: did the episodes that touched the wall still reach a goal?
                out[f"{prefix}wall_hit_rate"] = len(hits) / len(self.goals)
                out[f"{prefix}goal_after_wall_hit"] = sum(g >= 0 for g in hits) / len(hits)
        return out


def run_episodes(env, policy: PolicyFn, n_episodes: int, seed: int, keep_trajectories: bool = False) -> EpisodeStats:
    """Roll out ``n_episodes`` with seeded resets; reads ``goal_index``/``hit_wall`` from ``info`` if present."""
    stats = EpisodeStats()
    for ep in range(n_episodes):
        obs, _ = env.reset(seed=episode_seed(seed, ep, stream=1))
        ret, t, goal, hit, path = 0.0, 0, -1, False, [np.asarray(obs, np.float32)]
        done = False
        while not done:
            action = policy(np.asarray(obs, np.float32), ep, t)
            obs, reward, terminated, truncated, info = env.step(action)
            ret += float(reward)
            t += 1
            goal = int(info.get("goal_index", goal)) if terminated else goal
            hit = hit or bool(info.get("hit_wall", False))
            done = terminated or truncated
            if keep_trajectories:
                path.append(np.asarray(obs, np.float32))
        stats.returns.append(ret)
        stats.lengths.append(t)
        if "goal_index" in info:
            stats.goals.append(goal)
            stats.hit_wall.append(hit)
        if keep_trajectories:
            stats.trajectories.append(np.stack(path))
    return stats
