"""The host training loop: one off-policy loop for N >= 1 runs, with exact resume.

A *member* is one ordinary run (an env id and a seed, with its own run folder). ``s2ac train``
and the class API run one member (:class:`Trainer`); a lockstep group (:mod:`s2ac.sweep`'s
``lockstep``, the way to fill a GPU) runs several, which share the algorithm, the agent config,
the env's shapes and the schedule, and may differ in env id and seed. Every env step, each
member's Gymnasium env is stepped on the host; acting and the gradient steps of all members are
each one compiled call, ``jax.vmap``-ed over members when there are several (with one member the
functions run unbatched, so a single run does exactly the arithmetic of an ordinary agent).

The schedule (REFERENCE.md §2): uniform random actions for the first ``random_steps`` env steps;
after env step ``n`` with ``n >= learning_starts``, ``n % train_freq == 0`` and at least
``batch_size`` transitions in the replay buffer, ``gradient_steps``
updates in one compiled call; evaluation every ``eval_freq`` steps; a metric row every
``log_every`` steps; a checkpoint every ``checkpoint_freq`` steps, when ``stop_after_s`` has
passed, and at the end.

Exactness: the agent state carries its own PRNG key; acting keys are ``fold_in(act_key, step)``;
the host RNG (warm-up actions, replay sampling) is saved with its bit-generator state; every env
reset is seeded from (seed, episode). A checkpoint also holds the mid-episode loop state (the
env's simulation state, :mod:`s2ac.envs.snapshot`; the observation; the episode's return so far;
the next action), so a resumed or extended run retraces the uninterrupted one. An env that cannot
be snapshot is checkpointed without it (a warning says so) and a resume restarts its episode.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from s2ac import checkpoint as ckpt
from s2ac import runs, schedules
from s2ac.agents import make_agent
from s2ac.agents.common import scan_updates
from s2ac.checks import positive_int
from s2ac.config import AgentConfig, TrainConfig
from s2ac.distributional import SupportMonitor
from s2ac.envs import make_env
from s2ac.envs.snapshot import restore_env, snapshot_env
from s2ac.evaluate import EpisodeStats, GymEpisodes, episode_seed, evaluation_seeds, run_episodes
from s2ac.interrupts import GracefulStop
from s2ac.logger import MetricLogger, make_progress
from s2ac.normalize import Normalizer
from s2ac.replay import ReplayBuffer
from s2ac.runs import LoopCounters, RunRecord, TrainingDiverged, first_non_finite, run_config_dict
from s2ac.types import EnvSpec

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
"""TrainConfig fields that every member of a group shares (the schedule is run once for all)."""
LOOP_STATE_KEY = "loop"
"""Key of the mid-episode loop state inside a checkpoint's trainer state."""
LEGACY_LOOP_STATE_KEYS = ("lockstep",)
NORMALIZER_KEY = "normalizer"
"""Key of the observation and reward statistics (:mod:`s2ac.normalize`) inside a checkpoint's trainer state."""
"""Earlier names of that key, still read on resume."""
EVAL_PREFIXES = {"deterministic": "eval/", "stochastic": "eval/stochastic_"}
"""Evaluation: the deterministic policy (the config's ``deterministic_mode``: highest min-Q, or S²AC's
``test_selection``) and the stochastic one (``random``), and their metric prefixes."""

Callback = Callable[[int, list[dict]], None]
"""``callback(env_step, rows)``: called after every metric row, with one row per member."""


@dataclass(frozen=True)
class StepInfo:
    """What one env step of member 0 produced, for a per-step hook (the class API's callbacks)."""

    env_step: int
    action: np.ndarray
    reward: float
    next_obs: np.ndarray
    done: bool
    info: dict


StepHook = Callable[[StepInfo], bool]
"""``on_step(info) -> keep_going``: called after every env step; ``False`` stops the run there."""


@dataclass
class Member:
    """Host-side state of one run."""

    config: TrainConfig
    run_dir: Path | None  # None: nothing is written (an in-memory run of the class API)
    env: Any
    buffer: ReplayBuffer
    record: RunRecord
    obs: np.ndarray | None = None
    ep_return: float = 0.0
    ep_len: int = 0
    logger: MetricLogger | None = None
    make_eval_env: Callable[[], Any] | None = None
    last_step: StepInfo | None = None
    normalizer: Normalizer | None = None

    @property
    def ckpt_root(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / runs.CHECKPOINT_DIR

    @property
    def label(self) -> str:
        return f"{self.config.env_id} seed {self.config.seed}"


def check_group(train_configs: Sequence[TrainConfig], specs: Sequence[EnvSpec]) -> None:
    """Raise ``ValueError`` naming what differs when the members cannot run in one group."""
    if not train_configs:
        raise ValueError("a training loop needs at least one run")
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


def over_members(fn: Callable, n_members: int, batched: tuple[bool, ...]) -> Callable:
    """``fn`` applied to each member: ``jax.vmap`` over the leading axis of the ``batched``
    arguments when there are several members; with one, the unbatched ``fn`` on element 0 of
    those arguments (its outputs get the axis back), so a single run does the unbatched arithmetic."""
    if n_members > 1:
        return jax.jit(jax.vmap(fn, in_axes=tuple(0 if b else None for b in batched)))

    def single(*args):
        args = [jax.tree_util.tree_map(lambda x: x[0], a) if b else a for a, b in zip(args, batched)]
        return jax.tree_util.tree_map(lambda x: x[None], fn(*args))

    return jax.jit(single)


def _check_run_folders(run_dirs: Sequence[str | Path | None], run_configs: list[dict], resume: bool) -> None:
    """Before anything is built or written: a live writer (what to wait for), then each folder's kind."""
    for d, current in zip(run_dirs, run_configs):
        if d is not None:
            runs.RunLock(d).check_free()
            runs.check_run_folder(Path(d), current, resume)


def split_seed_keys(seed: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(init_key, act_key, eval_key)`` of a run: the agent's init, acting and evaluation streams."""
    k_init, k_act, k_eval = jax.random.split(jax.random.PRNGKey(seed), 3)
    return k_init, k_act, k_eval


class TrainingLoop:
    """Runs ``algo`` with ``agent_config`` for every ``(train_config, run_dir)`` member."""

    def __init__(
        self,
        algo: str,
        agent_config: AgentConfig,
        train_configs: Sequence[TrainConfig],
        run_dirs: Sequence[str | Path | None],
        *,
        resume: bool = False,
        progress: bool = True,
        tensorboard: bool = True,
        stop_after_s: float | None = None,
        callback: Callback | None = None,
        envs: Sequence[Any] | None = None,
        env_makers: Sequence[Callable[[], Any]] | None = None,
        start: Sequence[tuple[Any, LoopCounters]] | None = None,
        open_ended: bool = False,
        on_step: StepHook | None = None,
        graceful_signals: bool = False,
    ):
        """``envs`` (training envs) and ``env_makers`` (``() -> env``, for evaluation and, without
        ``envs``, training) replace ``make_env(env_id)``. ``start`` gives each member an agent state and
        counters to continue from instead of a fresh init. ``open_ended`` sizes the replay buffer by
        ``buffer_size`` alone, for a loop that :meth:`extend` will lengthen. ``graceful_signals``: SIGINT
        and SIGTERM during :meth:`run` stop it after the current step with a checkpoint
        (:class:`s2ac.interrupts.GracefulStop`; :attr:`interrupted_by` names the signal).

        Nothing is written before every check passed: the run folders are checked first (new, empty,
        or a run of the same config to resume), then locked; ``config.json`` is written only after a
        resume has read its checkpoints."""
        agent_config = schedules.with_horizon(agent_config, train_configs[0]) if train_configs else agent_config
        agent_config.validate()
        for cfg in train_configs:
            cfg.validate()
        if len(run_dirs) != len(train_configs):
            raise ValueError(f"{len(train_configs)} train configs but {len(run_dirs)} run folders")
        run_configs = [run_config_dict(algo, agent_config, c) for c in train_configs]
        _check_run_folders(run_dirs, run_configs, resume)
        if stop_after_s is not None and not (math.isfinite(stop_after_s) and stop_after_s > 0):
            raise ValueError(f"stop_after_s must be a positive number of seconds; got {stop_after_s!r}")
        if envs is None:
            envs = [maker() for maker in env_makers] if env_makers else [make_env(c.env_id) for c in train_configs]
        specs = [EnvSpec.from_env(env) for env in envs]
        check_group(train_configs, specs)
        # Before any allocation: the buffers' and the update's memory, the batch against the buffer.
        runs.check_run_fits(agent_config, train_configs, specs[0].obs_dim, specs[0].act_dim, open_ended)
        self.algo, self.agent_config, self.cfg, self.spec = algo, agent_config, train_configs[0], specs[0]
        self.agent = make_agent(agent_config, self.spec)
        self.eval_modes = {"deterministic": agent_config.deterministic_mode, "stochastic": "random"}
        self.progress_enabled, self.tensorboard, self.stop_after_s = progress, tensorboard, stop_after_s
        self.callback, self.on_step, self.open_ended = callback, on_step, open_ended
        self.graceful_signals, self.interrupted_by = graceful_signals, None
        makers = env_makers or [None] * len(envs)
        self.members = [
            self._member(cfg, None if d is None else Path(d), env, maker)
            for cfg, d, env, maker in zip(train_configs, run_dirs, envs, makers)
        ]
        self.eval_envs: list[list] = [[] for _ in self.members]
        keys = [split_seed_keys(cfg.seed) for cfg in train_configs]
        init_keys, self.act_keys, self.eval_keys = (jnp.stack(k) for k in zip(*keys))
        self.states = jax.vmap(self.agent.init)(init_keys)  # leading axis: members
        if start is not None:
            self._start_from(start)
        self.pending_actions: np.ndarray | None = None
        self.resumed_from: list[Path] | None = None
        self._snapshot_warned = False
        self._compile()
        self.resumed_at: int | None = self._open_run_folders(run_configs, resume)
        if start is not None and self.env_steps:
            self.resumed_at = self.env_steps  # metric rows up to here are kept

    def _open_run_folders(self, run_configs: list[dict], resume: bool) -> int | None:
        """Lock every run folder, check it again under the lock, read a resume's checkpoints, and only
        then write ``config.json``; returns the env step resumed at (None for a fresh run)."""
        self.locks = runs.RunLocks(m.run_dir for m in self.members if m.run_dir is not None).acquire()
        with self.locks.release_on_error():
            for m, current in zip(self.members, run_configs):
                if m.run_dir is not None:
                    runs.check_run_folder(m.run_dir, current, resume)
            resumed_at = self._restore() if resume else None
            for m, current in zip(self.members, run_configs):
                if m.run_dir is not None:
                    runs.write_run_config(m.run_dir, current)
        return resumed_at

    def close(self) -> None:
        """Release the run folders' locks (``run`` does so when it ends)."""
        self.locks.release()

    def _member(self, cfg: TrainConfig, run_dir: Path | None, env, maker) -> Member:
        buffer = ReplayBuffer(runs.replay_capacity(cfg, self.open_ended), self.spec.obs_dim, self.spec.act_dim)
        record = RunRecord(LoopCounters(), np.random.default_rng(cfg.seed))
        normalizer = Normalizer(self.spec.obs_dim, cfg.normalize_obs, cfg.normalize_reward, self.agent_config.gamma)
        return Member(cfg, run_dir, env, buffer, record, make_eval_env=maker, normalizer=normalizer)

    def _start_from(self, start: Sequence[tuple[Any, LoopCounters]]) -> None:
        """Continue from given agent states and counters (a model loaded from a file); the host RNG
        of member ``i`` is reseeded from (seed, env step), so the continuation is reproducible."""
        if len(start) != len(self.members):
            raise ValueError(f"{len(self.members)} members but {len(start)} start states")
        self.states = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *(jax.device_get(s) for s, _ in start))
        for m, (_, counters) in zip(self.members, start):
            m.record.counters.__dict__.update(dataclasses.asdict(counters))
            m.record.rng = np.random.default_rng([m.config.seed, counters.env_steps])

    def extend(self, extra_steps: int) -> None:
        """Lengthen the run by ``extra_steps`` env steps (the next :meth:`run` trains them)."""
        positive_int("extra_steps", extra_steps)
        total = self.env_steps + extra_steps
        for m in self.members:
            m.config = dataclasses.replace(m.config, total_steps=total)
        self.cfg = self.members[0].config
        self.resumed_at = self.env_steps

    @property
    def env_steps(self) -> int:
        """Env steps of every member (they move together)."""
        return self.members[0].record.counters.env_steps

    @property
    def updates(self) -> int:
        """Gradient steps of every member."""
        return self.members[0].record.counters.updates

    def member_state(self, i: int) -> Any:
        """The agent state of member ``i`` (unbatched)."""
        return jax.tree_util.tree_map(lambda x: x[i], self.states)

    # -- compiled pieces ---------------------------------------------------------------
    def _compile(self) -> None:
        agent, n = self.agent, len(self.members)

        def policy(state, obs, key, mode):
            return agent.act(state, obs[None], key, mode=mode)[0]

        def act(state, obs, act_key, step):
            return policy(state, obs, jax.random.fold_in(act_key, step), "random")

        def eval_actions(state, obs, eval_key, step, t, mode):
            # obs: (episodes, obs_dim); the key of episode ep at step t is fold_in(fold_in(k, ep), t).
            key = jax.random.fold_in(eval_key, step)
            keys = jax.vmap(lambda ep: jax.random.fold_in(jax.random.fold_in(key, ep), t))(jnp.arange(obs.shape[0]))
            return jax.vmap(lambda o, k: policy(state, o, k, mode))(obs, keys)

        self._act = over_members(act, n, (True, True, True, False))
        self._train = over_members(scan_updates(agent.update), n, (True, True))
        self._eval_actions = {
            mode: over_members(lambda s, o, k, step, t, mode=mode: eval_actions(s, o, k, step, t, mode), n,
                               (True, True, True, False, False))
            for mode in self.eval_modes.values()
        }  # fmt: skip

    # -- checkpoints -------------------------------------------------------------------
    def _loop_state(self, i: int, m: Member) -> dict:
        try:
            env_snapshot = snapshot_env(m.env)
        except ValueError as err:
            if not self._snapshot_warned:
                warnings.warn(f"{err}; a resume will restart the current episode", RuntimeWarning, stacklevel=3)
                self._snapshot_warned = True
            env_snapshot = None
        pending = None if self.pending_actions is None else self.pending_actions[i].tolist()
        obs = m.obs.tolist() if m.obs is not None else None
        return {
            "env": env_snapshot,
            "obs": obs,
            "ep_return": m.ep_return,
            "ep_len": m.ep_len,
            "pending_action": pending,
        }

    def save(self) -> list[Path]:
        """One checkpoint per member, all at the current env step."""
        states = jax.device_get(self.states)
        paths = []
        for i, m in enumerate(self.members):
            if m.ckpt_root is None:
                continue
            trainer_state = {**m.record.state_dict(), LOOP_STATE_KEY: self._loop_state(i, m)}
            if m.normalizer.active:
                trainer_state[NORMALIZER_KEY] = m.normalizer.state_dict()
            member_state = jax.tree_util.tree_map(lambda x, i=i: x[i], states)
            paths.append(ckpt.save_checkpoint(m.ckpt_root, self.env_steps, member_state, trainer_state, m.buffer.save))
        return paths

    def _restore(self) -> int:
        paths = [runs.run_checkpoint(m.run_dir, "resume") for m in self.members]
        saved = [ckpt.load_trainer_state(p) for p in paths]
        steps = {int(s["counters"]["env_steps"]) for s in saved}
        if len(steps) != 1:
            raise ckpt.CheckpointError(
                f"resume: lockstep members must resume from one env step; their checkpoints are at {sorted(steps)}"
            )
        runs.check_resume_length(self.members[0].run_dir, max(steps), self.cfg.total_steps)
        template = jax.device_get(self.member_state(0))
        states = [ckpt.load_agent_state(p, template) for p in paths]
        self.states = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)
        pending = [self._restore_member(m, p, s) for m, p, s in zip(self.members, paths, saved)]
        if all(p is not None for p in pending):
            self.pending_actions = np.asarray(pending, np.float32)
        self.resumed_from = paths
        return self.env_steps

    def _restore_member(self, m: Member, path: Path, saved: dict) -> list | None:
        """Restore one member's buffer, record and mid-episode state; returns its pending action."""
        m.buffer.load(path / ckpt.REPLAY_FILE)
        m.record.load_state_dict(saved)
        if NORMALIZER_KEY in saved:
            m.normalizer = Normalizer.from_state_dict(saved[NORMALIZER_KEY])
        loop = next((saved[k] for k in (LOOP_STATE_KEY, *LEGACY_LOOP_STATE_KEYS) if k in saved), None)
        if loop is None or loop.get("env") is None:  # taken at an episode boundary, or no env snapshot
            m.obs = self._reset(m, m.record.counters.episodes)
            m.ep_return, m.ep_len = 0.0, 0
            return None
        m.env.reset(seed=episode_seed(m.config.seed, m.record.counters.episodes))
        restore_env(m.env, loop["env"])
        m.obs = np.asarray(loop["obs"], np.float32)
        m.ep_return, m.ep_len = loop["ep_return"], loop["ep_len"]
        return loop["pending_action"]

    # -- pieces of the loop ---------------------------------------------------------------
    def _reset(self, m: Member, episode: int) -> np.ndarray:
        obs, _ = m.env.reset(seed=episode_seed(m.config.seed, episode))
        return np.asarray(obs, np.float32)

    def _obs(self) -> jax.Array:
        """Every member's current observation as its agent sees it (normalised, if the run normalises)."""
        return jnp.asarray(np.stack([m.normalizer.obs(m.obs) for m in self.members]))

    @staticmethod
    def _normalized(m: Member, batch: Any) -> Any:
        """A drawn batch of raw transitions with the member's statistics of now applied."""
        if not m.normalizer.active:
            return batch
        n = m.normalizer
        return batch._replace(obs=n.obs(batch.obs), next_obs=n.obs(batch.next_obs), reward=n.reward(batch.reward))

    def _random_actions(self) -> np.ndarray:
        low, high = self.spec.action_low, self.spec.action_high
        return np.stack([m.record.rng.uniform(low, high).astype(np.float32) for m in self.members])

    def _train_and_next_actions(self, train: bool) -> None:
        """Gradient steps (if due), then the next actions (policy or uniform random).

        The next actions are drawn after the last step too, so that the final checkpoint holds
        them and an extended run continues exactly as an uninterrupted longer one.
        """
        if train and min(len(m.buffer) for m in self.members) >= self.agent_config.batch_size:
            batches = [self._normalized(m, m.buffer.sample(m.record.rng, self.cfg.gradient_steps,
                                                           self.agent_config.batch_size))
                       for m in self.members]  # fmt: skip
            batches = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *batches)
            self.states, metrics = self._train(self.states, batches)
            self._record_metrics(jax.device_get(metrics))  # one host sync per round
        if self.env_steps >= self.cfg.random_steps:
            self.pending_actions = np.asarray(self._act(self.states, self._obs(), self.act_keys, self.env_steps))
        else:
            self.pending_actions = self._random_actions()

    def _check_support(self, mass: np.ndarray) -> None:
        """Warn once per loop when the distributional critic's targets fall outside its support (the
        mass clipped to ``[v_min, v_max]``; :class:`s2ac.distributional.SupportMonitor`)."""
        monitor = getattr(self, "_support_monitor", None)
        if monitor is None:
            cfg = self.agent_config
            monitor = self._support_monitor = SupportMonitor(cfg.v_min, cfg.v_max)
        monitor(mass=np.max(mass), what="distributional critic's bootstrap targets (probability mass)")

    def _record_metrics(self, metrics: dict[str, np.ndarray]) -> None:
        """Check every member's round metrics, add them to its sums, and count the round's updates."""
        for i, m in enumerate(self.members):
            member_metrics = {key: float(values[i]) for key, values in metrics.items()}
            bad = first_non_finite(member_metrics)
            if bad is not None:
                where = f" in {m.label}" if len(self.members) > 1 else ""
                raise TrainingDiverged(
                    f"non-finite train/{bad[0]} = {bad[1]}{where} after {self.updates + self.cfg.gradient_steps} "
                    f"updates (env step {self.env_steps}); training stopped; last good checkpoint: "
                    f"{runs.last_good_checkpoint(m.ckpt_root)}"
                )
            m.record.add_metrics(member_metrics)
        if "outside_mass" in metrics:
            self._check_support(metrics["outside_mass"])
        for m in self.members:
            m.record.counters.updates += self.cfg.gradient_steps

    def _step_envs(self, actions: np.ndarray) -> list[tuple[float, int] | None]:
        """Step every member's env, store the transitions and count the step; returns each member's
        finished episode (return, length) or None. A finished episode's env is reset at once (the
        next action needs the new observation); the episode is counted after the step's log row."""
        finished: list[tuple[float, int] | None] = []
        for m, action in zip(self.members, actions):
            next_obs, reward, terminated, truncated, info = m.env.step(action)
            next_obs = np.asarray(next_obs, np.float32)
            runs.check_transition(m.label, self.env_steps + 1, next_obs, reward, m.ckpt_root)
            m.normalizer.observe(next_obs, float(reward), bool(terminated or truncated))
            m.buffer.add(m.obs, action, float(reward), next_obs, bool(terminated))
            m.last_step = StepInfo(self.env_steps + 1, action, float(reward), next_obs, bool(terminated or truncated),
                                   info)  # fmt: skip
            m.ep_return += float(reward)
            m.ep_len += 1
            done = terminated or truncated
            finished.append((m.ep_return, m.ep_len) if done else None)
            m.obs = self._reset(m, m.record.counters.episodes + 1) if done else next_obs
        for m in self.members:
            m.record.counters.env_steps += 1
        return finished

    def _end_episodes(self, finished: list[tuple[float, int] | None]) -> None:
        for m, done in zip(self.members, finished):
            if done is not None:
                m.record.end_episode(*done)
                m.ep_return, m.ep_len = 0.0, 0

    # -- evaluation ---------------------------------------------------------------------
    def evaluate_members(self, n_episodes: int | None = None, keep_trajectories: bool = False) -> list[dict[str, Any]]:
        """Deterministic (``max``) and stochastic (``random``) evaluation of every member on its own
        eval envs (reset seeds of stream 1), all members' episodes stepped together. With
        ``keep_trajectories`` each mode's :class:`EpisodeStats` is added under ``{prefix}stats``."""
        n = n_episodes or self.cfg.eval_episodes
        for i, m in enumerate(self.members):
            make = m.make_eval_env or (lambda m=m: make_env(m.config.env_id))
            self.eval_envs[i] += [make() for _ in range(n - len(self.eval_envs[i]))]
        # Every member's episodes in one batch, member-major.
        envs = [env for member_envs in self.eval_envs for env in member_envs[:n]]
        batch = GymEpisodes(envs, [s for m in self.members for s in evaluation_seeds(m.config.seed, n)])
        out: list[dict[str, Any]] = [{} for _ in self.members]
        for kind, mode in self.eval_modes.items():
            fn, prefix = self._eval_actions[mode], EVAL_PREFIXES[kind]

            def policy(obs, t, fn=fn):
                obs = obs.reshape(len(self.members), n, -1)
                obs = jnp.asarray(np.stack([m.normalizer.obs(o) for m, o in zip(self.members, obs)]))
                return np.asarray(fn(self.states, obs, self.eval_keys, self.env_steps, t)).reshape(obs.shape[0] * n, -1)

            stats = run_episodes(batch, policy, keep_trajectories)
            for i, member_stats in enumerate(_split_stats(stats, len(self.members))):
                out[i].update(member_stats.summary(prefix))
                if keep_trajectories:
                    out[i][f"{prefix}stats"] = member_stats
        return out

    # -- main loop ----------------------------------------------------------------------------
    def _log(self, evals: list[dict] | None, fps: float, ups: float) -> None:
        rows = []
        for i, m in enumerate(self.members):
            rows.append(m.record.log_row(fps, ups, evals[i] if evals else {}))
            if m.logger is not None:
                m.logger.log(self.env_steps, rows[-1])
        if self.callback is not None:
            self.callback(self.env_steps, rows)

    def _start(self) -> None:
        for m in self.members:
            if m.run_dir is not None:
                m.logger = MetricLogger(m.run_dir, resume_step=self.resumed_at, tensorboard=self.tensorboard)
            if m.obs is None:
                m.obs = self._reset(m, m.record.counters.episodes)
        if self.pending_actions is None:
            self._train_and_next_actions(train=False)

    def _progress_label(self) -> str:
        runs = ", ".join(f"{m.config.env_id}/{m.config.seed}" for m in self.members)
        return f"{self.algo} {runs}" if len(self.members) > 1 else f"{self.algo} {self.cfg.env_id}"

    def run(self) -> dict[str, Any]:
        """Train every member to ``total_steps`` (or until ``stop_after_s``); return a summary."""
        cfg, start = self.cfg, time.perf_counter()
        signals = GracefulStop(self.graceful_signals)  # from here a signal stops the run with a checkpoint
        signals.__enter__()
        try:
            self.locks.acquire()
            with self.locks.release_on_error():
                self._start()
        except BaseException:
            signals.__exit__()
            raise
        rate, first_step = _Rate(self.env_steps, self.updates), self.env_steps
        stopped, saved, saved_at = False, None, None
        progress = make_progress(self.progress_enabled)
        try:
            with signals:
                with progress:
                    bar = progress.add_task(self._progress_label(), total=cfg.total_steps, completed=self.env_steps,
                                            fps=0.0, ret="-")  # fmt: skip
                    while self.env_steps < cfg.total_steps:
                        finished = self._step_envs(self.pending_actions)
                        train = self.env_steps >= cfg.learning_starts and self.env_steps % cfg.train_freq == 0
                        self._train_and_next_actions(train)
                        due = cfg.eval_freq and self.env_steps % cfg.eval_freq == 0
                        evals = self.evaluate_members() if due else None
                        if self.env_steps % cfg.log_every == 0 or evals:
                            self._log(evals, *rate.tick(self.env_steps, self.updates))
                        self._end_episodes(finished)
                        stopped = self.stop_after_s is not None and time.perf_counter() - start > self.stop_after_s
                        if self.on_step is not None and not self.on_step(self.members[0].last_step):
                            stopped = True
                        stopped = stopped or signals.requested
                        if stopped or (cfg.checkpoint_freq and self.env_steps % cfg.checkpoint_freq == 0):
                            saved, saved_at = self.save(), self.env_steps
                        if stopped:
                            break
                        if self.env_steps % 100 == 0 or self.env_steps == cfg.total_steps:
                            # steps/s of this call, all members together
                            elapsed = max(time.perf_counter() - start, 1e-9)
                            fps = (self.env_steps - first_step) * len(self.members) / elapsed
                            progress.update(bar, completed=self.env_steps, ret=self._latest_return(), fps=fps)
                final = saved if saved_at == self.env_steps else self.save()  # the last step's checkpoint, once
            # A signal that came too late to stop anything (the run had finished) is no interruption.
            self.interrupted_by = signals.name if self.env_steps < cfg.total_steps else None
        finally:
            for m in self.members:
                if m.logger is not None:
                    m.logger.close()
                    m.logger = None
            self.locks.release()
        return {
            "run_dirs": [str(m.run_dir) for m in self.members],
            "checkpoints": [str(p) for p in final],
            "env_steps": self.env_steps,
            "episodes": [m.record.counters.episodes for m in self.members],
            "updates": self.updates,
            "stopped": stopped,
            "interrupted_by": self.interrupted_by,
            "wall_s": time.perf_counter() - start,
        }

    def _latest_return(self) -> str:
        last = [r for r in (m.record.counters.last_return for m in self.members) if r is not None]
        return f"{np.mean(last):.1f}" if last else "-"


class _Rate:
    """Env steps and updates per second since the last log row (per member)."""

    def __init__(self, steps: int, updates: int):
        self.t, self.steps, self.updates, self.fps = time.perf_counter(), steps, updates, 0.0

    def tick(self, steps: int, updates: int) -> tuple[float, float]:
        now = time.perf_counter()
        dt = max(now - self.t, 1e-9)
        self.fps, ups = (steps - self.steps) / dt, (updates - self.updates) / dt
        self.t, self.steps, self.updates = now, steps, updates
        return self.fps, ups


def _split_stats(stats: EpisodeStats, n_members: int) -> list[EpisodeStats]:
    """Member ``i``'s share of episodes batched member-major."""
    per = len(stats.returns) // n_members
    sl = [slice(i * per, (i + 1) * per) for i in range(n_members)]
    return [
        EpisodeStats(stats.returns[s], stats.lengths[s], stats.goals[s], stats.hit_wall[s], stats.trajectories[s])
        for s in sl
    ]


class Trainer(TrainingLoop):
    """One run: ``algo`` with ``agent_config`` on ``train_config.env_id``, written into ``run_dir``
    (``None``: nothing is written). ``env`` / ``env_maker`` / ``start`` are one member's
    ``envs`` / ``env_makers`` / ``start`` of :class:`TrainingLoop`."""

    def __init__(
        self,
        algo: str,
        agent_config: AgentConfig,
        train_config: TrainConfig,
        run_dir: str | Path | None,
        *,
        resume: bool = False,
        progress: bool = True,
        tensorboard: bool = True,
        stop_after_s: float | None = None,
        callback: Callable[[int, dict], None] | None = None,
        env: Any = None,
        env_maker: Callable[[], Any] | None = None,
        start: tuple[Any, LoopCounters] | None = None,
        open_ended: bool = False,
        on_step: StepHook | None = None,
        graceful_signals: bool = False,
    ):
        rows_callback = None if callback is None else (lambda step, rows: callback(step, rows[0]))
        super().__init__(
            algo, agent_config, [train_config], [run_dir], resume=resume, progress=progress,
            tensorboard=tensorboard, stop_after_s=stop_after_s, callback=rows_callback,
            envs=None if env is None else [env], env_makers=None if env_maker is None else [env_maker],
            start=None if start is None else [start], open_ended=open_ended, on_step=on_step,
            graceful_signals=graceful_signals,
        )  # fmt: skip
        self.run_dir = None if run_dir is None else Path(run_dir)

    @property
    def state(self) -> Any:
        """The agent state (unbatched)."""
        return self.member_state(0)

    @state.setter
    def state(self, value: Any) -> None:
        self.states = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], value)

    @property
    def counters(self) -> LoopCounters:
        return self.members[0].record.counters

    def evaluate(self, n_episodes: int | None = None, keep_trajectories: bool = False) -> dict[str, Any]:
        """Deterministic and stochastic evaluation of the run (see :meth:`TrainingLoop.evaluate_members`)."""
        return self.evaluate_members(n_episodes, keep_trajectories)[0]

    def run(self) -> dict[str, Any]:
        out = super().run()
        return {
            "run_dir": out["run_dirs"][0],
            "checkpoint": out["checkpoints"][0] if out["checkpoints"] else None,
            "env_steps": out["env_steps"],
            "episodes": out["episodes"][0],
            "updates": out["updates"],
            "stopped": out["stopped"],
            "interrupted_by": out["interrupted_by"],
        }


__all__ = [
    "SHARED_SCHEDULE",
    "LOOP_STATE_KEY",
    "Member",
    "StepInfo",
    "StepHook",
    "Trainer",
    "TrainingLoop",
    "check_group",
    "over_members",
]
