"""The suite's one tiny configuration: env shapes, agent sizes and a training schedule.

Compiling an update costs tens of seconds where running it costs milliseconds, and a compiled program
is specific to every constant in it (widths, particle counts, temperatures). So the tests share one
set of sizes: :func:`s2ac.agents.make_agent` then hands every test asking for the same (config, spec)
the same agent, whose update and act compile once per process, and the persistent compilation cache
(tests/conftest.py) serves the other test processes. A test that needs other values changes only
those fields, and only where its behaviour depends on them.
"""

from __future__ import annotations

import dataclasses

from s2ac.agents import make_agent_config
from s2ac.config import make_train_config
from s2ac.types import EnvSpec

MG = "s2ac/MultiGoal3-v0"

HOPPER = EnvSpec(11, 3, (-1.0,) * 3, (1.0,) * 3)
"""Hopper's shapes: the widest observation the agent tests use (hidden width 16 >= 11 + 3 inputs)."""
MULTIGOAL = EnvSpec(2, 2, (-1.0,) * 2, (1.0,) * 2)
"""The multigoal env's shapes."""
ODD_BOX = EnvSpec(4, 2, (-2.0, 0.0), (1.0, 3.0))
"""An action box that is neither symmetric nor unit-sized (catches a missing centre or scale)."""

WIDTH = (16, 16)
"""Hidden widths of every network."""
BATCH = 16
"""Minibatch size."""
SAMPLER = dict(n_particles=4, svgd_steps=2)
"""S²AC's sampler: the fewest particles and steps that still exercise a kernel between particles and
a step after the first."""


def tiny_config(algo: str, preset: str = "quick", env_id: str = MG, **fields):
    """``algo``'s config under ``preset`` on ``env_id`` at the suite's sizes, then ``fields``."""
    cfg = make_agent_config(algo, preset, env_id)
    sizes: dict = dict(critic_hidden=WIDTH, actor_hidden=WIDTH, batch_size=BATCH)
    if algo.startswith("s2ac"):
        sizes.update(SAMPLER)
    if algo == "s2ac-amortized":
        sizes["amortizer_hidden"] = WIDTH
    if algo == "sac-nf":
        sizes["flow_hidden"] = WIDTH
    return dataclasses.replace(cfg, **{**sizes, **fields})


TINY_SCHEDULE = dict(
    learning_starts=100,
    random_steps=150,
    train_freq=20,
    gradient_steps=10,
    eval_freq=300,
    eval_episodes=2,
    checkpoint_freq=150,
    log_every=100,
)
"""A loop schedule of a few hundred env steps: updates from step 100, evaluations and checkpoints."""


def tiny_train(total: int = 600, env_id: str = MG, **fields):
    """The quick preset's training config with :data:`TINY_SCHEDULE` and ``total`` env steps."""
    return make_train_config("quick", env_id, **{**TINY_SCHEDULE, "total_steps": total, **fields})
