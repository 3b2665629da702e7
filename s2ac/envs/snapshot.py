"""Save and restore a Gymnasium env's state mid-episode, for exact resume of lockstep runs.

Gymnasium's MuJoCo envs pickle by re-running their constructor (``EzPickle``), which loses
the simulation state, so a snapshot is assembled here instead:

* every wrapper's scalar attributes (``TimeLimit``'s elapsed steps, the order-enforcing and
  env-checker flags);
* for a MuJoCo env, the whole ``MjData`` (pickled, restored with ``mj_copyData``). The
  integration state alone (``mj_getState``) is not enough: the envs read quantities that
  ``mj_step`` leaves one sub-step stale (body positions for the forward reward, contact
  forces), and recomputing them changes the next reward in the 5th digit;
* for any other env, its instance attributes, pickled (spaces and spec excluded).
"""

from __future__ import annotations

import base64
import pickle
from typing import Any

import gymnasium as gym

_SCALARS = (bool, int, float, str, type(None))
_SKIPPED_CORE = {"observation_space", "action_space", "spec", "metadata", "render_mode", "_np_random_seed"}


def _wrappers(env: gym.Env) -> list[gym.Wrapper]:
    chain = []
    while isinstance(env, gym.Wrapper):
        chain.append(env)
        env = env.env
    return chain


def _is_mujoco(core: Any) -> bool:
    return hasattr(core, "model") and hasattr(core, "data") and type(core.data).__module__.startswith("mujoco")


def snapshot_env(env: gym.Env) -> str:
    """The env's current state as a base64 string (JSON-safe, for a checkpoint's trainer state)."""
    wrappers = [{k: v for k, v in vars(w).items() if isinstance(v, _SCALARS)} for w in _wrappers(env)]
    core = env.unwrapped
    if _is_mujoco(core):
        payload = {"kind": "mujoco", "data": core.data}
    else:
        attrs = {k: v for k, v in vars(core).items() if k not in _SKIPPED_CORE}
        payload = {"kind": "pickle", "attrs": attrs}
    try:
        blob = pickle.dumps({"env_id": getattr(env.spec, "id", None), "wrappers": wrappers, "core": payload})
    except Exception as err:  # an attribute that cannot be pickled
        raise ValueError(f"cannot snapshot env {getattr(env.spec, 'id', env)!r} for exact resume: {err}") from err
    return base64.b64encode(blob).decode("ascii")


def restore_env(env: gym.Env, snapshot: str) -> None:
    """Put ``env`` (made from the same id, already reset once) into the state of ``snapshot``."""
    data = pickle.loads(base64.b64decode(snapshot))
    env_id = getattr(env.spec, "id", None)
    if data["env_id"] != env_id:
        raise ValueError(f"env snapshot is of {data['env_id']!r}, not of {env_id!r}")
    chain = _wrappers(env)
    if len(chain) != len(data["wrappers"]):
        raise ValueError(f"env snapshot has {len(data['wrappers'])} wrappers; {env_id!r} has {len(chain)}")
    for wrapper, attrs in zip(chain, data["wrappers"]):
        for key, value in attrs.items():
            setattr(wrapper, key, value)
    core, payload = env.unwrapped, data["core"]
    if payload["kind"] == "mujoco":
        import mujoco

        mujoco.mj_copyData(core.data, core.model, payload["data"])
    else:
        for key, value in payload["attrs"].items():
            setattr(core, key, value)


__all__ = ["snapshot_env", "restore_env"]
