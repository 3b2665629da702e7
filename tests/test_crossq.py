"""The ``crossq`` algorithm: SAC's agent with a batch-renormalised actor on the ``crossq`` critic."""

import dataclasses

import jax
import numpy as np
from agent_helpers import HOPPER, random_batch

from s2ac.agents import make_agent, make_agent_config


def tiny_crossq(**fields):
    cfg = make_agent_config("crossq", "quick", "Hopper-v5")
    return dataclasses.replace(cfg, critic_hidden=(8, 8), actor_hidden=(8, 8), batch_size=6, **fields)


def test_quick_preset_is_crossq_with_smaller_networks():
    quick, paper = make_agent_config("crossq", "quick", "Hopper-v5"), make_agent_config("crossq", "paper", "Hopper-v5")
    same = ("critic", "actor_renorm", "auto_alpha", "policy_delay", "adam_beta1", "critic_lr", "actor_lr", "alpha_lr")
    assert all(getattr(quick, f) == getattr(paper, f) for f in same)
    assert (paper.renorm_momentum, paper.renorm_warmup_steps, paper.renorm_r_max, paper.renorm_d_max) == (
        0.99,
        100_000,
        3.0,
        5.0,
    )
    assert paper.renorm_epsilon == 1e-3 and paper.activation == "relu" and paper.batch_size == 256
    assert quick.critic_hidden == (256, 256) and quick.actor_hidden == (64, 64)


def test_actor_and_critic_statistics_move_and_acting_is_row_independent():
    """The actor step runs the actor in training mode (its statistics move on actor updates only); acting
    uses running statistics, so one state's action does not depend on the other states of the batch."""
    agent = make_agent(tiny_crossq(), HOPPER)
    s0 = agent.init(jax.random.PRNGKey(0))
    s1, _ = agent.update(s0, random_batch(HOPPER, 6, seed=1))  # step 0: actor step
    s2, _ = agent.update(s1, random_batch(HOPPER, 6, seed=2))  # step 1: no actor step (delay 3)

    def counts(tree):
        leaves = [np.asarray(x).ravel() for x in jax.tree_util.tree_leaves(tree) if np.asarray(x).dtype == np.int32]
        return set(np.concatenate(leaves).tolist())

    assert counts(s1.actor_params["batch_stats"]) == {1} and counts(s2.actor_params["batch_stats"]) == {1}
    assert counts(s2.critic_params["batch_stats"]) == {2}
    obs = random_batch(HOPPER, 5, seed=3).obs
    for mode in ("max", "random"):
        batch_actions = np.asarray(agent.act(s2, obs, jax.random.PRNGKey(4), mode))
        single = np.asarray(agent.act(s2, obs[:1], jax.random.PRNGKey(4), mode))
        if mode == "max":
            np.testing.assert_allclose(single[0], batch_actions[0], rtol=1e-5, atol=1e-6)
        assert np.all(np.abs(batch_actions) <= 1.0)


def test_paper_schedule_starts_learning_at_5000_steps_in_the_cli_and_the_api():
    import s2ac
    from s2ac.agents import algo_train_fields

    assert algo_train_fields("crossq", "paper", "Hopper-v5") == {"learning_starts": 5000, "random_steps": 5000}
    assert algo_train_fields("crossq", "quick", "Hopper-v5") == {} == algo_train_fields("sac", "paper", "Hopper-v5")
    assert s2ac.CrossQ("Pendulum-v1", preset="paper").train_config(10_000).learning_starts == 5000
