"""A class API that behaves like Stable-Baselines3's.

from s2ac import S2AC
model = S2AC("MlpPolicy", "Pendulum-v1", learning_rate=1e-3, seed=0)
model.learn(total_timesteps=20_000)
action, _ = model.predict(obs, deterministic=True)
model.save("pendulum_s2ac")                  # one file: pendulum_s2ac.zip
model = S2AC.load("pendulum_s2ac", env=env)  # then model.learn(...) continues

One model is one run of :class:`s2ac.loop.Trainer`, kept between ``learn`` calls: weights,
optimiser states, replay buffer, the env's current episode and the step counters carry over,
so ``learn(a); learn(b)`` trains exactly as ``learn(a + b)`` does. See docs/guide/class-api.md, table
"SB3 call -> s2ac" for what differs from SB3.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from s2ac import checkpoint as ckpt
from s2ac.agents import REGISTRY, AlgoSpec, algo_train_fields, config_class, make_agent
from s2ac.api_settings import SCHEDULE_FIELDS, resolve_settings
from s2ac.callbacks import as_callback
from s2ac.config import AgentConfig, TrainConfig, config_from_dict, config_to_dict, make_train_config
from s2ac.env_source import EnvSource, env_source, eval_maker
from s2ac.evaluate import GymEpisodes, evaluation_seeds, run_episodes
from s2ac.loop import StepInfo, Trainer, split_seed_keys
from s2ac.model_file import model_path, read_model, write_model
from s2ac.normalize import Normalizer
from s2ac.replay import ReplayBuffer
from s2ac.runs import CHECKPOINT_DIR, RUN_CONFIG_FILE, LoopCounters, run_checkpoint
from s2ac.types import EnvSpec

POLICY_NAMES = ("MlpPolicy",)
"""SB3's policy argument: the only kind here is an MLP policy over a flat observation."""
_UNSET: Any = object()


class ModelLogger:
    """SB3's ``model.logger`` for callbacks: ``record(key, value)`` then ``dump(step)`` writes the
    recorded values as one row of the run's ``metrics.jsonl`` (when the model has a run folder)
    and keeps them in ``name_to_value``."""

    def __init__(self, model: Algorithm):
        self._model = model
        self.name_to_value: dict[str, float] = {}
        self.rows: list[dict[str, float]] = []

    def record(self, key: str, value: Any, exclude: Any = None) -> None:
        self.name_to_value[key] = value

    def record_mean(self, key: str, value: Any, exclude: Any = None) -> None:
        self.name_to_value[key] = value

    def dump(self, step: int = 0) -> None:
        row = {k: float(v) for k, v in self.name_to_value.items() if isinstance(v, (int, float, np.number))}
        self.rows.append({"step": int(step), **row})
        trainer = self._model._trainer
        if trainer is not None and trainer.members[0].logger is not None:
            trainer.members[0].logger.log(trainer.env_steps, row)
        self.name_to_value = {}

    def get_dir(self) -> str | None:
        run_dir = self._model.run_dir
        return None if run_dir is None else str(run_dir)


@dataclasses.dataclass(frozen=True)
class Policy:
    """``model.policy``: the agent (its networks and ``act``), its current state, and ``predict``."""

    agent: Any
    state: Any
    deterministic_mode: str

    def predict(self, observation: np.ndarray, key: jax.Array, deterministic: bool = False) -> np.ndarray:
        mode = self.deterministic_mode if deterministic else "random"
        return np.asarray(self.agent.act(self.state, jnp.asarray(observation), key, mode=mode))


class Algorithm:
    """Base of the per-algorithm classes (:data:`ALGORITHMS`): one agent, its env and its run.

    ``S2AC(env)``, ``S2AC("MlpPolicy", env)`` (SB3's form) and ``S2AC(env, config)`` all work.
    ``env``: an id, a ``gym.Env`` (wrappers and make kwargs kept) or a factory
    (:mod:`s2ac.env_source`). ``config``: an agent config of this algorithm, a dict of its fields,
    or None (the preset's). Settings: SB3's names (:data:`s2ac.api_settings.SB3_NAMES`) or any
    agent-config or schedule field. ``run_dir`` (or ``tensorboard_log``) makes learning write a
    run folder (metrics, TensorBoard, checkpoints); without one, nothing is written.
    """

    algo: str = ""

    def __init__(
        self,
        policy: Any = _UNSET,
        env: Any = _UNSET,
        config: AgentConfig | dict | None = None,
        *,
        preset: str = "corrected",
        seed: int | None = 0,
        run_dir: str | Path | None = None,
        tensorboard_log: str | Path | None = None,
        verbose: int = 1,
        device: str = "auto",
        **settings: Any,
    ):
        env, config = _split_policy_arg(policy, env, config)
        if seed is None:  # SB3: a random seed; it is recorded so the run can be repeated
            seed = int(np.random.SeedSequence().entropy % (2**31))
        if device not in ("auto", "cpu", "cuda", "gpu"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda'; got {device!r}")
        self.source: EnvSource = env_source(env)
        self.env_id, self.preset, self.seed, self.verbose = self.source.env_id, preset, int(seed), verbose
        self.config, self.schedule = resolve_settings(self.algo, preset, self.env_id, config, settings)
        self.train_config(1)  # the schedule is checked now, not at learn()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.tensorboard_log = Path(tensorboard_log) if tensorboard_log is not None else None
        self.spec: EnvSpec = self.source.spec
        self.agent = make_agent(self.config, self.spec)
        self._trainer: Trainer | None = None
        self._state_cache: tuple[Any, Any] = (None, None)
        self.state = self.agent.init(split_seed_keys(self.seed)[0])  # the state a first learn() starts from
        self.counters = LoopCounters()
        self.logger = ModelLogger(self)
        self._resume_dir: Path | None = None
        self._pending_buffer: Path | None = None
        self._state_given = False  # a loaded or set state: learning must continue from it
        self._timesteps_offset = 0
        self._act_calls = 0
        self._loaded_normalizer: Normalizer | None = None  # statistics of a loaded model, until learn() runs
        self.tb_log_name: str | None = None

    # -- properties as in SB3 -----------------------------------------------------------
    @property
    def state(self) -> Any:
        """The agent state (networks, optimiser states, PRNG key), the training run's once learning began."""
        if self._trainer is None:
            return self._state
        if self._state_cache[0] is not self._trainer.states:
            self._state_cache = (self._trainer.states, self._trainer.state)
        return self._state_cache[1]

    @state.setter
    def state(self, value: Any) -> None:
        self._state = value
        if self._trainer is not None:
            self._trainer.state = value

    @property
    def num_timesteps(self) -> int:
        """Env steps since the last ``learn(reset_num_timesteps=True)`` (SB3's counter)."""
        return self.counters.env_steps - self._timesteps_offset

    @property
    def policy(self) -> Policy:
        return Policy(self.agent, self.state, self.config.deterministic_mode)

    def get_env(self) -> Any:
        """The training env (a ``gym.Env``; SB3 returns a ``VecEnv``)."""
        return self.source.env

    def set_env(self, env: Any) -> None:
        """Train on ``env`` from the next ``learn``; its spaces must match. The current episode ends
        there (the new env is reset), as in SB3."""
        source = env_source(env)
        if source.spec != self.spec:
            raise ValueError(f"the new env's spaces {source.spec} differ from the model's {self.spec}")
        self.source = source
        if self._trainer is not None:
            member = self._trainer.members[0]
            member.env, member.make_eval_env, member.obs = source.env, source.make_copy, None
            member.ep_return, member.ep_len = 0.0, 0
            self._trainer.eval_envs[0] = []
            self._trainer.pending_actions = None

    def get_vec_normalize_env(self) -> None:
        """SB3's hook for ``VecNormalize``; here normalisation is the schedule's ``normalize_obs`` (see
        :attr:`normalizer`), so there is no wrapper env."""
        return None

    @property
    def normalizer(self) -> Normalizer | None:
        """The observation and reward statistics (``normalize_obs`` / ``normalize_reward``), or None."""
        if self._trainer is not None:
            normalizer = self._trainer.members[0].normalizer
            return normalizer if normalizer.active else None
        return self._loaded_normalizer

    def get_parameters(self) -> dict[str, Any]:
        """The agent state as nested dicts of numpy arrays (networks, optimiser states, PRNG key)."""
        return serialization.to_state_dict(jax.device_get(self.state))

    def set_parameters(self, load_path_or_dict: str | Path | dict, exact_match: bool = True) -> None:
        """Set the agent state from :meth:`get_parameters`'s dict or a saved model's file. With
        ``exact_match=False`` a dict may hold a subset of the top-level entries."""
        if isinstance(load_path_or_dict, dict):
            params = load_path_or_dict
        else:
            meta, state_bytes = read_model(model_path(load_path_or_dict))
            params = ckpt.upgrade_state_dict(serialization.msgpack_restore(state_bytes), self.state)
        current = self.get_parameters()
        if exact_match and set(params) != set(current):
            raise ValueError(f"parameters have entries {sorted(params)}, the model {sorted(current)}")
        unknown = set(params) - set(current)
        if unknown:
            raise ValueError(f"unknown parameter entries {sorted(unknown)}; the model has {sorted(current)}")
        try:
            self.state = serialization.from_state_dict(self.state, {**current, **params})
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"parameters do not fit this model's networks: {err}") from err
        self._state_given = True

    # -- learning ------------------------------------------------------------------------
    def train_config(self, total_steps: int) -> TrainConfig:
        """The schedule of a run of ``total_steps`` env steps."""
        schedule = {**algo_train_fields(self.algo, self.preset, self.env_id), **self.schedule}
        return make_train_config(self.preset, self.env_id, total_steps=total_steps, seed=self.seed, **schedule)

    def _new_trainer(self, total_steps: int, progress: bool, on_step) -> Trainer:
        train = self.train_config(total_steps)
        common = dict(progress=progress, env=self.source.env, env_maker=self.source.make_copy, open_ended=True,
                      on_step=on_step)  # fmt: skip
        if self._resume_dir is not None:  # a model loaded from a run folder continues that run exactly
            return Trainer(self.algo, self.config, train, self._resume_dir, resume=True, **common)
        start = (self.state, self.counters) if self._state_given or self.counters.env_steps else None
        return Trainer(self.algo, self.config, train, self._learning_dir(), start=start, **common)

    def _learning_dir(self) -> Path | None:
        if self.run_dir is not None or self.tensorboard_log is None:
            return self.run_dir
        name = self.tb_log_name or type(self).__name__
        taken = [int(p.name.rsplit("_", 1)[1]) for p in self.tensorboard_log.glob(f"{name}_*")
                 if p.name.rsplit("_", 1)[0] == name and p.name.rsplit("_", 1)[1].isdigit()]  # fmt: skip
        self.run_dir = self.tensorboard_log / f"{name}_{max(taken, default=0) + 1}"  # SB3's naming: NAME_1, NAME_2 ...
        return self.run_dir

    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        log_interval: int | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool | None = None,
        tb_log_name: str | None = None,
    ) -> Algorithm:
        """Train ``total_timesteps`` more env steps, continuing from the model's current state.

        ``callback``: SB3's protocol (:mod:`s2ac.callbacks`, or SB3's own callbacks), a list of
        them, or a function ``(locals, globals) -> bool``; ``on_step`` returning False stops.
        ``reset_num_timesteps``: restart :attr:`num_timesteps` at 0 (the schedule, the random-action
        phase and the checkpoints keep counting the model's lifetime steps). ``progress_bar``:
        default shown when ``verbose >= 1``. ``log_interval`` is accepted for SB3 compatibility; the
        schedule's ``log_every`` sets the metric rows. ``tb_log_name`` (default: the class name): with
        ``tensorboard_log``, the run folder is ``tensorboard_log/{tb_log_name}_{N}``, N one more than the
        highest there (SB3's numbering: a loaded model's first ``learn`` writes ``_2`` after ``_1``); a
        model keeps its run folder over later ``learn`` calls, which continue that run.
        """
        if tb_log_name is not None:
            self.tb_log_name = str(tb_log_name)
        if isinstance(total_timesteps, bool) or not isinstance(total_timesteps, (int, np.integer)):
            raise TypeError(f"total_timesteps must be an int; got {total_timesteps!r}")
        if total_timesteps < 1:
            raise ValueError(f"total_timesteps must be >= 1; got {total_timesteps}")
        cb = as_callback(callback)
        progress = self.verbose >= 1 if progress_bar is None else progress_bar
        start_steps = self.counters.env_steps
        end = start_steps + int(total_timesteps)
        self._warn_random_phase(start_steps, end)
        if reset_num_timesteps:
            self._timesteps_offset = start_steps
        on_step = None if cb is None else self._step_hook(cb, int(total_timesteps))
        if self._trainer is None:
            self._trainer = self._new_trainer(end, progress, on_step)
            self._resume_dir = None
            self.counters = self._trainer.counters
            if self._pending_buffer is not None:
                self.replay_buffer.load(self._pending_buffer)
                self._pending_buffer = None
            if self._loaded_normalizer is not None:  # a loaded model continues with its statistics
                self._trainer.members[0].normalizer = self._loaded_normalizer
                self._loaded_normalizer = None
        else:
            self._trainer.progress_enabled, self._trainer.on_step = progress, on_step
            self._trainer.extend(end - self._trainer.env_steps)
        if cb is not None:
            cb.init_callback(self)
            cb.on_training_start(locals(), globals())
            cb.on_rollout_start()
        self._trainer.run()
        if cb is not None:
            cb.on_rollout_end()
            cb.on_training_end()
        return self

    def _step_hook(self, cb: Any, total_timesteps: int):
        def on_step(step: StepInfo) -> bool:
            cb.update_locals(
                {
                    "self": self,
                    "total_timesteps": total_timesteps,
                    "actions": step.action[None],
                    "new_obs": step.next_obs[None],
                    "rewards": np.asarray([step.reward], np.float32),
                    "dones": np.asarray([step.done]),
                    "infos": [step.info],
                }
            )
            return cb.on_step()

        return on_step

    def _warn_random_phase(self, start: int, end: int) -> None:
        random_steps = self.train_config(max(end, 1)).random_steps
        if end <= random_steps:
            warnings.warn(
                f"all {end - start} steps of this learn() call are uniform random actions: the random-action phase "
                f"lasts random_steps={random_steps} env steps; learn longer or pass random_steps=... to the model",
                UserWarning,
                stacklevel=3,
            )

    # -- acting --------------------------------------------------------------------------
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        *,
        key: jax.Array | None = None,
    ) -> tuple[np.ndarray, Any]:
        """Action(s) for ``observation`` of shape ``(obs_dim,)`` or ``(n, obs_dim)``, as in SB3:
        returns ``(action, state)``; the policies are memoryless, so ``state`` is passed through and
        ``episode_start`` is accepted and unused.

        ``deterministic=True`` acts with the config's ``deterministic_mode`` (highest min-Q particle,
        or S²AC's ``test_selection``) under a key fixed by the model's seed, so the same observation
        gives the same action on every call with the same weights. Stochastic calls draw a new key
        each time (or use ``key``)."""
        obs = np.asarray(observation, np.float32)
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.spec.obs_dim:
            raise ValueError(f"observation must have shape ({self.spec.obs_dim},) or (n, {self.spec.obs_dim}); "
                             f"got {obs.shape}")  # fmt: skip
        if not np.all(np.isfinite(obs)):
            raise ValueError(f"observation has non-finite entries: {obs[~np.isfinite(obs)][:4]}")
        single = obs.ndim == 1
        if key is None and deterministic:
            key = jax.random.PRNGKey(self.seed + 1)
        elif key is None:
            key = jax.random.fold_in(jax.random.PRNGKey(self.seed + 1), self._act_calls)
            self._act_calls += 1
        if self.normalizer is not None:  # the statistics of now, as the agent saw observations in training
            obs = self.normalizer.obs(obs)
        action = self.policy.predict(obs[None] if single else obs, key, deterministic)
        return (action[0] if single else action), state

    def evaluate(
        self, n_episodes: int = 10, deterministic: bool = True, env: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(returns, lengths)`` of ``n_episodes`` episodes on copies of the training env (or on
        ``env``: an id, a ``gym.Env`` to copy, or a factory), reset with the evaluation seeds."""
        make = self.source.make_copy if env is None else eval_maker(env)
        episodes = GymEpisodes([make() for _ in range(n_episodes)], evaluation_seeds(self.seed, n_episodes))
        stats = run_episodes(episodes, lambda obs, t: self.predict(obs, deterministic=deterministic)[0])
        return np.asarray(stats.returns), np.asarray(stats.lengths)

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write one zip file (``.zip`` added when missing, as in SB3): agent config, preset,
        schedule, seed, env id, step counters and agent state (not the replay buffer)."""
        path = model_path(path)
        if path.is_dir():
            raise IsADirectoryError(f"cannot save to {path}: it is a folder; save writes one .zip file")
        meta = {
            "algo": self.algo,
            "class": type(self).__name__,
            "env_id": self.env_id,
            "preset": self.preset,
            "seed": self.seed,
            "agent": config_to_dict(self.config),
            "schedule": dict(self.schedule),
            "counters": dataclasses.asdict(self.counters),
        }
        if self.normalizer is not None:
            meta["normalizer"] = self.normalizer.state_dict()
        return write_model(path, meta, serialization.to_bytes(jax.device_get(self.state)))

    @property
    def replay_buffer(self) -> ReplayBuffer | None:
        """The run's replay buffer (as SB3's ``model.replay_buffer``); None before the first ``learn``."""
        return None if self._trainer is None else self._trainer.members[0].buffer

    def save_replay_buffer(self, path: str | Path) -> Path:
        """Write the replay buffer (its filled part and ring position) to ``path`` (an ``.npz``), as
        SB3's ``save_replay_buffer``; :meth:`load_replay_buffer` puts it back."""
        if self.replay_buffer is None:
            raise ValueError("the model has no replay buffer yet: call learn() first")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.replay_buffer.save(path)
        return path

    def load_replay_buffer(self, path: str | Path) -> None:
        """Fill the replay buffer from :meth:`save_replay_buffer`'s file (before or after learning began)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no replay buffer file at {path}")
        if self.replay_buffer is None:
            self._pending_buffer = path  # the buffer exists once learn() builds the run
        else:
            self.replay_buffer.load(path)

    @classmethod
    def load(cls, path: str | Path, env: Any = None, **settings: Any) -> Algorithm:
        """A model from :meth:`save`'s zip (``.zip`` may be omitted) or from a training run folder
        (its latest valid checkpoint; ``learn`` then continues that run exactly). ``env`` replaces
        the saved env id (its spaces must match); ``settings`` are constructor keywords
        (``run_dir``, ``tensorboard_log``, ``verbose``)."""
        path = Path(path)
        if path.is_dir():
            return cls._load_run_folder(path, env, settings)
        file = path if path.is_file() else model_path(path)
        if not file.is_file():
            raise FileNotFoundError(f"no saved model at {path} (nor {file})")
        meta, state_bytes = read_model(file)
        target = _target_class(cls, meta["algo"], file)
        config = config_from_dict(config_class(meta["algo"]), meta["agent"])
        model = target(env if env is not None else meta["env_id"], config, preset=meta["preset"], seed=meta["seed"],
                       **{**meta["schedule"], **settings})  # fmt: skip
        model._check_env_spec(meta["env_id"], env)
        try:
            saved = ckpt.upgrade_state_dict(serialization.msgpack_restore(state_bytes), model.state)
            model.state = serialization.from_state_dict(model.state, saved)
        except Exception as err:  # msgpack and structure errors come in many types
            raise ckpt.CheckpointError(f"{file}: the saved state does not fit the agent ({err})") from err
        model.counters = LoopCounters(**meta["counters"])
        model._timesteps_offset, model._state_given = 0, True
        if "normalizer" in meta:
            model._loaded_normalizer = Normalizer.from_state_dict(meta["normalizer"])
        return model

    @classmethod
    def _load_run_folder(cls, path: Path, env: Any, settings: dict[str, Any]) -> Algorithm:
        cfg_file = path / RUN_CONFIG_FILE
        if not cfg_file.is_file():
            raise FileNotFoundError(f"{path} is not a training run folder ({RUN_CONFIG_FILE} missing)")
        saved = _read_json(cfg_file)
        target = _target_class(cls, saved["algo"], path)
        config = config_from_dict(config_class(saved["algo"]), saved["agent"])
        train = config_from_dict(TrainConfig, saved["train"])
        schedule = {name: getattr(train, name) for name in SCHEDULE_FIELDS}
        # Every schedule field is given, so the (default) preset fills none of them.
        model = target(env if env is not None else train.env_id, config, seed=train.seed, **{**schedule, **settings})
        legacy = not (path / CHECKPOINT_DIR).is_dir() and ckpt.list_checkpoints(path)
        if legacy:  # a model folder of earlier versions' save(): its checkpoint beside config.json
            latest = ckpt.latest_valid_checkpoint(path)
            if latest is None:
                raise ckpt.CheckpointError(f"no valid checkpoint in {path}")
        else:
            latest = run_checkpoint(path, "load")  # one-line reasons when there is none yet, or all are corrupt
        model.state = ckpt.load_agent_state(latest, model.state)
        trainer_state = ckpt.load_trainer_state(latest)
        counters = trainer_state.get("counters")
        if "normalizer" in trainer_state:
            model._loaded_normalizer = Normalizer.from_state_dict(trainer_state["normalizer"])
        model.counters = LoopCounters(**counters) if counters else LoopCounters()
        model._resume_dir = None if legacy else path  # a run folder: learn() continues that run exactly
        model._state_given = True
        return model

    def _check_env_spec(self, saved_env_id: str, env: Any) -> None:
        if env is not None and self.env_id != saved_env_id:
            warnings.warn(f"loading a model trained on {saved_env_id} onto {self.env_id}", UserWarning, stacklevel=3)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(env={self.env_id!r}, preset={self.preset!r}, seed={self.seed}, " \
               f"num_timesteps={self.num_timesteps})"  # fmt: skip


def _split_policy_arg(policy: Any, env: Any, config: Any) -> tuple[Any, Any]:
    """``(env, config)`` from SB3's ``(policy, env)`` form or our ``(env, config)`` form."""
    if isinstance(policy, str) and policy in POLICY_NAMES:
        if env is _UNSET:
            raise TypeError(f"{policy!r} given without an env: S2AC('MlpPolicy', env, ...)")
        return env, config
    if isinstance(policy, str) and policy.endswith("Policy"):
        raise ValueError(f"policy {policy!r} not supported: only {POLICY_NAMES} (flat observations)")
    if policy is _UNSET:
        if env is _UNSET:
            raise TypeError("an env is needed: S2AC(env) or S2AC('MlpPolicy', env)")
        return env, config
    if env is not _UNSET:  # (env, config) given positionally
        if config is not None:
            raise TypeError("too many positional arguments: (env, config) or ('MlpPolicy', env)")
        return policy, env
    return policy, config


def _target_class(cls: type[Algorithm], algo: str, where: Path) -> type[Algorithm]:
    if algo not in ALGORITHMS:
        raise ValueError(f"{where} holds a model of unknown algorithm {algo!r}; known: {', '.join(ALGORITHMS)}")
    if cls is not Algorithm and cls.algo != algo:
        raise ValueError(
            f"{where} holds a {ALGORITHMS[algo].__name__} ({algo!r}) model, not a {cls.__name__} ({cls.algo!r}) one: "
            f"load it with s2ac.{ALGORITHMS[algo].__name__}.load or s2ac.Algorithm.load"
        )
    return ALGORITHMS[algo]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise ckpt.CheckpointError(f"{path} is not valid JSON ({err})") from err


# -- one class per registered algorithm (s2ac.names.ALGO_CLASSES; a test checks both against the registry)


class S2AC(Algorithm):
    """S²AC(phi,theta): SVGD policy from a learned Gaussian q0."""

    algo = "s2ac"


class S2ACPhi(Algorithm):
    """S²AC(phi): SVGD policy from a fixed Gaussian q0."""

    algo = "s2ac-phi"


class AmortizedS2AC(Algorithm):
    """S²AC(phi,theta) acting through an amortized sampler g(s, xi) trained on its particles."""

    algo = "s2ac-amortized"


class SAC(Algorithm):
    """Soft Actor-Critic with a tanh-Gaussian actor (Haarnoja et al. 2018)."""

    algo = "sac"


class SQL(Algorithm):
    """Soft Q-learning with an amortized SVGD sampler (Haarnoja et al. 2017)."""

    algo = "sql"


class SACNF(Algorithm):
    """SAC with a normalizing-flow policy (Mazoure et al. 2020)."""

    algo = "sac-nf"


class CrossQ(Algorithm):
    """CrossQ: SAC's actor on batch-renormalised critics without a target network (Bhatt et al. 2024)."""

    algo = "crossq"


class S2ACCrossQ(Algorithm):
    """S²AC(phi,theta) on CrossQ's critic: batch renorm, joint pass, no target network."""

    algo = "s2ac-crossq"


class S2ACDist(Algorithm):
    """S²AC(phi,theta) on the distributional critic: categorical head, batch renorm, no target network."""

    algo = "s2ac-dist"


class DIME(Algorithm):
    """DIME: diffusion policy with an entropy lower bound on a distributional critic (Celik et al. 2025)."""

    algo = "dime"


WRITTEN_OUT: tuple[type[Algorithm], ...] = (
    S2AC,
    S2ACPhi,
    AmortizedS2AC,
    SAC,
    SQL,
    CrossQ,
    S2ACCrossQ,
    S2ACDist,
    DIME,
    SACNF,
)
"""The classes above; a registered algorithm without one still gets a class at run time
(:func:`_api_class`), and the test of the class API names it as missing here."""


def _api_class(spec: AlgoSpec) -> type[Algorithm]:
    cls = type(spec.api_name, (Algorithm,), {"algo": spec.name, "__doc__": spec.summary + "."})
    cls.__module__ = __name__
    return cls


_written = {cls.algo: cls for cls in WRITTEN_OUT}
ALGORITHMS: dict[str, type[Algorithm]] = {
    name: _written.get(name) or _api_class(spec) for name, spec in REGISTRY.items()
}
"""One class per registered algorithm, named as the registry says (``S2AC``, ``SAC`` ...)."""
globals().update({cls.__name__: cls for cls in ALGORITHMS.values() if cls.__name__ not in globals()})
API_CLASSES: tuple[str, ...] = tuple(cls.__name__ for cls in ALGORITHMS.values())
__all__ = [
    "Algorithm",
    "ALGORITHMS",
    "ModelLogger",
    "Policy",
    "S2AC",
    "S2ACPhi",
    "AmortizedS2AC",
    "SAC",
    "SQL",
    "CrossQ",
    "S2ACCrossQ",
    "S2ACDist",
    "DIME",
    "SACNF",
]
globals()["__all__"] = [*__all__, *(name for name in API_CLASSES if name not in __all__)]  # any not written out
