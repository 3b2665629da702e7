"""One off-policy training loop for every agent, with exact resume.

Exactness: the agent state carries its own PRNG key; acting keys are
``fold_in(act_key, env_step)``; the host RNG (warm-up actions, replay sampling) is
saved with its bit-generator state; every env reset is seeded from (seed, episode).
Periodic checkpoints are taken at episode boundaries, so the env state at a
checkpoint is a seeded reset and a resumed run retraces the uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from s2ac import checkpoint as ckpt
from s2ac.agents import EnvSpec, make_agent
from s2ac.agents.common import scan_updates
from s2ac.config import AgentConfig, TrainConfig
from s2ac.envs import make_env
from s2ac.evaluate import episode_seed, run_episodes
from s2ac.logger import MetricLogger, make_progress
from s2ac.replay import ReplayBuffer
from s2ac.runs import LoopCounters, RunRecord, TrainingDiverged, first_non_finite, prepare_run_dir, run_config_dict


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
