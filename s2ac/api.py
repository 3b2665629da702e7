"""A class API in the spirit of Stable-Baselines3.

from s2ac import S2AC
model = S2AC("s2ac/MultiGoal3-v0", preset="quick", seed=0)
model.learn(total_timesteps=20_000)
action, _ = model.predict(obs, deterministic=True)
model.save("multigoal_s2ac")
model = S2AC.load("multigoal_s2ac")
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from s2ac import checkpoint as ckpt
from s2ac.agents import REGISTRY, AlgoSpec, EnvSpec, config_class, make_agent, make_agent_config
from s2ac.config import AgentConfig, TrainConfig, config_from_dict, make_train_config
from s2ac.envs import make_env
from s2ac.loop import Trainer
from s2ac.runs import RUN_CONFIG_FILE, is_run_folder, run_checkpoint, run_config_dict


def _env_id(env: Any) -> str:
    if isinstance(env, str):
        return env
    spec = getattr(env, "spec", None)
    if spec is None or spec.id is None:
        raise ValueError("pass a registered Gymnasium env id (or an env made by gymnasium.make)")
    return spec.id


class Algorithm:
    """Base of the per-algorithm classes (:data:`ALGORITHMS`): one trained agent and its run folder."""

    algo: str = ""

    def __init__(
        self,
        env: Any,
        config: AgentConfig | None = None,
        *,
        preset: str = "corrected",
        seed: int = 0,
        run_dir: str | Path | None = None,
        **train_overrides: Any,
    ):
        self.env_id = _env_id(env)
        self.config = config if config is not None else make_agent_config(self.algo, preset, self.env_id)
        self.preset = preset
        self.seed = seed
        self.train_overrides = train_overrides
        self.run_dir = Path(run_dir) if run_dir is not None else Path(tempfile.mkdtemp(prefix=f"{self.algo}-"))
        self.spec = EnvSpec.from_env(make_env(self.env_id))
        self.agent = make_agent(self.config, self.spec)
        self.state = self.agent.init(jax.random.PRNGKey(seed))
        self._act_calls = 0

    def train_config(self, total_timesteps: int) -> TrainConfig:
        return make_train_config(
            self.preset, self.env_id, total_steps=total_timesteps, seed=self.seed, **self.train_overrides
        )

    def learn(self, total_timesteps: int, progress_bar: bool = True, resume: bool = False) -> Algorithm:
        """Train for ``total_timesteps`` env steps (``resume`` continues the run in ``run_dir``)."""
        trainer = Trainer(
            self.algo,
            self.config,
            self.train_config(total_timesteps),
            self.run_dir,
            resume=resume,
            progress=progress_bar,
        )
        trainer.run()
        self.agent, self.state = trainer.agent, trainer.state
        return self

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
        gives the same action on every call. Stochastic calls draw a new key each time (or use
        ``key``)."""
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
        mode = self.config.deterministic_mode if deterministic else "random"
        action = np.asarray(self.agent.act(self.state, jnp.asarray(obs[None] if single else obs), key, mode=mode))
        return (action[0] if single else action), state

    def save(self, path: str | Path) -> Path:
        """Write the config and the agent state (not the replay buffer) to folder ``path``."""
        path = Path(path)
        train = self.train_config(1)  # only env id, seed and schedule are recorded
        ckpt.save_checkpoint(
            path,
            0,
            jax.device_get(self.state),
            {"env_id": self.env_id, "preset": self.preset, "seed": self.seed},
            lambda p: np.savez(p),
            keep=1,
        )
        (path / RUN_CONFIG_FILE).write_text(json.dumps(run_config_dict(self.algo, self.config, train), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Algorithm:
        """Load a model written by :meth:`save`, or the latest checkpoint of a training run folder."""
        path = Path(path)
        cfg_file = path / RUN_CONFIG_FILE
        if not cfg_file.is_file():
            raise FileNotFoundError(f"{path} is not a saved model or run folder ({RUN_CONFIG_FILE} missing)")
        saved = json.loads(cfg_file.read_text())
        algo = saved["algo"]
        if algo not in ALGORITHMS:
            raise ValueError(f"{path} holds a model of unknown algorithm {algo!r}; known: {', '.join(ALGORITHMS)}")
        if cls is not Algorithm and cls.algo != algo:
            raise ValueError(
                f"{path} holds a {algo!r} model, not a {cls.algo!r} one: load it with "
                f"s2ac.{ALGORITHMS[algo].__name__}.load or s2ac.Algorithm.load"
            )
        target_cls = ALGORITHMS[algo]
        config = config_from_dict(config_class(algo), saved["agent"])
        model = target_cls(saved["train"]["env_id"], config, seed=saved["train"]["seed"], run_dir=path)
        if is_run_folder(path):  # a training run: its checkpoints/ folder, with one-line reasons when empty
            latest = run_checkpoint(path, "load")
        else:
            latest = ckpt.latest_valid_checkpoint(path)
            if latest is None:
                raise ckpt.CheckpointError(f"no valid checkpoint in {path}")
        model.state = ckpt.load_agent_state(latest, model.state)
        return model


def _api_class(spec: AlgoSpec) -> type[Algorithm]:
    cls = type(spec.api_name, (Algorithm,), {"algo": spec.name, "__doc__": spec.summary + "."})
    cls.__module__ = __name__
    return cls


ALGORITHMS: dict[str, type[Algorithm]] = {name: _api_class(spec) for name, spec in REGISTRY.items()}
"""One class per registered algorithm, named as the registry says (``S2AC``, ``SAC`` ...)."""
globals().update({cls.__name__: cls for cls in ALGORITHMS.values()})
API_CLASSES: tuple[str, ...] = tuple(cls.__name__ for cls in ALGORITHMS.values())
__all__ = ["Algorithm", "ALGORITHMS", *API_CLASSES]
