"""Agents: one module per algorithm, all with ``init`` / ``update`` / ``act``."""

from __future__ import annotations

import importlib

from s2ac.agents.base import Agent, Batch, EnvSpec
from s2ac.config import AgentConfig

# Config class name -> (module, agent class). Modules are imported on demand, so using one
# algorithm never imports another's dependencies (SAC-NF's distrax, for one).
_AGENTS: dict[str, tuple[str, str]] = {
    "AmortizedS2ACConfig": ("s2ac.agents.amortized", "AmortizedS2ACAgent"),
    "S2ACConfig": ("s2ac.agents.s2ac", "S2ACAgent"),
    "SACNFConfig": ("s2ac.agents.sac_nf", "SACNFAgent"),
    "SACConfig": ("s2ac.agents.sac", "SACAgent"),
    "SQLConfig": ("s2ac.agents.sql", "SQLAgent"),
}


def make_agent(config: AgentConfig, spec: EnvSpec) -> Agent:
    """Build the agent that ``config``'s type names (the most derived registered type wins)."""
    config.validate()
    for cls in type(config).__mro__:
        if cls.__name__ in _AGENTS:
            module, name = _AGENTS[cls.__name__]
            return getattr(importlib.import_module(module), name)(config, spec)
    raise ValueError(f"no agent for config type {type(config).__name__}")


__all__ = ["Agent", "Batch", "EnvSpec", "make_agent"]
