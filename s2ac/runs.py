"""The run folder and the host-side record of a run that every checkpoint carries.

A run folder holds ``config.json`` (algorithm, agent config, schedule), ``metrics.jsonl`` and
TensorBoard events (:mod:`s2ac.logger`), ``checkpoints/`` (:mod:`s2ac.checkpoint`) and figures.
Both training paths (:mod:`s2ac.loop` on the host, :mod:`s2ac.jax_loop` in JAX) write this format.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from s2ac import checkpoint as ckpt
from s2ac.agents.common import WORST_CASE_METRICS
from s2ac.config import AgentConfig, TrainConfig, config_to_dict

RUN_CONFIG_FILE = "config.json"
# Fields that may differ between a run and its resumption: extending a run, and settings that only
# change how the same values are computed (so a run made before such a field existed still resumes).
RESUMABLE_CHANGES = {"total_steps", "remat_keep_matmuls"}


class TrainingDiverged(RuntimeError):
    """A loss or statistic became non-finite; the last good checkpoint is kept."""


@dataclass
class LoopCounters:
    """Host-side loop state saved in every checkpoint (JSON-serialisable)."""

    env_steps: int = 0
    episodes: int = 0
    updates: int = 0
    last_return: float | None = None


@dataclass
class RunRecord:
    """The host-side bookkeeping of one run that a checkpoint carries: loop counters, the host RNG
    (warm-up actions, replay sampling), the last 100 episodes, and the training metrics summed
    since the last log row. :class:`Trainer` keeps one; a lockstep group keeps one per member."""

    counters: LoopCounters
    rng: np.random.Generator
    recent_returns: deque = field(default_factory=lambda: deque(maxlen=100))
    recent_lengths: deque = field(default_factory=lambda: deque(maxlen=100))
    metric_sums: dict = field(default_factory=dict)
    metric_count: int = 0
    metric_maxima: dict = field(default_factory=dict)  # WORST_CASE_METRICS: a bound must hold at every round

    def state_dict(self) -> dict:
        """JSON-ready trainer state of a checkpoint."""
        return {
            "counters": dict(self.counters.__dict__),
            "rng_state": self.rng.bit_generator.state,
            "recent_returns": list(self.recent_returns),
            "recent_lengths": list(self.recent_lengths),
            "metric_sums": dict(self.metric_sums),
            "metric_count": self.metric_count,
            "metric_maxima": dict(self.metric_maxima),
        }

    def load_state_dict(self, saved: dict) -> None:
        """Restore from :meth:`state_dict` in place (the counters and RNG objects are kept)."""
        known = {f.name for f in dataclasses.fields(LoopCounters)}  # older checkpoints had more counters
        self.counters.__dict__.update(
            LoopCounters(**{k: v for k, v in saved["counters"].items() if k in known}).__dict__
        )
        self.rng.bit_generator.state = saved["rng_state"]
        self.recent_returns.clear()
        self.recent_returns.extend(saved["recent_returns"])
        self.recent_lengths.clear()
        self.recent_lengths.extend(saved["recent_lengths"])
        self.metric_sums, self.metric_count = dict(saved["metric_sums"]), saved["metric_count"]
        self.metric_maxima = dict(saved.get("metric_maxima", {}))

    def add_metrics(self, metrics: dict[str, float]) -> None:
        """Add one training round's (finite) metrics to the sums of the next log row."""
        for key, value in metrics.items():
            self.metric_sums[key] = self.metric_sums.get(key, 0.0) + value
            if key in WORST_CASE_METRICS:
                self.metric_maxima[key] = max(self.metric_maxima.get(key, -math.inf), value)
        self.metric_count += 1

    def end_episode(self, episode_return: float, length: int) -> None:
        self.recent_returns.append(episode_return)
        self.recent_lengths.append(length)
        self.counters.episodes += 1
        self.counters.last_return = episode_return

    def log_row(self, fps: float, updates_per_s: float, extra: dict[str, float]) -> dict[str, float]:
        """The metric row (SB3 key names) of this log point; resets the metric sums."""
        row = {f"train/{k}": v / self.metric_count for k, v in self.metric_sums.items()} if self.metric_count else {}
        row.update({f"train/{k}_max": v for k, v in self.metric_maxima.items()})
        if self.recent_returns:
            row["rollout/ep_rew_mean"] = float(np.mean(self.recent_returns))
            row["rollout/ep_len_mean"] = float(np.mean(self.recent_lengths))
        row.update(
            {
                "train/n_updates": self.counters.updates,
                "time/episodes": self.counters.episodes,
                "time/fps": fps,
                "time/updates_per_s": updates_per_s,
            }
        )
        row.update(extra)
        self.metric_sums, self.metric_count, self.metric_maxima = {}, 0, {}
        return row


def first_non_finite(metrics: dict[str, float]) -> tuple[str, float] | None:
    """``(key, value)`` of the first non-finite metric, or None."""
    return next(((k, v) for k, v in metrics.items() if not math.isfinite(v)), None)


def run_config_dict(algo: str, agent_config: AgentConfig, train_config: TrainConfig) -> dict:
    """The ``config.json`` of a run: its algorithm, agent config and schedule."""
    return {"algo": algo, "agent": config_to_dict(agent_config), "train": config_to_dict(train_config)}


def config_differences(saved: dict, current: dict) -> list[str]:
    """``section.field: old -> new`` for every field that differs (:data:`RESUMABLE_CHANGES` aside)."""
    diffs = []
    if saved.get("algo") != current["algo"]:
        diffs.append(f"algo: {saved.get('algo')!r} -> {current['algo']!r}")
    for section in ("agent", "train"):
        old, new = saved.get(section, {}), current[section]
        for key in sorted(set(old) | set(new)):
            if key in RESUMABLE_CHANGES:
                continue
            a, b = old.get(key), new.get(key)
            if isinstance(a, list):
                a = tuple(a)
            if isinstance(b, list):
                b = tuple(b)
            if a != b:
                diffs.append(f"{section}.{key}: {a!r} -> {b!r}")
    return diffs


def prepare_run_dir(run_dir: Path, current: dict, resume: bool) -> None:
    """Check that ``run_dir`` can hold the run of config ``current`` and write its ``config.json``.

    Resuming needs a run made with the same config (``total_steps`` aside; the differing
    fields are listed); a fresh run refuses a folder that already holds checkpoints.
    """
    cfg_path = run_dir / RUN_CONFIG_FILE
    if resume:
        if not cfg_path.is_file():
            raise FileNotFoundError(f"--resume: no run to resume in {run_dir} ({RUN_CONFIG_FILE} missing)")
        diffs = config_differences(json.loads(cfg_path.read_text()), current)
        if diffs:
            raise ckpt.CheckpointError(
                f"cannot resume {run_dir}: its checkpoint was made with another config: " + "; ".join(diffs)
            )
    elif ckpt.list_checkpoints(run_dir / "checkpoints"):
        raise FileExistsError(
            f"{run_dir} already holds a run with checkpoints; pass --resume to continue it or choose another --out"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(json.dumps(current, indent=2))


__all__ = [
    "RUN_CONFIG_FILE",
    "RESUMABLE_CHANGES",
    "LoopCounters",
    "RunRecord",
    "TrainingDiverged",
    "config_differences",
    "first_non_finite",
    "prepare_run_dir",
    "run_config_dict",
]
