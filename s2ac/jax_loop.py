"""Pure-JAX training loop for the multigoal family, vmapped over seeds.

The whole off-policy loop of :mod:`s2ac.loop` (REFERENCE.md §2 "schedule") runs inside one
compiled function per chunk of env steps:

* a ``lax.scan`` over *rounds* of ``train_freq`` env steps; each env step acts with the
  agent's ``act(..., mode="random")`` (uniform random actions while ``step < random_steps``),
  steps the pure-JAX env (:func:`s2ac.envs.multigoal_jax.step_autoreset`) and writes the
  transition into a JAX ring buffer held in the carry;
* at the end of each round, if ``step >= learning_starts``, ``gradient_steps`` updates on
  minibatches drawn with ``jax.random.randint`` over the filled part of the buffer;
* ``jax.vmap`` over seeds: each seed has its own agent state, env, buffer and keys.

Semantics shared with :mod:`s2ac.loop`: the buffer stores ``terminated`` only (a time-limit
truncation is not terminal, REFERENCE.md §1 "Critic"); updates happen after env steps
``n * train_freq >= learning_starts``; acting keys are ``fold_in(act_key, env_step)``.
The random streams are JAX's, not NumPy's, so numbers differ from :mod:`s2ac.loop`.

The global env-step counter is shared by all seeds and is *not* batched, so the
random-phase and learning-starts tests are real ``lax.cond`` branches (nothing is computed
twice under ``vmap``). A host loop runs the chunks, syncs once per chunk and drives a rich
progress bar.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from s2ac import checkpoint as ckpt
from s2ac import schedules
from s2ac.agents import Agent, EnvSpec, algo_of_config, make_agent
from s2ac.agents.common import WORST_CASE_METRICS, scan_updates
from s2ac.config import AgentConfig, TrainConfig
from s2ac.envs import jax_env_for
from s2ac.envs import multigoal_jax as mj
from s2ac.envs.multigoal import MultiGoalSpec
from s2ac.evaluate import EpisodeStats, StepResult, run_episodes
from s2ac.logger import MetricLogger, make_progress
from s2ac.replay import ReplayState, replay_add, replay_init, replay_sample, replay_to_host
from s2ac.runs import LoopCounters, RunLocks, RunRecord, prepare_run_dir, run_config_dict
from s2ac.types import Array, Batch

MAX_METRICS = (*WORST_CASE_METRICS, "invalid_state_fraction", "folded_fraction")
"""Update metrics whose per-chunk maximum is recorded next to the mean (a bound must hold at every step)."""


# ----------------------------------------------------------------------------- replay buffer


# ----------------------------------------------------------------------------- loop state


class SeedState(NamedTuple):
    """Everything one seed carries between env steps (batched over seeds by ``vmap``)."""

    agent_state: Any
    env: mj.EnvState
    buffer: ReplayState
    act_key: Array
    sample_key: Array
    ep_return: Array
    ep_length: Array


class EpisodeAcc(NamedTuple):
    """Per-seed sums over the episodes finished during one chunk."""

    episodes: Array
    return_sum: Array
    length_sum: Array
    goals: Array
    last_return: Array


class TrainAcc(NamedTuple):
    """Per-seed sums / maxima of the update metrics over the update rounds of one chunk."""

    rounds: Array
    mean_sum: dict
    max_val: dict


def _zero_episode_acc() -> EpisodeAcc:
    return EpisodeAcc(
        jnp.zeros((), jnp.int32), jnp.zeros(()), jnp.zeros(()), jnp.zeros((), jnp.int32), jnp.full((), jnp.nan)
    )


def metric_shapes(agent: Agent, state: Any, spec: EnvSpec, batch_size: int) -> dict:
    """Shapes of ``agent.update``'s metrics, found without running it."""
    batch = Batch(
        jnp.zeros((batch_size, spec.obs_dim)),
        jnp.zeros((batch_size, spec.act_dim)),
        jnp.zeros((batch_size,)),
        jnp.zeros((batch_size, spec.obs_dim)),
        jnp.zeros((batch_size,)),
    )
    return jax.eval_shape(agent.update, state, batch)[1]


def env_spec_of(task: MultiGoalSpec) -> EnvSpec:
    """The agents' :class:`EnvSpec` of a multigoal task (2-D positions, 2-D velocity box)."""
    a = task.max_action
    return EnvSpec(2, 2, (-a, -a), (a, a))


def init_seed_state(agent: Agent, task: MultiGoalSpec, seed: int, capacity: int) -> SeedState:
    """Fresh state of one seed: keys split from ``PRNGKey(seed)`` as in :class:`s2ac.loop.Trainer`."""
    k_init, act_key, sample_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    env_state, _ = mj.reset(task)
    return SeedState(
        agent_state=agent.init(k_init),
        env=env_state,
        buffer=replay_init(capacity, agent.spec.obs_dim, agent.spec.act_dim),
        act_key=act_key,
        sample_key=sample_key,
        ep_return=jnp.zeros(()),
        ep_length=jnp.zeros((), jnp.int32),
    )


def stack_trees(trees: list[Any]) -> Any:
    """Stack pytrees of identical structure on a new leading (seed) axis."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def unstack_tree(tree: Any, i: int) -> Any:
    """Seed ``i`` of a pytree stacked by :func:`stack_trees`."""
    return jax.tree_util.tree_map(lambda x: x[i], tree)


# ----------------------------------------------------------------------------- one chunk


def _env_step_fn(agent: Agent, task: MultiGoalSpec, cfg: TrainConfig):
    """``((seed_state, episode_acc), step) -> ((seed_state, episode_acc), None)``: act, step the env,
    store the transition and count finished episodes."""
    low, high = jnp.asarray(agent.spec.action_low, jnp.float32), jnp.asarray(agent.spec.action_high, jnp.float32)

    def env_step(carry, step):
        st, ep_acc = carry
        obs = mj.observation(st.env)
        key = jax.random.fold_in(st.act_key, step)

        def policy_action(_):
            return agent.act(st.agent_state, obs[None], key, mode="random")[0].astype(jnp.float32)

        def random_action(_):
            return jax.random.uniform(key, low.shape, jnp.float32, low, high)

        # `step` is unbatched: a real branch, the warm-up never evaluates the policy.
        action = jax.lax.cond(step < cfg.random_steps, random_action, policy_action, None)
        env, next_obs, reward, terminated, truncated, _ = mj.step_autoreset(task, st.env, action)
        buffer = replay_add(st.buffer, step, obs, action, reward, next_obs, terminated)
        ep_return, ep_length = st.ep_return + reward, st.ep_length + 1
        done = terminated | truncated
        ep_acc = EpisodeAcc(
            ep_acc.episodes + done,
            ep_acc.return_sum + jnp.where(done, ep_return, 0.0),
            ep_acc.length_sum + jnp.where(done, ep_length, 0),
            ep_acc.goals + terminated,
            jnp.where(done, ep_return, ep_acc.last_return),
        )
        st = st._replace(
            env=env, buffer=buffer, ep_return=jnp.where(done, 0.0, ep_return), ep_length=jnp.where(done, 0, ep_length)
        )
        return (st, ep_acc), None

    return env_step


def _train_round_fn(agent: Agent, cfg: TrainConfig):
    """``(seed_state, train_acc, n_added) -> (seed_state, train_acc)``: ``gradient_steps`` updates on
    minibatches drawn uniformly from the filled part of the buffer."""
    update_many = scan_updates(agent.update)

    def train_round(st: SeedState, tr_acc: TrainAcc, n_added: Array):
        key = jax.random.fold_in(st.sample_key, n_added)
        batches = replay_sample(st.buffer, key, n_added, cfg.gradient_steps, agent.config.batch_size)
        agent_state, metrics = update_many(st.agent_state, batches)
        metrics = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), metrics)
        tr_acc = TrainAcc(
            tr_acc.rounds + 1,
            jax.tree_util.tree_map(jnp.add, tr_acc.mean_sum, metrics),
            jax.tree_util.tree_map(jnp.maximum, tr_acc.max_val, metrics),
        )
        return st._replace(agent_state=agent_state), tr_acc

    return train_round


def make_chunk_fn(agent: Agent, task: MultiGoalSpec, cfg: TrainConfig, n_rounds: int, metric_shapes: dict):
    """The per-seed function running ``n_rounds`` rounds of ``train_freq`` env steps (+ updates).

    Signature ``(seed_state, start_step) -> (seed_state, (EpisodeAcc, TrainAcc))``;
    ``start_step`` is the shared (unbatched) global env-step counter.
    """
    env_step, train_round = _env_step_fn(agent, task, cfg), _train_round_fn(agent, cfg)

    def one_round(carry, round_index):
        st, ep_acc, tr_acc, start_step = carry
        step0 = start_step + round_index * cfg.train_freq
        steps = step0 + jnp.arange(cfg.train_freq, dtype=jnp.int32)
        (st, ep_acc), _ = jax.lax.scan(env_step, (st, ep_acc), steps)
        n_added = step0 + cfg.train_freq
        # Same rule as s2ac.loop: train after env step n when n % train_freq == 0, n >= learning_starts
        # and the buffer holds a whole batch.
        due = (n_added >= cfg.learning_starts) & (n_added >= agent.config.batch_size)
        st, tr_acc = jax.lax.cond(due, lambda s, a: train_round(s, a, n_added), lambda s, a: (s, a), st, tr_acc)
        return (st, ep_acc, tr_acc, start_step), None

    def chunk(st: SeedState, start_step: Array):
        zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, jnp.float32), metric_shapes)
        lows = jax.tree_util.tree_map(lambda s: jnp.full(s.shape, -jnp.inf, jnp.float32), metric_shapes)
        init = (st, _zero_episode_acc(), TrainAcc(jnp.zeros((), jnp.int32), zeros, lows), start_step)
        (st, ep_acc, tr_acc, _), _ = jax.lax.scan(one_round, init, jnp.arange(n_rounds, dtype=jnp.int32))
        return st, (ep_acc, tr_acc)

    return chunk


# ----------------------------------------------------------------------------- host loop


def _rounds_per_chunk(n_rounds: int, target: int) -> int:
    """Largest divisor of ``n_rounds`` not above ``target`` (one compiled chunk shape)."""
    target = max(1, min(target, n_rounds))
    return max(d for d in range(1, target + 1) if n_rounds % d == 0)


def check_schedule(cfg: TrainConfig) -> None:
    """The vectorized loop needs whole rounds: ``total_steps`` a multiple of ``train_freq``."""
    cfg.validate()
    if cfg.normalize_obs or cfg.normalize_reward:
        raise ValueError(
            "train_vectorized does not normalise observations or rewards; use the host loop (s2ac train, the class "
            "API, s2ac sweep --lockstep) for normalize_obs / normalize_reward"
        )
    if cfg.total_steps % cfg.train_freq:
        raise ValueError(
            f"train_vectorized needs total_steps ({cfg.total_steps}) to be a multiple of train_freq ({cfg.train_freq})"
        )


def _history_row(step: int, ep: EpisodeAcc, tr: TrainAcc) -> dict[str, np.ndarray]:
    """Per-seed statistics of one chunk (NaN where a seed finished no episode / ran no update)."""
    ep, tr = jax.device_get(ep), jax.device_get(tr)
    n_ep = np.asarray(ep.episodes, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        row: dict[str, np.ndarray] = {
            "step": np.asarray(step),
            "episodes": n_ep,
            "ep_return": np.where(n_ep > 0, ep.return_sum / n_ep, np.nan),
            "ep_length": np.where(n_ep > 0, ep.length_sum / n_ep, np.nan),
            "goal_rate": np.where(n_ep > 0, ep.goals / n_ep, np.nan),
            "last_return": np.asarray(ep.last_return, np.float64),
            "update_rounds": np.asarray(tr.rounds, np.float64),
        }
        rounds = np.asarray(tr.rounds, np.float64)
        for name, total in tr.mean_sum.items():
            row[f"train/{name}"] = np.where(rounds > 0, np.asarray(total) / np.maximum(rounds, 1), np.nan)
        for name in MAX_METRICS:
            if name in tr.max_val:
                row[f"train/{name}_max"] = np.where(rounds > 0, np.asarray(tr.max_val[name]), np.nan)
    return row


def _warn_non_finite(row: dict[str, np.ndarray], step: int) -> None:
    """Warn (do not stop: other seeds may be fine) when a seed's update metrics turn non-finite."""
    trained = row["update_rounds"] > 0  # NaN without updates is expected
    bad = sorted(k for k, v in row.items() if k.startswith("train/") and np.any(~np.isfinite(v) & trained))
    if bad:
        warnings.warn(f"non-finite update metrics {bad} by env step {step}", RuntimeWarning, stacklevel=3)


def stack_history(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``{key: array (n_chunks, ...)}`` from per-chunk rows."""
    return {key: np.stack([r[key] for r in rows]) for key in rows[0]}


class RunFolders:
    """One run folder per seed, in the host loop's format (:mod:`s2ac.runs`): ``config.json``,
    ``metrics.jsonl`` and TensorBoard rows with the host loop's metric names, and a final checkpoint
    (agent state, replay buffer, run record) that ``s2ac eval`` and the class API load.

    Differences from the host loop, by construction: ``rollout/ep_rew_mean`` / ``ep_len_mean`` are
    means over the episodes finished within the chunk (the host loop: the last 100 episodes), and the
    checkpoint holds no mid-episode state (the JAX loop's random streams are JAX's), so a ``--resume``
    with the host loop continues the run from a fresh episode, not bit for bit.
    """

    def __init__(self, algo: str, agent_config: AgentConfig, cfg: TrainConfig, env_id: str, seeds, run_dirs,
                 tensorboard: bool = True):  # fmt: skip
        if len(run_dirs) != len(seeds):
            raise ValueError(f"{len(seeds)} seeds but {len(run_dirs)} run folders")
        self.run_dirs, self.gradient_steps = [Path(d) for d in run_dirs], cfg.gradient_steps
        configs = [dataclasses.replace(cfg, env_id=env_id, seed=int(s)) for s in seeds]
        self.locks = RunLocks(self.run_dirs).acquire()  # held until close()
        with self.locks.release_on_error():
            for run_dir, c in zip(self.run_dirs, configs):
                prepare_run_dir(run_dir, run_config_dict(algo, agent_config, c), resume=False)
            self.loggers = [MetricLogger(d, tensorboard=tensorboard) for d in self.run_dirs]
        self.records = [RunRecord(LoopCounters(), np.random.default_rng(int(s))) for s in seeds]

    def log(self, row: dict[str, np.ndarray], fps: float) -> None:
        """One metric row per seed from a chunk's :func:`_history_row` (keys without data are left out)."""
        step = int(row["step"])
        for i, (logger, record) in enumerate(zip(self.loggers, self.records)):
            c = record.counters
            c.env_steps, c.episodes = step, c.episodes + int(row["episodes"][i])
            c.updates += int(row["update_rounds"][i]) * self.gradient_steps
            if np.isfinite(row["last_return"][i]):
                c.last_return = float(row["last_return"][i])
            values = {
                "rollout/ep_rew_mean": row["ep_return"][i],
                "rollout/ep_len_mean": row["ep_length"][i],
                "rollout/goal_rate": row["goal_rate"][i],
                **{k: v[i] for k, v in row.items() if k.startswith("train/")},
                "train/n_updates": c.updates,
                "time/episodes": c.episodes,
                "time/fps": fps,
            }
            logger.log(step, {k: float(v) for k, v in values.items() if np.isfinite(v)})

    def save(self, states: SeedState, step: int) -> None:
        """The final checkpoint of every seed."""
        for i, (run_dir, record) in enumerate(zip(self.run_dirs, self.records)):
            seed_state = unstack_tree(states, i)
            buffer = replay_to_host(seed_state.buffer, step)
            trainer_state = {**record.state_dict(), "source": "jax_loop"}
            agent_state = jax.device_get(seed_state.agent_state)
            ckpt.save_checkpoint(run_dir / "checkpoints", step, agent_state, trainer_state, buffer.save)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()
        self.locks.release()


@functools.lru_cache(maxsize=8)
def compiled_loop(algo_config: AgentConfig, train_config: TrainConfig, env_id: str, rounds_per_chunk: int):
    """``(agent, run_chunk)``: the agent and its jitted, seed-vmapped chunk function.

    Cached on the (frozen, hashable) configs, so runs with the same settings and seed count, e.g.
    one seed at a time, compile once.
    """
    task = jax_env_for(env_id)
    agent = make_agent(algo_config, env_spec_of(task))
    shapes = metric_shapes(agent, agent.init(jax.random.PRNGKey(0)), agent.spec, algo_config.batch_size)
    chunk = make_chunk_fn(agent, task, train_config, rounds_per_chunk, shapes)
    return agent, jax.jit(jax.vmap(chunk, in_axes=(0, None)), donate_argnums=0)


def train_vectorized(
    algo_config: AgentConfig,
    train_config: TrainConfig,
    env_id: str,
    seeds: list[int],
    *,
    n_chunks: int = 20,
    progress: bool = True,
    description: str | None = None,
    run_dirs: Sequence[str | Path] | None = None,
    algo: str | None = None,
    tensorboard: bool = True,
) -> tuple[Any, dict[str, np.ndarray]]:
    """Train one agent per seed on the multigoal env ``env_id``, all seeds in one vmapped program.

    Follows :mod:`s2ac.loop`'s schedule (``random_steps``, ``learning_starts``,
    ``train_freq``/``gradient_steps``; REFERENCE.md §2) with the buffer capacity
    ``min(buffer_size, total_steps)``. ``train_config.env_id`` and ``seed`` are ignored in
    favour of ``env_id`` and ``seeds``.

    Returns ``(states, history)``: the final agent states stacked on a leading seed axis, and
    ``history[key]`` arrays of shape ``(n_chunks,)`` (``"step"``) or ``(n_chunks, n_seeds)``:
    ``ep_return`` / ``ep_length`` / ``goal_rate`` (mean over the episodes finished in the
    chunk), ``episodes``, ``update_rounds``, ``train/<metric>`` (mean over the chunk's
    updates) and ``train/<metric>_max`` for :data:`MAX_METRICS`.

    With ``run_dirs`` (one per seed) each seed also gets a run folder in the host loop's format
    (:class:`RunFolders`); ``algo`` names it in ``config.json`` (default: the registry's name for
    ``algo_config``).
    """
    if not seeds:
        raise ValueError("train_vectorized needs at least one seed")
    check_schedule(train_config)
    cfg = train_config
    algo_config = schedules.with_horizon(algo_config, cfg)  # a linear learning rate spans the run's updates
    capacity = min(cfg.buffer_size, cfg.total_steps)
    n_rounds = cfg.total_steps // cfg.train_freq
    per_chunk = _rounds_per_chunk(n_rounds, -(-n_rounds // max(1, n_chunks)))
    agent, run_chunk = compiled_loop(algo_config, cfg, env_id, per_chunk)
    states = stack_trees([init_seed_state(agent, jax_env_for(env_id), int(s), capacity) for s in seeds])
    folders = None
    if run_dirs is not None:
        folders = RunFolders(
            algo or algo_of_config(algo_config), algo_config, cfg, env_id, seeds, run_dirs, tensorboard
        )

    rows: list[dict[str, np.ndarray]] = []
    step, t_start = 0, time.perf_counter()
    with make_progress(progress) as bar:
        task_id = bar.add_task(description or f"{env_id} x{len(seeds)} seeds", total=cfg.total_steps, fps=0.0, ret="-")
        while step < cfg.total_steps:
            states, (ep_acc, tr_acc) = run_chunk(states, jnp.asarray(step, jnp.int32))
            step += per_chunk * cfg.train_freq
            rows.append(_history_row(step, ep_acc, tr_acc))  # one host sync per chunk
            _warn_non_finite(rows[-1], step)
            ret = rows[-1]["last_return"]
            fps = step / max(time.perf_counter() - t_start, 1e-9)
            if folders is not None:
                folders.log(rows[-1], fps)
            shown = f"{np.nanmean(ret):.1f}" if np.any(np.isfinite(ret)) else "-"
            bar.update(task_id, completed=step, fps=fps, ret=shown)
    if folders is not None:
        folders.save(states, step)
        folders.close()
    return states.agent_state, stack_history(rows)


# ----------------------------------------------------------------------------- test episodes


class Rollouts(NamedTuple):
    """Test episodes, leading axes ``(seeds, episodes)``; ``positions`` ``(seeds, T + 1, episodes, 2)``
    (frozen after an episode ends), ``goal`` the goal reached (-1 if none), ``hit_wall`` whether any
    step was cancelled by the wall."""

    positions: np.ndarray
    returns: np.ndarray
    lengths: np.ndarray
    goal: np.ndarray
    hit_wall: np.ndarray


@functools.lru_cache(maxsize=16)
def _batched_step(task: MultiGoalSpec):
    """Jitted ``multigoal_jax.step`` over a batch of envs (compiled once per task)."""
    return jax.jit(jax.vmap(functools.partial(mj.step, task)))


class MultigoalEpisodes:
    """``n`` episodes of a pure-JAX multigoal task from ``task.start``, an
    :class:`s2ac.evaluate.EpisodeBatch` (the env step is the Gymnasium env's
    :func:`s2ac.envs.multigoal.transition`, so outcomes match :class:`s2ac.evaluate.GymEpisodes`)."""

    def __init__(self, task: MultiGoalSpec, n: int):
        self.task, self.n, self._step = task, n, _batched_step(task)
        self.env: mj.EnvState | None = None

    def reset(self) -> np.ndarray:
        self.env, obs = mj.reset_batch(self.task, self.n)
        return np.asarray(obs)

    def step(self, actions: np.ndarray, active: np.ndarray) -> StepResult:
        env, obs, reward, terminated, truncated, info = jax.device_get(self._step(self.env, jnp.asarray(actions)))
        self.env = env  # finished episodes' results are ignored by the runner
        return StepResult(obs, reward, terminated, truncated, info["goal_index"], info["hit_wall"])


def rollouts_from_stats(stats: EpisodeStats, horizon: int) -> Rollouts:
    """:class:`Rollouts` of one seed: each trajectory padded with its last position to ``horizon + 1``."""
    paths = [np.concatenate([p, np.repeat(p[-1:], horizon + 1 - len(p), axis=0)]) for p in stats.trajectories]
    return Rollouts(
        np.stack(paths, axis=1), np.asarray(stats.returns), np.asarray(stats.lengths),
        np.asarray(stats.goals), np.asarray(stats.hit_wall),
    )  # fmt: skip


def play_episodes(agent: Agent, states: Any, task: MultiGoalSpec, key: Array, n_episodes: int, mode: str) -> Rollouts:
    """``n_episodes`` test episodes per seed of ``states`` (stacked), from ``task.start``, with
    ``agent.act(..., mode)`` (REFERENCE.md §3: episodes end at a goal or after ``task.horizon`` steps),
    played by :func:`s2ac.evaluate.run_episodes`; the key of step ``t`` of seed ``i`` is
    ``fold_in(fold_in(key, i), t)``."""
    n_seeds = jax.tree_util.tree_leaves(states)[0].shape[0]
    out = []
    for i in range(n_seeds):
        state, k_seed = unstack_tree(states, i), jax.random.fold_in(key, i)

        def policy(obs, t, state=state, k_seed=k_seed):
            return agent.act(state, jnp.asarray(obs), jax.random.fold_in(k_seed, t), mode=mode)

        stats = run_episodes(MultigoalEpisodes(task, n_episodes), policy, keep_trajectories=True)
        out.append(rollouts_from_stats(stats, task.horizon))
    return Rollouts(*(np.stack(x) for x in zip(*out)))


__all__ = [
    "MAX_METRICS",
    "RunFolders",
    "Rollouts",
    "SeedState",
    "env_spec_of",
    "compiled_loop",
    "make_chunk_fn",
    "metric_shapes",
    "MultigoalEpisodes",
    "play_episodes",
    "rollouts_from_stats",
    "stack_history",
    "train_vectorized",
]
