"""Training callbacks with Stable-Baselines3's protocol, for the class API's ``learn(callback=...)``.

``learn`` drives any object with SB3's callback methods, so SB3's own callbacks
(``stable_baselines3.common.callbacks.EvalCallback``, ``CheckpointCallback`` ...) work on an
s2ac model unchanged, as do the ones here, which need no PyTorch:

* ``init_callback(model)`` once, then ``on_training_start(locals_, globals_)``;
* ``on_rollout_start()``, then after every env step ``update_locals(locals_)`` and
  ``on_step() -> bool`` (``False`` stops training there), then ``on_rollout_end()``;
* ``on_training_end()``.

``locals_`` holds SB3's names for the last env step: ``new_obs``, ``rewards``, ``dones``,
``infos``, ``actions`` (each with a leading axis of one env), and ``total_timesteps``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from s2ac.checks import non_negative_int, positive_int


class BaseCallback:
    """SB3's ``BaseCallback``: subclasses override ``_on_step`` (and optionally the other hooks)."""

    def __init__(self, verbose: int = 0):
        self.verbose = verbose
        self.model: Any = None
        self.n_calls = 0
        self.num_timesteps = 0
        self.locals: dict[str, Any] = {}
        self.globals: dict[str, Any] = {}
        self.logger: Any = None
        self.training_env: Any = None
        self.parent: BaseCallback | None = None

    def init_callback(self, model: Any) -> None:
        self.model = model
        self.training_env = model.get_env()
        self.logger = model.logger
        self._init_callback()

    def on_training_start(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        self.locals, self.globals = locals_, globals_
        self.num_timesteps = self.model.num_timesteps
        self._on_training_start()

    def on_rollout_start(self) -> None:
        self._on_rollout_start()

    def on_step(self) -> bool:
        self.n_calls += 1
        self.num_timesteps = self.model.num_timesteps
        return bool(self._on_step())

    def on_rollout_end(self) -> None:
        self._on_rollout_end()

    def on_training_end(self) -> None:
        self._on_training_end()

    def update_locals(self, locals_: dict[str, Any]) -> None:
        self.locals.update(locals_)
        self.update_child_locals(locals_)

    def update_child_locals(self, locals_: dict[str, Any]) -> None:
        """Pass ``locals_`` on to child callbacks (none here)."""

    def _init_callback(self) -> None: ...
    def _on_training_start(self) -> None: ...
    def _on_rollout_start(self) -> None: ...
    def _on_rollout_end(self) -> None: ...
    def _on_training_end(self) -> None: ...

    def _on_step(self) -> bool:
        return True


class CallbackList(BaseCallback):
    """Several callbacks in order; training stops when any ``on_step`` returns ``False``."""

    def __init__(self, callbacks: Sequence[Any]):
        super().__init__()
        self.callbacks = list(callbacks)

    def _init_callback(self) -> None:
        for cb in self.callbacks:
            cb.init_callback(self.model)
            cb.parent = self

    def on_training_start(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        super().on_training_start(locals_, globals_)
        for cb in self.callbacks:
            cb.on_training_start(locals_, globals_)

    def _on_rollout_start(self) -> None:
        for cb in self.callbacks:
            cb.on_rollout_start()

    def _on_step(self) -> bool:
        keep_going = True
        for cb in self.callbacks:
            keep_going = cb.on_step() and keep_going  # every callback sees every step
        return keep_going

    def _on_rollout_end(self) -> None:
        for cb in self.callbacks:
            cb.on_rollout_end()

    def _on_training_end(self) -> None:
        for cb in self.callbacks:
            cb.on_training_end()

    def update_child_locals(self, locals_: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.update_locals(locals_)


class FunctionCallback(BaseCallback):
    """A plain function ``fn(locals_, globals_) -> bool`` as a callback (SB3's ``ConvertCallback``)."""

    def __init__(self, fn: Callable[[dict, dict], bool], verbose: int = 0):
        super().__init__(verbose)
        self.fn = fn

    def _on_step(self) -> bool:
        result = self.fn(self.locals, self.globals)
        return True if result is None else bool(result)


class EvalCallback(BaseCallback):
    """Evaluate every ``eval_freq`` calls of ``on_step`` on ``n_eval_episodes`` episodes.

    ``eval_env``: an env id, a ``gym.Env``, a factory, or ``None`` for fresh copies of the
    training env. Records ``eval/mean_reward`` and ``eval/mean_ep_length`` in the model's logger,
    keeps ``last_mean_reward`` / ``best_mean_reward`` and every evaluation in
    ``evaluations_timesteps`` / ``evaluations_results``; with ``best_model_save_path``, saves
    ``best_model.zip`` there on every new best.
    """

    def __init__(
        self,
        eval_env: Any = None,
        eval_freq: int = 10_000,
        n_eval_episodes: int = 5,
        deterministic: bool = True,
        best_model_save_path: str | os.PathLike | None = None,
        verbose: int = 1,
    ):
        super().__init__(verbose)
        positive_int("eval_freq", eval_freq)
        positive_int("n_eval_episodes", n_eval_episodes)
        self.eval_env, self.eval_freq, self.n_eval_episodes = eval_env, eval_freq, n_eval_episodes
        self.deterministic, self.best_model_save_path = deterministic, best_model_save_path
        self.last_mean_reward, self.best_mean_reward = -np.inf, -np.inf
        self.evaluations_timesteps: list[int] = []
        self.evaluations_results: list[list[float]] = []

    def _on_step(self) -> bool:
        if self.n_calls % self.eval_freq:
            return True
        returns, lengths = self.model.evaluate(self.n_eval_episodes, self.deterministic, env=self.eval_env)
        self.evaluations_timesteps.append(self.num_timesteps)
        self.evaluations_results.append(list(returns))
        self.last_mean_reward = float(np.mean(returns))
        self.logger.record("eval/mean_reward", self.last_mean_reward)
        self.logger.record("eval/mean_ep_length", float(np.mean(lengths)))
        self.logger.dump(self.num_timesteps)
        if self.verbose:
            print(f"eval at {self.num_timesteps} steps: mean return {self.last_mean_reward:.2f}")
        if self.last_mean_reward > self.best_mean_reward:
            self.best_mean_reward = self.last_mean_reward
            if self.best_model_save_path is not None:
                self.model.save(Path(self.best_model_save_path) / "best_model.zip")
        return True


class CheckpointCallback(BaseCallback):
    """Save the model to ``save_path/{name_prefix}_{num_timesteps}_steps.zip`` every ``save_freq`` calls."""

    def __init__(self, save_freq: int, save_path: str | os.PathLike, name_prefix: str = "model", verbose: int = 0):
        super().__init__(verbose)
        positive_int("save_freq", save_freq)
        self.save_freq, self.save_path, self.name_prefix = save_freq, Path(save_path), name_prefix

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            path = self.model.save(self.save_path / f"{self.name_prefix}_{self.num_timesteps}_steps.zip")
            if self.verbose:
                print(f"saved {path}")
        return True


class StopTrainingOnMaxEpisodes(BaseCallback):
    """Stop after ``max_episodes`` finished episodes (counted from the ``dones`` of each step)."""

    def __init__(self, max_episodes: int, verbose: int = 0):
        super().__init__(verbose)
        non_negative_int("max_episodes", max_episodes)
        self.max_episodes, self.n_episodes = max_episodes, 0

    def _on_step(self) -> bool:
        self.n_episodes += int(np.sum(self.locals["dones"]))
        return self.n_episodes < self.max_episodes


def as_callback(callback: Any) -> Any:
    """``callback`` as one object with the SB3 protocol: ``None`` stays ``None``; a list becomes a
    :class:`CallbackList`; a plain function a :class:`FunctionCallback`; an object with
    ``init_callback`` and ``on_step`` (ours or SB3's) is used as is."""
    if callback is None:
        return None
    if isinstance(callback, (list, tuple)):
        return CallbackList([as_callback(cb) for cb in callback])
    if hasattr(callback, "init_callback") and hasattr(callback, "on_step"):
        return callback
    if callable(callback):
        return FunctionCallback(callback)
    raise TypeError(
        f"callback must be a BaseCallback (s2ac.callbacks or stable_baselines3), a list of them, or a function "
        f"(locals, globals) -> bool; got {type(callback).__name__}"
    )


__all__ = [
    "BaseCallback",
    "CallbackList",
    "CheckpointCallback",
    "EvalCallback",
    "FunctionCallback",
    "StopTrainingOnMaxEpisodes",
    "as_callback",
]
