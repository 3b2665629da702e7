"""Agents: one module per algorithm, all with ``init`` / ``update`` / ``act``."""

from __future__ import annotations

from s2ac.agents.base import Agent, Batch, EnvSpec
from s2ac.config import AgentConfig, S2ACConfig, SACConfig


def make_agent(config: AgentConfig, spec: EnvSpec) -> Agent:
    """Build the agent that ``config``'s type names (subclasses before their bases)."""
    config.validate()
    from s2ac.agents.amortized import AmortizedS2ACAgent, AmortizedS2ACConfig
    from s2ac.agents.s2ac import S2ACAgent
    from s2ac.agents.sac import SACAgent
    from s2ac.agents.sac_nf import SACNFAgent, SACNFConfig
    from s2ac.agents.sql import SQLAgent, SQLConfig

    for config_type, agent_type in (
        (AmortizedS2ACConfig, AmortizedS2ACAgent),
        (S2ACConfig, S2ACAgent),
        (SACNFConfig, SACNFAgent),
        (SACConfig, SACAgent),
        (SQLConfig, SQLAgent),
    ):
        if isinstance(config, config_type):
            return agent_type(config, spec)
    raise ValueError(f"no agent for config type {type(config).__name__}")


__all__ = ["Agent", "Batch", "EnvSpec", "make_agent"]
