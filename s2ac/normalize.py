"""Observation normalisation and reward scaling by running statistics (SB3's ``VecNormalize``).

With ``TrainConfig.normalize_obs`` an observation ``o`` reaches the agent as
``clip((o - mu) / sqrt(var + eps), -10, 10)``, where ``mu`` and ``var`` are the running mean and
variance of every observation the training env returned so far; with ``normalize_reward`` a reward
``r`` enters the critic target as ``clip(r / sqrt(var_R + eps), -10, 10)``, where ``var_R`` is the
running variance of the discounted return ``R <- gamma R + r`` (reset at episode ends). The replay
buffer keeps the raw values and a batch is normalised when it is drawn, with the statistics of that
moment (as SB3 does for off-policy algorithms). Returns are logged raw.

The statistics are host-side float64 (:class:`RunningMeanStd`, the parallel-variance update of Chan
et al. 1979, as SB3's ``RunningMeanStd``); a checkpoint and a saved model hold them, so acting,
evaluation and a resumed run use exactly the statistics of the moment they were saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CLIP = 10.0
EPSILON = 1e-8
INITIAL_COUNT = 1e-4
"""SB3's ``RunningMeanStd(epsilon=1e-4)``: the prior count, so the first update is well defined."""


@dataclass
class RunningMeanStd:
    """Running mean and (population) variance of a stream of arrays of shape ``shape``."""

    mean: np.ndarray
    var: np.ndarray
    count: float = INITIAL_COUNT

    @classmethod
    def zeros(cls, shape: tuple[int, ...]) -> RunningMeanStd:
        return cls(np.zeros(shape, np.float64), np.ones(shape, np.float64))

    def update(self, x: np.ndarray) -> None:
        """Merge a batch ``x`` of shape ``(n, *shape)``: Chan et al.'s pairwise update of (mean, M2)."""
        x = np.asarray(x, np.float64)
        batch_mean, batch_var, n = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta, total = batch_mean - self.mean, self.count + n
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.mean, self.var, self.count = self.mean + delta * n / total, m2 / total, total

    def state_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": self.count}

    @classmethod
    def from_state_dict(cls, saved: dict) -> RunningMeanStd:
        return cls(np.asarray(saved["mean"], np.float64), np.asarray(saved["var"], np.float64), float(saved["count"]))


@dataclass
class Normalizer:
    """The running statistics of one run and the maps they define (see the module docstring)."""

    obs_dim: int
    norm_obs: bool
    norm_reward: bool
    gamma: float
    obs_rms: RunningMeanStd = field(init=False)
    ret_rms: RunningMeanStd = field(init=False)
    ret: float = 0.0
    """The discounted return of the current episode (reward scaling's running sum)."""

    def __post_init__(self) -> None:
        self.obs_rms, self.ret_rms = RunningMeanStd.zeros((self.obs_dim,)), RunningMeanStd.zeros(())

    @property
    def active(self) -> bool:
        return self.norm_obs or self.norm_reward

    def observe(self, next_obs: np.ndarray, reward: float, done: bool) -> None:
        """Update the statistics with one env step of the training env."""
        if self.norm_obs:
            self.obs_rms.update(np.asarray(next_obs)[None])
        if self.norm_reward:
            self.ret = self.ret * self.gamma + float(reward)
            self.ret_rms.update(np.asarray([self.ret]))
            if done:
                self.ret = 0.0

    def obs(self, obs: np.ndarray) -> np.ndarray:
        """Observations (any leading shape) as the agent sees them."""
        if not self.norm_obs:
            return obs
        scaled = (np.asarray(obs, np.float64) - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + EPSILON)
        return np.clip(scaled, -CLIP, CLIP).astype(np.float32)

    def reward(self, reward: np.ndarray) -> np.ndarray:
        """Rewards as the critic target sees them."""
        if not self.norm_reward:
            return reward
        return np.clip(np.asarray(reward, np.float64) / np.sqrt(self.ret_rms.var + EPSILON), -CLIP, CLIP).astype(
            np.float32
        )

    def state_dict(self) -> dict:
        return {
            "norm_obs": self.norm_obs,
            "norm_reward": self.norm_reward,
            "gamma": self.gamma,
            "obs_rms": self.obs_rms.state_dict(),
            "ret_rms": self.ret_rms.state_dict(),
            "ret": self.ret,
        }

    @classmethod
    def from_state_dict(cls, saved: dict) -> Normalizer:
        obs_rms = RunningMeanStd.from_state_dict(saved["obs_rms"])
        out = cls(
            int(obs_rms.mean.shape[0]), bool(saved["norm_obs"]), bool(saved["norm_reward"]), float(saved["gamma"])
        )
        out.obs_rms, out.ret_rms, out.ret = (
            obs_rms,
            RunningMeanStd.from_state_dict(saved["ret_rms"]),
            float(saved["ret"]),
        )
        return out


__all__ = ["CLIP", "EPSILON", "Normalizer", "RunningMeanStd"]
