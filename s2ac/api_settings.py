"""The class API's constructor settings: Stable-Baselines3's names mapped onto our two configs.

An agent config (:class:`s2ac.config.AgentConfig` subclass: networks, optimiser, sampler) and a
schedule (:class:`s2ac.config.TrainConfig` fields) describe a run. The constructor takes SB3's
names where SB3 has the setting, and any field of either config by its own name; everything
else is refused at construction, with close matches.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any

from s2ac.agents import algo_of_config, config_class, make_agent_config
from s2ac.config import AgentConfig, TrainConfig, make_train_config
from s2ac.schedules import parse_learning_rate

SB3_NAMES: dict[str, str] = {
    "learning_rate": "critic_lr and actor_lr (and SAC's alpha_lr): a number, 'lin_3e-4', or an SB3 callable of "
    "progress_remaining that is constant or linear (AgentConfig.lr_schedule)",
    "buffer_size": "TrainConfig.buffer_size",
    "learning_starts": "TrainConfig.learning_starts",
    "batch_size": "AgentConfig.batch_size",
    "tau": "AgentConfig.tau",
    "gamma": "AgentConfig.gamma",
    "train_freq": "TrainConfig.train_freq (an int, or (n, 'step'))",
    "gradient_steps": "TrainConfig.gradient_steps (-1: as many as train_freq)",
    "ent_coef": "AgentConfig.alpha (a float; 'auto' where the algorithm tunes it)",
    "policy_kwargs": "dict(net_arch=[...]) or dict(net_arch=dict(pi=[...], qf=[...]))",
}
"""SB3 constructor names this API maps, and where each goes."""
SCHEDULE_FIELDS = tuple(
    f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("env_id", "total_steps", "seed")
)
"""Schedule fields a model keeps (the env, the length and the seed are given separately)."""


def _unknown(name: str, known: list[str], what: str) -> TypeError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return TypeError(f"unknown {what} {name!r}{hint}")


def _train_freq(value: Any) -> int:
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[1] != "step":
            raise ValueError(f"train_freq must be an int or (n, 'step'); got {value!r} (no episode units)")
        value = value[0]
    return value


def _ent_coef(value: Any, base: AgentConfig) -> dict[str, Any]:
    has_auto = any(f.name == "auto_alpha" for f in dataclasses.fields(base))
    if isinstance(value, str) and value.startswith("auto"):
        if not has_auto:
            raise ValueError(f"ent_coef={value!r}: {type(base).__name__} keeps alpha fixed; pass a float")
        fields: dict[str, Any] = {"auto_alpha": True}
        if value.startswith("auto_"):
            fields["alpha"] = float(value[len("auto_") :])
        return fields
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"ent_coef must be a positive float or 'auto'; got {value!r}")
    return {"alpha": float(value), **({"auto_alpha": False} if has_auto else {})}


def _policy_kwargs(value: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"policy_kwargs must be a dict; got {type(value).__name__}")
    unknown = [k for k in value if k != "net_arch"]
    if unknown:
        raise ValueError(
            f"policy_kwargs {unknown} not supported: only net_arch (activation: the config's activation field)"
        )
    arch = value.get("net_arch")
    if isinstance(arch, dict):
        return {"actor_hidden": tuple(arch["pi"]), "critic_hidden": tuple(arch["qf"])}
    if isinstance(arch, (list, tuple)):
        return {"actor_hidden": tuple(arch), "critic_hidden": tuple(arch)}
    raise ValueError(f"policy_kwargs net_arch must be a list of widths or dict(pi=..., qf=...); got {arch!r}")


def sb3_fields(name: str, value: Any, base: AgentConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(agent_fields, schedule_fields)`` of the SB3 setting ``name=value``."""
    if name == "learning_rate":
        value, schedule = parse_learning_rate(value)
        fields: dict[str, Any] = {"critic_lr": value, "actor_lr": value, "lr_schedule": schedule}
        if any(f.name == "alpha_lr" for f in dataclasses.fields(base)):
            fields["alpha_lr"] = value
        return fields, {}
    if name in ("batch_size", "tau", "gamma"):
        return {name: value}, {}
    if name == "ent_coef":
        return _ent_coef(value, base), {}
    if name == "policy_kwargs":
        return _policy_kwargs(value), {}
    if name == "train_freq":
        return {}, {"train_freq": _train_freq(value)}
    return {}, {name: value}  # buffer_size, learning_starts, gradient_steps


def agent_config_for(algo: str, preset: str, env_id: str, config: Any) -> AgentConfig:
    """The agent config a model starts from: the preset's, an instance of the algorithm's config
    class, or the preset's with the fields of a dict replaced."""
    cls = config_class(algo)
    if config is None:
        return make_agent_config(algo, preset, env_id)
    if isinstance(config, dict):
        base = make_agent_config(algo, preset, env_id)
        names = [f.name for f in dataclasses.fields(cls)]
        for key in config:
            if key not in names:
                raise _unknown(key, names, f"{cls.__name__} field")
        return dataclasses.replace(base, **config)
    if isinstance(config, AgentConfig):
        other = algo_of_config(config)
        if type(config) is not cls or other != algo:
            raise ValueError(
                f"this {type(config).__name__} configures {other!r}, not {algo!r}: a {algo!r} model takes a "
                f"{cls.__name__} made by make_agent_config({algo!r}, preset, env_id)"
            )
        return config
    raise TypeError(f"config must be a {cls.__name__}, a dict of its fields, or None; got {type(config).__name__}")


def resolve_settings(
    algo: str, preset: str, env_id: str, config: Any, settings: dict[str, Any]
) -> tuple[AgentConfig, dict[str, Any]]:
    """``(agent_config, schedule)`` from the constructor's ``config`` and its other settings (SB3
    names, or fields of either config); unknown names raise ``TypeError`` with close matches."""
    agent = agent_config_for(algo, preset, env_id, config)
    agent_names = [f.name for f in dataclasses.fields(agent)]
    agent_fields: dict[str, Any] = {}
    schedule: dict[str, Any] = {}
    for name, value in settings.items():
        if name in SB3_NAMES:
            a, s = sb3_fields(name, value, agent)
            agent_fields.update(a)
            schedule.update(s)
        elif name in agent_names:
            agent_fields[name] = value
        elif name in SCHEDULE_FIELDS:
            schedule[name] = value
        else:
            raise _unknown(name, [*SB3_NAMES, *agent_names, *SCHEDULE_FIELDS], "setting")
    if schedule.get("gradient_steps") == -1:
        schedule["gradient_steps"] = schedule.get("train_freq", make_train_config(preset, env_id).train_freq)
    agent = dataclasses.replace(agent, **agent_fields)
    agent.validate()
    return agent, schedule


__all__ = ["SB3_NAMES", "SCHEDULE_FIELDS", "agent_config_for", "resolve_settings", "sb3_fields"]
