"""Several training runs in lockstep in one process: one compiled, ``jax.vmap``-ed update for all.

A *member* is one ordinary run (an env id and a seed, with its own run folder). Members of a
group share the algorithm, the agent config, the env's shapes and the training schedule, and
may differ in env id (Walker2d and HalfCheetah have the same shapes) and seed. Every env step,
each member's Gymnasium env is stepped on the host; acting and the gradient steps of all
members are each one vectorised call. On an accelerator this turns many small launches into
one (an S²AC update is several hundred small kernels); on a CPU with few cores it gives little,
and :class:`s2ac.sweep` trials side by side are the better choice there.

Each member follows the same schedule and draws the same random numbers as
:class:`s2ac.train.Trainer` with its seed (init key, acting keys ``fold_in(act_key, step)``,
host RNG for warm-up actions and replay sampling, seeded resets, evaluation keys), so a
member's run is the run ``s2ac train`` would make, up to the rounding of batched kernels.

Checkpoints are taken for all members at the same env step (every ``checkpoint_freq`` steps,
and when ``stop_after_s`` has passed), in each member's own run folder and in the ordinary
format, plus the mid-episode loop state (the env's simulation state, the observation, the
episode's return so far and the next action), so resuming continues exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
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
from s2ac.envs.snapshot import restore_env, snapshot_env
from s2ac.evaluate import EpisodeStats, episode_seed
from s2ac.logger import MetricLogger, make_progress
from s2ac.replay import ReplayBuffer
from s2ac.runs import LoopCounters, RunRecord, TrainingDiverged, first_non_finite, prepare_run_dir, run_config_dict

# TrainConfig fields that every member of a group must share (the schedule is run once for all).
SHARED_SCHEDULE = (
    "total_steps",
    "learning_starts",
    "random_steps",
    "train_freq",
    "gradient_steps",
    "buffer_size",
    "eval_freq",
    "eval_episodes",
    "checkpoint_freq",
    "log_every",
)
LOCKSTEP_KEY = "lockstep"
"""Key of the mid-episode loop state inside a lockstep checkpoint's trainer state."""


@dataclass
class _Member:
    """Host-side state of one member."""

    config: TrainConfig
    run_dir: Path
    env: Any
    buffer: Any
    record: RunRecord
    obs: np.ndarray | None = None
    ep_return: float = 0.0
    ep_len: int = 0
    logger: MetricLogger | None = None


def check_group(agent_config: AgentConfig, train_configs: list[TrainConfig], specs: list[EnvSpec]) -> None:
    """Raise ``ValueError`` naming what differs when the members cannot run in one group."""
    if not train_configs:
        raise ValueError("a lockstep group needs at least one member")
    first = train_configs[0]
    for cfg, spec in zip(train_configs[1:], specs[1:]):
        if spec != specs[0]:
            raise ValueError(
                f"lockstep members need envs of the same shapes: {first.env_id} has {specs[0]}, {cfg.env_id} has {spec}"
            )
        for name in SHARED_SCHEDULE:
            if getattr(cfg, name) != getattr(first, name):
                raise ValueError(
                    f"lockstep members must share the schedule: {name} is {getattr(first, name)!r} for "
                    f"{first.env_id} seed {first.seed} and {getattr(cfg, name)!r} for {cfg.env_id} seed {cfg.seed}"
                )
    keys = [(c.env_id, c.seed) for c in train_configs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"lockstep members must be distinct (env, seed) pairs; got {keys}")


class LockstepTrainer:
    """Runs ``algo`` for every ``(train_config, run_dir)`` member in lockstep."""

    def __init__(
        self,
        algo: str,
        agent_config: AgentConfig,
        train_configs: list[TrainConfig],
        run_dirs: list[str | Path],
        *,
        resume: bool = False,
        progress: bool = True,
        tensorboard: bool = True,
        stop_after_s: float | None = None,
        callback: Callable[[int, list[dict]], None] | None = None,
    ):
        agent_config.validate()
        for cfg in train_configs:
            cfg.validate()
        if len(run_dirs) != len(train_configs):
            raise ValueError(f"{len(train_configs)} train configs but {len(run_dirs)} run folders")
        if stop_after_s is not None and not (math.isfinite(stop_after_s) and stop_after_s > 0):
            raise ValueError(f"stop_after_s must be a positive number of seconds; got {stop_after_s!r}")
        envs = [make_env(cfg.env_id) for cfg in train_configs]
        specs = [EnvSpec.from_env(env) for env in envs]
        check_group(agent_config, train_configs, specs)
        self.algo, self.agent_config = algo, agent_config
        self.cfg = train_configs[0]  # the shared schedule
        self.spec = specs[0]
        self.agent = make_agent(agent_config, self.spec)
        self.progress_enabled, self.tensorboard, self.stop_after_s = progress, tensorboard, stop_after_s
        self.callback = callback
        self.eval_envs = [[make_env(cfg.env_id) for _ in range(self.cfg.eval_episodes)] for cfg in train_configs]

        self.members: list[_Member] = []
        init_keys, act_keys, eval_keys = [], [], []
        for cfg, run_dir, env in zip(train_configs, run_dirs, envs):
            k_init, k_act, k_eval = jax.random.split(jax.random.PRNGKey(cfg.seed), 3)  # as in Trainer
            init_keys.append(k_init)
            act_keys.append(k_act)
            eval_keys.append(k_eval)
            capacity = min(cfg.buffer_size, cfg.total_steps)
            self.members.append(
                _Member(
                    config=cfg,
                    run_dir=Path(run_dir),
                    env=env,
                    buffer=ReplayBuffer(capacity, self.spec.obs_dim, self.spec.act_dim),
                    record=RunRecord(
                        LoopCounters(next_checkpoint=cfg.checkpoint_freq), np.random.default_rng(cfg.seed)
                    ),
                )
            )
        self.act_keys, self.eval_keys = jnp.stack(act_keys), jnp.stack(eval_keys)
        self.state = jax.vmap(self.agent.init)(jnp.stack(init_keys))
        self.pending_actions: np.ndarray | None = None
        self._compile()
        for member in self.members:
            prepare_run_dir(member.run_dir, run_config_dict(algo, agent_config, member.config), resume)
        self.resumed_at: int | None = self._restore() if resume else None

    @property
    def env_steps(self) -> int:
        """Env steps of every member (they move together)."""
        return self.members[0].record.counters.env_steps

    @property
    def updates(self) -> int:
        """Gradient steps of every member."""
        return self.members[0].record.counters.updates

    # -- compiled pieces ---------------------------------------------------------------
    def _compile(self) -> None:
        agent = self.agent

        def policy(state, obs, key, mode):
            return agent.act(state, obs[None], key, mode=mode)[0]

        def act_all(states, obs, act_keys, step):
            keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(act_keys, step)
            return jax.vmap(lambda s, o, k: policy(s, o, k, "random"))(states, obs, keys)

        def train_and_act(states, batches, obs, act_keys, step):
            states, metrics = jax.vmap(scan_updates(agent.update))(states, batches)
            return states, metrics, act_all(states, obs, act_keys, step)

        def eval_actions(states, obs, eval_keys, step, t, mode):
            # obs: (members, episodes, obs_dim); key per (member, episode, t) as in Trainer.evaluate.
            def member(state, member_obs, key):
                key = jax.random.fold_in(key, step)
                episodes = jnp.arange(member_obs.shape[0])
                keys = jax.vmap(lambda ep: jax.random.fold_in(jax.random.fold_in(key, ep), t))(episodes)
                return jax.vmap(lambda o, k: policy(state, o, k, mode))(member_obs, keys)

            return jax.vmap(member)(states, obs, eval_keys)

        self._act_all = jax.jit(act_all)
        self._train_and_act = jax.jit(train_and_act)
        self._eval_actions = jax.jit(eval_actions, static_argnames="mode")

    # -- run folders and checkpoints -----------------------------------------------------
    def _save(self) -> None:
        """One checkpoint per member, all at the current env step."""
        states = jax.device_get(self.state)
        for i, m in enumerate(self.members):
            trainer_state = {
                **m.record.state_dict(),
                LOCKSTEP_KEY: {
                    "env": snapshot_env(m.env),
                    "obs": m.obs.tolist(),
                    "ep_return": m.ep_return,
                    "ep_len": m.ep_len,
                    "pending_action": None if self.pending_actions is None else self.pending_actions[i].tolist(),
                },
            }
            member_state = jax.tree_util.tree_map(lambda x, i=i: x[i], states)
            ckpt.save_checkpoint(m.run_dir / "checkpoints", self.env_steps, member_state, trainer_state, m.buffer.save)

    def _restore(self) -> int:
        paths = [ckpt.latest_valid_checkpoint(m.run_dir / "checkpoints") for m in self.members]
        missing = [str(m.run_dir) for m, p in zip(self.members, paths) if p is None]
        if missing:
            raise ckpt.CheckpointError(f"resume: no valid checkpoint in {', '.join(missing)}")
        saved = [ckpt.load_trainer_state(p) for p in paths]
        steps = {int(s["counters"]["env_steps"]) for s in saved}
        if len(steps) != 1:
            raise ckpt.CheckpointError(
                f"resume: lockstep members must resume from one env step; their checkpoints are at {sorted(steps)}"
            )
        template = jax.tree_util.tree_map(lambda x: x[0], jax.device_get(self.state))
        states = [ckpt.load_agent_state(p, template) for p in paths]
        self.state = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)
        pending = []
        for m, path, s in zip(self.members, paths, saved):
            m.buffer.load(path / ckpt.REPLAY_FILE)
            m.record.load_state_dict(s)
            loop = s.get(LOCKSTEP_KEY)
            if loop is None:  # a Trainer checkpoint: taken at an episode boundary
                m.obs = self._reset(m, m.record.counters.episodes)
                pending.append(None)
            else:
                m.env.reset(seed=episode_seed(m.config.seed, m.record.counters.episodes))
                restore_env(m.env, loop["env"])
                m.obs = np.asarray(loop["obs"], np.float32)
                m.ep_return, m.ep_len = loop["ep_return"], loop["ep_len"]
                pending.append(loop["pending_action"])
        if all(p is not None for p in pending):
            self.pending_actions = np.asarray(pending, np.float32)
        return self.env_steps

    # -- pieces of the loop -----------------------------------------------------------------
    def _reset(self, m: _Member, episode: int) -> np.ndarray:
        obs, _ = m.env.reset(seed=episode_seed(m.config.seed, episode))
        return np.asarray(obs, np.float32)

    def _obs(self) -> jax.Array:
        return jnp.asarray(np.stack([m.obs for m in self.members]))

    def _random_actions(self) -> np.ndarray:
        low, high = self.spec.action_low, self.spec.action_high
        return np.stack([m.record.rng.uniform(low, high).astype(np.float32) for m in self.members])

    def _train_and_next_actions(self, train: bool) -> None:
        """Gradient steps (if due) and the next actions, in at most one device call.

        The next actions are drawn after the last step too, so that the final checkpoint holds
        them and an extended run continues exactly as an uninterrupted longer one.
        """
        step = self.env_steps
        policy = step >= self.cfg.random_steps
        if train:
            batches = [
                m.buffer.sample(m.record.rng, self.cfg.gradient_steps, self.agent_config.batch_size)
                for m in self.members
            ]
            batches = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *batches)
            self.state, metrics, actions = self._train_and_act(self.state, batches, self._obs(), self.act_keys, step)
            metrics, actions = jax.device_get((metrics, actions))  # one host sync per round
            self._record_metrics(metrics)
        elif policy:
            actions = jax.device_get(self._act_all(self.state, self._obs(), self.act_keys, step))
        self.pending_actions = np.asarray(actions) if policy else self._random_actions()

    def _record_metrics(self, metrics: dict[str, np.ndarray]) -> None:
        """Check every member's round metrics, add them to its sums, and count the round's updates."""
        for i, m in enumerate(self.members):
            member_metrics = {key: float(values[i]) for key, values in metrics.items()}
            bad = first_non_finite(member_metrics)
            if bad is not None:
                last = ckpt.latest_valid_checkpoint(m.run_dir / "checkpoints")
                raise TrainingDiverged(
                    f"non-finite train/{bad[0]} = {bad[1]} in {m.config.env_id} seed {m.config.seed} after "
                    f"{self.updates + self.cfg.gradient_steps} updates (env step {self.env_steps}); "
                    f"training stopped; last good checkpoint: {last}"
                )
            m.record.add_metrics(member_metrics)
        for m in self.members:
            m.record.counters.updates += self.cfg.gradient_steps

    def evaluate(self) -> list[dict[str, float]]:
        """Deterministic (``max``) and stochastic (``random``) evaluation of every member, all
        members' episodes stepped together; keys and resets as in :meth:`Trainer.evaluate`."""
        n_members, n_eps = len(self.members), self.cfg.eval_episodes
        out: list[dict[str, float]] = [{} for _ in self.members]
        for mode, prefix in (("max", "eval/"), ("random", "eval/stochastic_")):
            stats = [EpisodeStats() for _ in self.members]
            obs = np.zeros((n_members, n_eps, self.spec.obs_dim), np.float32)
            for i, m in enumerate(self.members):
                for ep, env in enumerate(self.eval_envs[i]):
                    obs[i, ep] = env.reset(seed=episode_seed(m.config.seed, ep, stream=1))[0]
            active = np.ones((n_members, n_eps), bool)
            returns = np.zeros((n_members, n_eps))
            lengths = np.zeros((n_members, n_eps), int)
            goals = -np.ones((n_members, n_eps), int)
            hits = np.zeros((n_members, n_eps), bool)
            has_goal = False
            t = 0
            while active.any():
                actions = np.asarray(
                    self._eval_actions(self.state, jnp.asarray(obs), self.eval_keys, self.env_steps, t, mode=mode)
                )
                for i, ep in zip(*np.nonzero(active)):
                    o, reward, terminated, truncated, info = self.eval_envs[i][ep].step(actions[i, ep])
                    obs[i, ep] = o
                    returns[i, ep] += float(reward)
                    lengths[i, ep] += 1
                    if "goal_index" in info:
                        has_goal = True
                        goals[i, ep] = int(info["goal_index"]) if terminated else goals[i, ep]
                    hits[i, ep] |= bool(info.get("hit_wall", False))
                    active[i, ep] = not (terminated or truncated)
                t += 1
            for i in range(n_members):
                stats[i].returns, stats[i].lengths = returns[i].tolist(), lengths[i].tolist()
                if has_goal:
                    stats[i].goals, stats[i].hit_wall = goals[i].tolist(), hits[i].tolist()
                out[i].update(stats[i].summary(prefix))
        return out

    def _log(self, m: _Member, extra: dict[str, float], fps: float, ups: float) -> dict[str, float]:
        row = m.record.log_row(fps, ups, extra)
        m.logger.log(self.env_steps, row)
        return row

    def _step_envs(self, actions: np.ndarray) -> list[tuple[float, int] | None]:
        """Step every member's env and count the step; returns each member's finished episode
        (return, length) or None."""
        finished: list[tuple[float, int] | None] = []
        for m, action in zip(self.members, actions):
            next_obs, reward, terminated, truncated, _ = m.env.step(action)
            next_obs = np.asarray(next_obs, np.float32)
            if not (np.all(np.isfinite(next_obs)) and math.isfinite(float(reward))):
                raise TrainingDiverged(
                    f"non-finite observation or reward from {m.config.env_id} (seed {m.config.seed}) "
                    f"at step {self.env_steps}"
                )
            m.buffer.add(m.obs, action, float(reward), next_obs, bool(terminated))
            m.obs = next_obs
            m.ep_return += float(reward)
            m.ep_len += 1
            finished.append((m.ep_return, m.ep_len) if (terminated or truncated) else None)
        for m in self.members:
            m.record.counters.env_steps += 1
        return finished

    # -- main loop ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train every member to ``total_steps`` (or until ``stop_after_s``); return a summary."""
        cfg = self.cfg
        start = time.perf_counter()
        for m in self.members:
            m.logger = MetricLogger(m.run_dir, resume_step=self.resumed_at, tensorboard=self.tensorboard)
            if m.obs is None:
                m.obs = self._reset(m, m.record.counters.episodes)
        if self.pending_actions is None:
            self._train_and_next_actions(train=False)
        t_last, steps_last, updates_last, fps = time.perf_counter(), self.env_steps, self.updates, 0.0
        stopped = False
        progress = make_progress(self.progress_enabled)
        label = f"{self.algo} " + ", ".join(f"{m.config.env_id}/{m.config.seed}" for m in self.members)
        try:
            with progress:
                task = progress.add_task(label, total=cfg.total_steps, completed=self.env_steps, fps=0.0, ret="-")
                while self.env_steps < cfg.total_steps:
                    finished = self._step_envs(self.pending_actions)
                    for m, done in zip(self.members, finished):
                        if done is not None:  # reset now (the next action needs the new obs); count after logging
                            m.obs = self._reset(m, m.record.counters.episodes + 1)
                    train = self.env_steps >= cfg.learning_starts and self.env_steps % cfg.train_freq == 0
                    self._train_and_next_actions(train)

                    evals = self.evaluate() if cfg.eval_freq and self.env_steps % cfg.eval_freq == 0 else None
                    if self.env_steps % cfg.log_every == 0 or evals:
                        now = time.perf_counter()
                        dt = max(now - t_last, 1e-9)
                        fps = (self.env_steps - steps_last) / dt  # per member; the bar shows the group's
                        ups = (self.updates - updates_last) / dt
                        rows = [self._log(m, evals[i] if evals else {}, fps, ups) for i, m in enumerate(self.members)]
                        if self.callback is not None:
                            self.callback(self.env_steps, rows)
                        t_last, steps_last, updates_last = now, self.env_steps, self.updates

                    for m, done in zip(self.members, finished):
                        if done is not None:
                            m.record.end_episode(*done)
                            m.ep_return, m.ep_len = 0.0, 0

                    out_of_time = self.stop_after_s is not None and time.perf_counter() - start > self.stop_after_s
                    if out_of_time or (cfg.checkpoint_freq and self.env_steps % cfg.checkpoint_freq == 0):
                        self._save()
                    if out_of_time:
                        stopped = True
                        break
                    if self.env_steps % 100 == 0 or self.env_steps == cfg.total_steps:
                        last = [r for r in (m.record.counters.last_return for m in self.members) if r is not None]
                        ret = f"{np.mean(last):.1f}" if last else "-"
                        progress.update(task, completed=self.env_steps, ret=ret, fps=fps * len(self.members))
            if not stopped:
                self._save()
        finally:
            for m in self.members:
                m.logger.close()
        return {
            "run_dirs": [str(m.run_dir) for m in self.members],
            "env_steps": self.env_steps,
            "updates": self.updates,
            "stopped": stopped,
            "wall_s": time.perf_counter() - start,
        }


__all__ = ["LockstepTrainer", "check_group", "SHARED_SCHEDULE"]
