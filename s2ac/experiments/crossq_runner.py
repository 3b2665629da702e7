"""One training run of a CrossQ implementation, then its evaluation; run as a script, one JSON line out.

This file imports only the standard library, NumPy and Gymnasium at module level, so it runs in
another interpreter (one with SBX installed and not this package), and both implementations are
trained, timed and evaluated by the same code::

    python crossq_runner.py '{"impl": "sbx", "env": "Pendulum-v1", "seed": 0, "steps": 8000, ...}'

``impl``: ``sbx`` (``sbx.CrossQ``) or ``s2ac`` (this package's class API, any registered algorithm).
The settings (:data:`SETTINGS`) are given once and mapped onto each library's own names, so the two
runs share widths, batch, learning rate, policy delay, renorm warm-up and the random-action phase.

Evaluation protocol (the same function for both): ``episodes`` episodes of the deterministic policy
on fresh ``gymnasium.make(env)`` copies, episode ``i`` reset with seed ``eval_seed(seed, i)``; an
episode's return is the sum of its rewards until ``terminated`` or ``truncated``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

# Run as a script, this file's folder is first on the path, and its neighbour mujoco.py would hide
# the mujoco package from Gymnasium: drop that folder.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

SETTINGS: dict[str, Any] = {
    "critic_hidden": [256, 256],
    "actor_hidden": [64, 64],
    "batch_size": 128,
    "learning_rate": 1e-3,
    "learning_starts": 1000,
    "policy_delay": 3,
    "renorm_warmup_steps": 5000,
    "renorm_momentum": 0.99,
    "train_freq": 1,
    "gradient_steps": 1,
    "gamma": 0.99,
}
"""Default run settings (our ``quick`` preset's CrossQ sizes, one update per env step)."""
EVAL_SEED_BASE = 1_000_000
"""Evaluation episode seeds start here, far from any training seed."""


def eval_seed(seed: int, episode: int) -> int:
    """Reset seed of evaluation episode ``episode`` of the run with training seed ``seed``."""
    return EVAL_SEED_BASE + 1000 * int(seed) + int(episode)


def evaluate(act: Callable[[np.ndarray], np.ndarray], env_id: str, seed: int, episodes: int) -> dict[str, list]:
    """Returns and lengths of ``episodes`` deterministic episodes (``act(obs) -> action``)."""
    returns, lengths = [], []
    for i in range(episodes):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=eval_seed(seed, i))
        total, length, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            length += 1
            done = bool(terminated or truncated)
        env.close()
        returns.append(total)
        lengths.append(length)
    return {"returns": returns, "lengths": lengths}


def _sbx_model(env_id: str, seed: int, s: dict[str, Any]):
    import sbx

    return sbx.CrossQ(
        "MlpPolicy",
        env_id,
        learning_rate=s["learning_rate"],
        learning_starts=s["learning_starts"],
        batch_size=s["batch_size"],
        gamma=s["gamma"],
        train_freq=s["train_freq"],
        gradient_steps=s["gradient_steps"],
        policy_delay=s["policy_delay"],
        policy_kwargs={
            "net_arch": {"pi": list(s["actor_hidden"]), "qf": list(s["critic_hidden"])},
            "renorm_warmup_steps": s["renorm_warmup_steps"],
            "batch_norm_momentum": s["renorm_momentum"],
        },
        seed=seed,
        verbose=0,
    ), {"sbx": sbx.__version__}


def _s2ac_model(algo: str, preset: str, env_id: str, seed: int, s: dict[str, Any]):
    import s2ac
    from s2ac.api import ALGORITHMS

    settings = {}
    if algo == "crossq":  # the shared settings; other algorithms keep their preset's own
        settings = dict(
            learning_rate=s["learning_rate"],
            batch_size=s["batch_size"],
            gamma=s["gamma"],
            policy_delay=s["policy_delay"],
            policy_kwargs={"net_arch": {"pi": list(s["actor_hidden"]), "qf": list(s["critic_hidden"])}},
            renorm_warmup_steps=s["renorm_warmup_steps"],
            renorm_momentum=s["renorm_momentum"],
        )
    schedule = dict(learning_starts=s["learning_starts"], random_steps=s["learning_starts"])
    if s.get("train_freq"):
        schedule.update(train_freq=s["train_freq"], gradient_steps=s["gradient_steps"])
    model = ALGORITHMS[algo]("MlpPolicy", env_id, preset=preset, seed=seed, verbose=0, **settings, **schedule)
    return model, {"s2ac": getattr(s2ac, "__version__", "unknown"), "config": repr(model.config)}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Train per ``spec`` (impl, env, seed, steps, episodes, settings; algo and preset for s2ac), evaluate, time."""
    import jax

    impl, env_id, seed, steps = spec["impl"], spec["env"], int(spec["seed"]), int(spec["steps"])
    settings = {**SETTINGS, **spec.get("settings", {})}
    algo, preset = spec.get("algo", "crossq"), spec.get("preset", "quick")
    start = time.perf_counter()
    if impl == "sbx":
        model, versions = _sbx_model(env_id, seed, settings)
    elif impl == "s2ac":
        model, versions = _s2ac_model(algo, preset, env_id, seed, settings)
    else:
        raise ValueError(f"impl must be 'sbx' or 's2ac'; got {impl!r}")
    if impl == "s2ac" and algo != "crossq":  # only the random-action phase (and the rounds, if set) are shared
        rounds = ("train_freq", "gradient_steps") if settings.get("train_freq") else ()
        shared = ("learning_starts", *rounds)
        settings = {k: settings[k] for k in shared}
    model.learn(total_timesteps=steps)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    ev = evaluate(lambda o: model.predict(o, deterministic=True)[0], env_id, seed, int(spec.get("episodes", 10)))
    eval_s = time.perf_counter() - start
    versions.update(jax=jax.__version__, gymnasium=gym.__version__, python=platform.python_version())
    return {
        "impl": impl,
        "algo": "crossq" if impl == "sbx" else algo,
        "preset": None if impl == "sbx" else preset,
        "env": env_id,
        "seed": seed,
        "steps": steps,
        "settings": settings,
        "train_wall_s": train_s,
        "eval_wall_s": eval_s,
        "eval_returns": ev["returns"],
        "eval_lengths": ev["lengths"],
        "versions": versions,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: crossq_runner.py '<json run spec>'", file=sys.stderr)
        return 2
    print(json.dumps(run(json.loads(argv[0]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
