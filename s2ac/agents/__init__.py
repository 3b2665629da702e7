"""Agents: one module per algorithm, all with ``init`` / ``update`` / ``act``."""

from __future__ import annotations

from s2ac.agents.base import Agent, Batch, EnvSpec
from s2ac.config import AgentConfig, S2ACConfig, SACConfig


def make_agent(config: AgentConfig, spec: EnvSpec) -> Agent:
    """Build the agent that ``config``'s type names."""
    config.validate()
    if isinstance(config, S2ACConfig):
        from s2ac.agents.s2ac import S2ACAgent

        return S2ACAgent(config, spec)
    if isinstance(config, SACConfig):
        from s2ac.agents.sac import SACAgent

        return SACAgent(config, spec)
    raise ValueError(f"no agent for config type {type(config).__name__}")


__all__ = ["Agent", "Batch", "EnvSpec", "make_agent"]
