"""make_agent shares one agent, hence one compiled update and act, per (config, spec) in a process."""

import dataclasses

import jax
import numpy as np
from agent_helpers import random_batch
from tiny import HOPPER, MULTIGOAL, tiny_config

from s2ac import agents
from s2ac.agents import agent_key, make_agent
from s2ac.types import EnvSpec


def test_equal_config_and_spec_give_the_same_agent_and_one_compile():
    cfg = tiny_config("sac")
    agent = make_agent(cfg, MULTIGOAL)
    # Equal values, built separately, and a spec holding numpy arrays: the same agent.
    again = make_agent(dataclasses.replace(tiny_config("sac")), EnvSpec(2, 2, np.array([-1.0, -1.0]), np.ones(2)))
    assert again is agent
    traced = agent.trace_count
    state = agent.init(jax.random.PRNGKey(0))
    batch = random_batch(MULTIGOAL, cfg.batch_size)
    first, _ = agent.update(state, batch)
    second, _ = make_agent(cfg, MULTIGOAL).update(state, batch)
    assert agent.trace_count - traced <= 1  # none if an earlier test compiled it
    jax.tree_util.tree_map(np.testing.assert_array_equal, first, second)


def test_any_difference_gives_another_agent():
    cfg = tiny_config("sac")
    agent = make_agent(cfg, MULTIGOAL)
    assert make_agent(cfg, HOPPER) is not agent
    assert make_agent(cfg, EnvSpec(2, 2, (-1.0, -1.0), (1.0, 2.0))) is not agent  # another box
    assert make_agent(dataclasses.replace(cfg, gamma=0.9), MULTIGOAL) is not agent
    # 1 == 1.0 in Python, but a config field's type may change the compiled program.
    assert agent_key(dataclasses.replace(cfg, alpha=1), MULTIGOAL) != agent_key(cfg, MULTIGOAL)
    assert type(make_agent(tiny_config("sql"), MULTIGOAL)).__name__ == "SQLAgent"
    with jax.enable_x64(True):  # arrays built at construction would be float64
        assert make_agent(cfg, MULTIGOAL) is not agent


def test_the_cache_keeps_the_most_recent_agents(monkeypatch):
    monkeypatch.setattr(agents, "AGENT_CACHE_SIZE", 2)
    monkeypatch.setattr(agents, "_AGENTS", type(agents._AGENTS)())
    configs = [tiny_config("sac", gamma=g) for g in (0.9, 0.8, 0.7)]
    first = make_agent(configs[0], MULTIGOAL)
    make_agent(configs[1], MULTIGOAL)
    assert make_agent(configs[0], MULTIGOAL) is first  # a hit refreshes it
    make_agent(configs[2], MULTIGOAL)  # evicts configs[1], the least recently used
    assert make_agent(configs[0], MULTIGOAL) is first
    assert len(agents._AGENTS) == 2


def test_an_unhashable_config_value_builds_a_fresh_agent():
    cfg = tiny_config("sac")
    object.__setattr__(cfg, "critic_hidden", [16, {"not": "hashable"}])  # no validation on purpose
    assert agent_key(cfg, MULTIGOAL) is None
