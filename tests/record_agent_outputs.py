"""Record every registered agent's ``init``, three ``update``s and ``act`` in every mode to an ``.npz``
file, so that two versions of the package can be compared bit for bit::

    PYTHONPATH=$PWD python tests/record_agent_outputs.py OUT.npz [algo ...]
    python tests/record_agent_outputs.py --compare A.npz B.npz

Sizes: each algorithm's ``quick`` preset on the 3-goal multigoal env and on Hopper's shapes (11-D
observations, 3-D actions), and S²AC's ``paper`` preset on multigoal at 32-wide networks.
"""

from __future__ import annotations

import dataclasses
import sys

import jax
import numpy as np

from s2ac.agents import make_agent, make_agent_config
from s2ac.types import Batch, EnvSpec

MULTIGOAL = ("s2ac/MultiGoal3-v0", EnvSpec(2, 2, (-1.0,) * 2, (1.0,) * 2))
HOPPER = ("Hopper-v5", EnvSpec(11, 3, (-1.0,) * 3, (1.0,) * 3))
ALGOS = ("sac", "sac-nf", "sql", "s2ac", "s2ac-phi", "s2ac-amortized", "crossq", "s2ac-crossq", "dime", "s2ac-dist")
CASES = [(algo, "quick", env) for algo in ALGOS for env in (MULTIGOAL, HOPPER)] + [("s2ac", "paper", MULTIGOAL)]


def batch(spec: EnvSpec, size: int, seed: int) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch(
        obs=rng.normal(size=(size, spec.obs_dim)).astype(np.float32),
        action=rng.uniform(-1, 1, size=(size, spec.act_dim)).astype(np.float32),
        reward=rng.normal(size=(size,)).astype(np.float32),
        next_obs=rng.normal(size=(size, spec.obs_dim)).astype(np.float32),
        terminated=(rng.uniform(size=(size,)) < 0.2).astype(np.float32),
    )


def flat(prefix: str, tree, out: dict) -> None:
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    for path, leaf in leaves:
        out[prefix + jax.tree_util.keystr(path)] = np.asarray(leaf)


def record(algos) -> dict:
    out: dict = {}
    for algo, preset, (env_id, spec) in CASES:
        if algos and algo not in algos:
            continue
        name = f"{algo}/{preset}/{env_id}"
        config = make_agent_config(algo, preset, env_id)
        if preset == "paper":
            config = dataclasses.replace(config, critic_hidden=(32, 32), actor_hidden=(32, 32))
        agent = make_agent(config, spec)
        state = agent.init(jax.random.PRNGKey(3))
        flat(f"{name}/init", state, out)
        for i in range(3):
            state, metrics = agent.update(state, batch(spec, config.batch_size, i))
            flat(f"{name}/update{i}/state", state, out)
            flat(f"{name}/update{i}/metrics", metrics, out)
        obs = batch(spec, 5, 99).obs
        for mode in agent.act_modes:
            out[f"{name}/act/{mode}"] = np.asarray(agent.act(state, obs, jax.random.PRNGKey(7), mode))
        print(name, "recorded", flush=True)
    return out


def compare(a_path: str, b_path: str) -> int:
    a, b = np.load(a_path), np.load(b_path)
    bad = 0
    for k in a.files:
        if k not in b.files:
            print("missing in second:", k)
            bad += 1
        elif not np.array_equal(a[k], b[k], equal_nan=True):
            print("differs:", k, float(np.max(np.abs(a[k] - b[k]))))
            bad += 1
    extra = sorted(set(b.files) - set(a.files))
    print(f"{len(a.files)} arrays compared, {bad} differ or are missing; {len(extra)} new in second")
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    np.savez(sys.argv[1], **record(sys.argv[2:]))
