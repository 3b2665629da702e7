"""One off-policy training loop for every agent, with exact resume.

Exactness: the agent state carries its own PRNG key; acting keys are
``fold_in(act_key, env_step)``; the host RNG (warm-up actions, replay sampling) is
saved with its bit-generator state; every env reset is seeded from (seed, episode).
Periodic checkpoints are taken at episode boundaries, so the env state at a
checkpoint is a seeded reset and a resumed run retraces the uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from s2ac import checkpoint as ckpt
from s2ac.agents import EnvSpec, make_agent
from s2ac.agents.base import WORST_CASE_METRICS, scan_updates
from s2ac.config import AgentConfig, TrainConfig, config_to_dict
from s2ac.evaluate import episode_seed, run_episodes
from s2ac.logger import MetricLogger, make_progress

RUN_CONFIG_FILE = "config.json"
# Fields that may differ between a run and its resumption: extending a run, and settings that only
# change how the same values are computed (so a run made before such a field existed still resumes).
RESUMABLE_CHANGES = {"total_steps", "remat_keep_matmuls"}


class TrainingDiverged(RuntimeError):
    """A loss or statistic became non-finite; the last good checkpoint is kept."""


def make_env(env_id: str):
    """Gymnasium env by id (our multigoal ids are registered on import of ``s2ac.envs``)."""
    from s2ac.envs import make_env as _make

    return _make(env_id)


@dataclass
class LoopCounters:
    """Host-side loop state saved in every checkpoint (JSON-serialisable)."""

    env_steps: int = 0
    episodes: int = 0
    updates: int = 0
    next_checkpoint: int = 0
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
        self.counters.__dict__.update(LoopCounters(**saved["counters"]).__dict__)
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
    return {"algo": algo, "agent": config_to_dict(agent_config), "train": config_to_dict(train_config)}


def _config_differences(saved: dict, current: dict) -> list[str]:
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
        diffs = _config_differences(json.loads(cfg_path.read_text()), current)
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


class Trainer:
    """Runs ``algo`` with ``agent_config`` on ``train_config.env_id``, writing into ``run_dir``."""

    def __init__(
        self,
        algo: str,
        agent_config: AgentConfig,
        train_config: TrainConfig,
        run_dir: str | Path,
        *,
        resume: bool = False,
        progress: bool = True,
        tensorboard: bool = True,
        callback: Callable[[int, dict], None] | None = None,
    ):
        agent_config.validate()
        train_config.validate()
        self.algo, self.agent_config, self.cfg = algo, agent_config, train_config
        self.run_dir = Path(run_dir)
        self.ckpt_root = self.run_dir / "checkpoints"
        self.progress_enabled, self.callback = progress, callback
        self.tensorboard = tensorboard
        self.env = make_env(train_config.env_id)
        self.eval_env = make_env(train_config.env_id)
        self.spec = EnvSpec.from_env(self.env)
        self.agent = make_agent(agent_config, self.spec)
        self._check_run_dir(resume)
        self.resume = resume

        seed = train_config.seed
        k_init, self.act_key, self.eval_key = jax.random.split(jax.random.PRNGKey(seed), 3)
        self.state = self.agent.init(k_init)
        self.record = RunRecord(LoopCounters(next_checkpoint=train_config.checkpoint_freq), np.random.default_rng(seed))
        from s2ac.replay import ReplayBuffer

        self.buffer = ReplayBuffer(
            min(train_config.buffer_size, train_config.total_steps), self.spec.obs_dim, self.spec.act_dim
        )
        self.update_many = jax.jit(scan_updates(self.agent.update))
        self._policy = jax.jit(
            lambda state, obs, step: self.agent.act(state, obs, jax.random.fold_in(self.act_key, step), mode="random")
        )
        self.resumed_from: Path | None = None
        if resume:
            self._restore()

    @property
    def counters(self) -> LoopCounters:
        return self.record.counters

    @property
    def rng(self) -> np.random.Generator:
        return self.record.rng

    # -- run folder ----------------------------------------------------------------
    def _check_run_dir(self, resume: bool) -> None:
        prepare_run_dir(self.run_dir, run_config_dict(self.algo, self.agent_config, self.cfg), resume)

    def _restore(self) -> None:
        path = ckpt.latest_valid_checkpoint(self.ckpt_root)
        if path is None:
            raise ckpt.CheckpointError(f"--resume: no valid checkpoint under {self.ckpt_root}")
        self.state = ckpt.load_agent_state(path, self.state)
        self.buffer.load(path / ckpt.REPLAY_FILE)
        self.record.load_state_dict(ckpt.load_trainer_state(path))
        self.resumed_from = path

    def _save(self) -> Path:
        return ckpt.save_checkpoint(
            self.ckpt_root,
            self.counters.env_steps,
            jax.device_get(self.state),
            self.record.state_dict(),
            self.buffer.save,
        )

    # -- pieces of the loop ----------------------------------------------------------
    def _reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=episode_seed(self.cfg.seed, self.counters.episodes))
        return np.asarray(obs, np.float32)

    def _action(self, obs: np.ndarray) -> np.ndarray:
        if self.counters.env_steps < self.cfg.random_steps:
            return self.rng.uniform(self.spec.action_low, self.spec.action_high).astype(np.float32)
        action = self._policy(self.state, jnp.asarray(obs[None]), self.counters.env_steps)
        return np.asarray(action[0])

    def _train_chunk(self) -> None:
        batches = self.buffer.sample(self.rng, self.cfg.gradient_steps, self.agent_config.batch_size)
        self.state, metrics = self.update_many(self.state, batches)
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}  # one host sync per chunk
        bad = first_non_finite(metrics)
        if bad is not None:
            last = ckpt.latest_valid_checkpoint(self.ckpt_root)
            raise TrainingDiverged(
                f"non-finite train/{bad[0]} = {bad[1]} after {self.counters.updates + self.cfg.gradient_steps} "
                f"updates (env step {self.counters.env_steps}); training stopped; last good checkpoint: {last}"
            )
        self.record.add_metrics(metrics)
        self.counters.updates += self.cfg.gradient_steps

    def evaluate(self, n_episodes: int | None = None, keep_trajectories: bool = False) -> dict[str, Any]:
        """Deterministic (``max``) and stochastic (``random``) evaluation on the eval env."""
        n = n_episodes or self.cfg.eval_episodes
        out: dict[str, Any] = {}
        key = jax.random.fold_in(self.eval_key, self.counters.env_steps)
        for mode, prefix in (("max", "eval/"), ("random", "eval/stochastic_")):

            def policy(obs, ep, t, mode=mode):
                k = jax.random.fold_in(jax.random.fold_in(key, ep), t)
                return np.asarray(self.agent.act(self.state, jnp.asarray(obs[None]), k, mode=mode)[0])

            stats = run_episodes(self.eval_env, policy, n, self.cfg.seed, keep_trajectories)
            out.update(stats.summary(prefix))
            if keep_trajectories:
                out[f"{prefix}stats"] = stats
        return out

    def _log(self, logger: MetricLogger, extra: dict[str, float], fps: float, ups: float) -> None:
        row = self.record.log_row(fps, ups, extra)
        logger.log(self.counters.env_steps, row)
        if self.callback is not None:
            self.callback(self.counters.env_steps, row)

    # -- main loop -------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train until ``total_steps``; return the final evaluation and paths."""
        cfg, c = self.cfg, self.counters
        logger = MetricLogger(
            self.run_dir, resume_step=c.env_steps if self.resumed_from else None, tensorboard=self.tensorboard
        )
        obs = self._reset()
        ep_return, ep_len = 0.0, 0
        t_last, steps_last, updates_last = time.perf_counter(), c.env_steps, c.updates
        fps = 0.0
        progress = make_progress(self.progress_enabled)
        try:
            with progress:
                task = progress.add_task(
                    f"{self.algo} {cfg.env_id}", total=cfg.total_steps, completed=c.env_steps, fps=0.0, ret="-"
                )
                while c.env_steps < cfg.total_steps:
                    action = self._action(obs)
                    next_obs, reward, terminated, truncated, _ = self.env.step(action)
                    next_obs = np.asarray(next_obs, np.float32)
                    if not (np.all(np.isfinite(next_obs)) and math.isfinite(float(reward))):
                        raise TrainingDiverged(f"non-finite observation or reward from the env at step {c.env_steps}")
                    self.buffer.add(obs, action, float(reward), next_obs, bool(terminated))
                    obs = next_obs
                    ep_return += float(reward)
                    ep_len += 1
                    c.env_steps += 1

                    if c.env_steps >= cfg.learning_starts and c.env_steps % cfg.train_freq == 0:
                        self._train_chunk()

                    extra: dict[str, float] = {}
                    if cfg.eval_freq and c.env_steps % cfg.eval_freq == 0:
                        extra.update(self.evaluate())
                    if c.env_steps % cfg.log_every == 0 or extra:
                        now = time.perf_counter()
                        dt = max(now - t_last, 1e-9)
                        fps = (c.env_steps - steps_last) / dt
                        self._log(logger, extra, fps, (c.updates - updates_last) / dt)
                        t_last, steps_last, updates_last = now, c.env_steps, c.updates

                    if terminated or truncated:
                        self.record.end_episode(ep_return, ep_len)
                        ep_return, ep_len = 0.0, 0
                        obs = self._reset()
                        if cfg.checkpoint_freq and c.env_steps >= c.next_checkpoint:
                            while c.next_checkpoint <= c.env_steps:
                                c.next_checkpoint += cfg.checkpoint_freq
                            self._save()
                    if c.env_steps % 100 == 0 or c.env_steps == cfg.total_steps:
                        ret = "-" if c.last_return is None else f"{c.last_return:.1f}"
                        progress.update(task, completed=c.env_steps, ret=ret, fps=fps)
            final = self._save()
        finally:
            logger.close()
        return {
            "run_dir": str(self.run_dir),
            "checkpoint": str(final),
            "env_steps": c.env_steps,
            "episodes": c.episodes,
            "updates": c.updates,
        }
