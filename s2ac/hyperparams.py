"""RL Zoo hyper-parameter files: ``s2ac train --hyperparams FILE.yml`` and :func:`model_kwargs`.

A file holds one block per env id (RL Zoo's ``hyperparams/sac.yml`` layout)::

    Pendulum-v1:
      n_timesteps: 20000
      policy: 'MlpPolicy'
      learning_rate: lin_7.3e-4
      normalize: true                 # or "{'norm_obs': True, 'norm_reward': False}"
      policy_kwargs: "dict(net_arch=[64, 64])"
      buffer_size: 50000
      ...

A block's keys are SB3's constructor names (:data:`s2ac.api_settings.SB3_NAMES`), RL Zoo's
``n_timesteps``, ``policy`` and ``normalize``, or any field of the agent config or the schedule by
its own name. Keys s2ac does not support (``use_sde``, ``n_envs`` ...) are refused, all listed in
one line; unknown keys are refused with close matches. ``policy_kwargs`` is a dict or RL Zoo's
string (``"dict(net_arch=[400, 300])"``, read with :mod:`ast`, never evaluated).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
from pathlib import Path
from typing import Any

UNSUPPORTED: dict[str, str] = {
    "use_sde": "gSDE exploration",
    "sde_sample_freq": "gSDE exploration",
    "use_sde_at_warmup": "gSDE exploration",
    "n_envs": "several envs per run (run seeds side by side: s2ac sweep --lockstep)",
    "env_wrapper": "env wrappers by name (pass a wrapped env to the class API)",
    "vec_env_wrapper": "vector-env wrappers",
    "frame_stack": "frame stacking",
    "callback": "callbacks by name (the class API takes callbacks)",
    "action_noise": "action noise (the policies are stochastic)",
    "noise_type": "action noise (the policies are stochastic)",
    "noise_std": "action noise (the policies are stochastic)",
    "optimize_memory_usage": "SB3's replay-memory option",
    "replay_buffer_class": "other replay buffers",
    "replay_buffer_kwargs": "other replay buffers",
    "target_update_interval": "target updates other than Polyak every step",
    "target_entropy": "a target entropy other than -act_dim",
    "stats_window_size": "SB3's logging window",
    "normalize_kwargs": "VecNormalize options beyond norm_obs and norm_reward",
    "device": "the device (JAX picks it)",
}
"""RL Zoo / SB3 keys s2ac does not support, and what each would need."""
ZOO_KEYS = ("n_timesteps", "policy", "normalize")
POLICY_KWARGS = {"net_arch", "activation_fn"}
ACTIVATION_NAMES = {"ReLU": "relu", "ELU": "elu", "Tanh": "tanh", "SiLU": "silu", "GELU": "gelu"}


def _yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds no env blocks (expected a mapping env id -> settings)")
    return data


def env_block(path: str | Path, env_id: str) -> dict[str, Any]:
    """The settings of ``env_id`` in file ``path``; ``ValueError`` naming the blocks there if it has none."""
    data = _yaml(Path(path))
    if env_id not in data:
        close = difflib.get_close_matches(env_id, [str(k) for k in data], n=2)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"{path} has no block for {env_id!r}{hint} (blocks: {', '.join(map(str, data))})")
    block = data[env_id]
    if not isinstance(block, dict):
        raise ValueError(f"{path}: the block of {env_id!r} is not a mapping of settings")
    return dict(block)


def parse_policy_kwargs(value: Any) -> dict[str, Any]:
    """RL Zoo's ``policy_kwargs``: a dict, or a string ``"dict(net_arch=[...], ...)"`` / ``"{...}"``
    read with :mod:`ast` (an ``activation_fn`` such as ``nn.ReLU`` becomes its name)."""
    if isinstance(value, dict):
        return dict(value)
    if not isinstance(value, str):
        raise ValueError(f"policy_kwargs must be a dict or a string 'dict(...)'; got {value!r}")
    try:
        node = ast.parse(value.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"policy_kwargs {value!r} is not a dict expression") from None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _literal(kw.value, value) for kw in node.keywords}
    if isinstance(node, ast.Dict):
        return {_literal(k, value): _literal(v, value) for k, v in zip(node.keys, node.values)}
    raise ValueError(f"policy_kwargs {value!r} is not a dict(...) or {{...}} expression")


def _literal(node: ast.AST, text: str) -> Any:
    if isinstance(node, (ast.Attribute, ast.Name)):  # nn.ReLU, th.nn.Tanh: kept as the class name
        return ast.unparse(node)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _literal(kw.value, text) for kw in node.keywords}  # net_arch=dict(pi=..., qf=...)
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(f"policy_kwargs {text!r}: {ast.unparse(node)!r} is not a literal") from None


def _normalize(value: Any) -> dict[str, bool]:
    """RL Zoo's ``normalize``: a bool (both, as VecNormalize's defaults) or a dict / its string."""
    if isinstance(value, bool):
        return {"normalize_obs": value, "normalize_reward": value}
    options = parse_policy_kwargs(value) if isinstance(value, str) else value
    if not isinstance(options, dict):
        raise ValueError(f"normalize must be true/false or a dict of norm_obs, norm_reward; got {value!r}")
    unknown = sorted(set(options) - {"norm_obs", "norm_reward"})
    if unknown:
        raise ValueError(f"normalize options {unknown} not supported: only norm_obs and norm_reward")
    return {
        "normalize_obs": bool(options.get("norm_obs", True)),
        "normalize_reward": bool(options.get("norm_reward", True)),
    }


def model_kwargs(block: dict[str, Any], where: str = "hyperparameters") -> tuple[dict[str, Any], int | None]:
    """``(kwargs, n_timesteps)``: a block as class-API constructor keywords (SB3 names kept, RL Zoo's
    ``normalize`` and string ``policy_kwargs`` translated); refuses unsupported and unknown keys."""
    from s2ac.api_settings import SB3_NAMES, SCHEDULE_FIELDS
    from s2ac.config import AgentConfig, TrainConfig  # noqa: F401  (the field names below)

    unsupported = sorted(k for k in block if k in UNSUPPORTED)
    if unsupported:
        reasons = "; ".join(f"{k} ({UNSUPPORTED[k]})" for k in unsupported)
        raise ValueError(f"{where}: keys s2ac does not support: {reasons}")
    kwargs: dict[str, Any] = {}
    steps = block.get("n_timesteps")
    for key, value in block.items():
        if key == "n_timesteps":
            continue
        if key == "policy":
            if value != "MlpPolicy":
                raise ValueError(f"{where}: policy {value!r} not supported: only 'MlpPolicy'")
        elif key == "normalize":
            kwargs.update(_normalize(value))
        elif key == "policy_kwargs":
            options = _policy_kwargs(parse_policy_kwargs(value), where)
            if "activation" in options:
                kwargs["activation"] = options.pop("activation")
            if options:
                kwargs[key] = options
        else:
            kwargs[key] = value
    known = [*SB3_NAMES, *ZOO_KEYS, *SCHEDULE_FIELDS, *_agent_field_names()]
    unknown = [k for k in kwargs if k not in known]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, known, n=2, cutoff=0.6)
            hints.append(f"{k!r}" + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""))
        raise ValueError(f"{where}: unknown keys {', '.join(hints)}")
    if steps is not None and (isinstance(steps, bool) or not float(steps).is_integer() or steps < 1):
        raise ValueError(f"{where}: n_timesteps must be a positive integer; got {steps!r}")
    return kwargs, None if steps is None else int(steps)


def _policy_kwargs(options: dict[str, Any], where: str) -> dict[str, Any]:
    unsupported = sorted(set(options) - POLICY_KWARGS)
    if unsupported:
        raise ValueError(f"{where}: policy_kwargs keys s2ac does not support: {', '.join(unsupported)} "
                         f"(supported: {', '.join(sorted(POLICY_KWARGS))})")  # fmt: skip
    out = dict(options)
    if "activation_fn" in out:
        name = str(out.pop("activation_fn")).rsplit(".", 1)[-1]
        if name not in ACTIVATION_NAMES:
            raise ValueError(f"{where}: activation_fn {name!r} not supported; one of {', '.join(ACTIVATION_NAMES)}")
        out["activation"] = ACTIVATION_NAMES[name]
    return out


def _agent_field_names() -> list[str]:
    from s2ac.agents import REGISTRY

    names: set[str] = set()
    for spec in REGISTRY.values():
        try:
            names |= {f.name for f in dataclasses.fields(spec.config_class)}
        except Exception:  # an algorithm whose optional extra is not installed
            continue
    return sorted(names)


def _flag_values(value: Any) -> list[str]:
    if isinstance(value, (tuple, list)):
        return [str(v) for v in value]
    return [repr(value) if isinstance(value, float) else str(value)]


def train_flags(path: str | Path, algo: str, preset: str, env_id: str) -> list[str]:
    """The ``s2ac train`` flags of the block of ``env_id`` in ``path`` (they go before the command
    line's own flags, which therefore win): ``--total-steps`` from ``n_timesteps``, ``--agent.FIELD``
    for every agent field the block changes from the preset's, ``--train.FIELD`` for the schedule."""
    from s2ac.agents import algo_spec, make_agent_config
    from s2ac.api_settings import resolve_settings

    kwargs, steps = model_kwargs(env_block(path, env_id), f"{path} [{env_id}]")
    base = make_agent_config(algo, preset, env_id)
    try:
        agent, schedule = resolve_settings(algo, preset, env_id, None, kwargs)
    except TypeError as err:  # an unknown name: as a usage error
        raise ValueError(f"{path} [{env_id}]: {err}") from None
    pinned = set(algo_spec(algo).fixed_fields)
    flags = [] if steps is None else ["--total-steps", str(steps)]
    for f in dataclasses.fields(agent):
        value = getattr(agent, f.name)
        if value == getattr(base, f.name):
            continue
        if f.name in pinned:
            raise ValueError(f"{path} [{env_id}]: {f.name} is fixed by --algo {algo}")
        flags += _field_flag("agent", f.name, value)
    for name, value in schedule.items():
        flags += _field_flag("train", name, value)
    return flags


def _field_flag(group: str, name: str, value: Any) -> list[str]:
    flag = f"--{group}.{name.replace('_', '-')}"
    if isinstance(value, bool):
        return [flag] if value else [f"--{group}.no-{name.replace('_', '-')}"]
    return [flag, *_flag_values(value)]


__all__ = ["UNSUPPORTED", "env_block", "model_kwargs", "parse_policy_kwargs", "train_flags"]
