"""Settings of the multigoal reproduction: methods, envs, test policies and the training / evaluation budget."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from s2ac.agents import make_agent_config
from s2ac.config import AgentConfig, make_train_config
from s2ac.envs import MULTIGOAL_SPECS

DEFAULT_ALGOS: tuple[str, ...] = ("s2ac-phi", "s2ac", "sac", "sql", "sac-nf")
"""Methods compared by the poster's multigoal figure (REFERENCE.md §1 "Baselines")."""
DEFAULT_ENVS: tuple[str, ...] = ("s2ac/MultiGoal3-v0",)
"""The default budget's env: the 3-goal max-entropy env (REFERENCE.md §3)."""
FULL_ENVS: tuple[str, ...] = ("s2ac/MultiGoal3-v0", "s2ac/MultiGoal4-v0")
"""``--full`` also trains on the 4-goal env."""
DEFAULT_GRADIENT_STEPS = 50
"""Updates per 50 env steps in the default budget: the authors' one update per env step. The demo (the
quick preset) makes 10; at that ratio S²AC(phi,theta) covered every goal in 3 of 5 seeds (success 0.86),
at this one in 4 of 5 (0.97), at 3.3x the training time (docs/algorithms/s2ac.md)."""
OBSTACLE_VARIANT: dict[str, str] = {
    "s2ac/MultiGoal3-v0": "s2ac/MultiGoal3Obstacle-v0",
    "s2ac/MultiGoal4-v0": "s2ac/MultiGoal4Obstacle-v0",
}
"""Evaluation-only wall variant of each training env (REFERENCE.md §3 "Obstacle variants")."""
MODES: tuple[str, ...] = ("random", "max")
"""Test policies: a random particle / a policy draw, and the deterministic policy, which acts with the
config's ``deterministic_mode`` (the highest-Q particle, or S²AC's ``test_selection``)."""
VARIANTS: tuple[str, ...] = ("plain", "obstacle")
KNN_K = 3
"""Neighbour order of the sample-based entropy reference."""
CLI_BASE = "s2ac reproduce multigoal"


# ----------------------------------------------------------------------------- budget


@dataclass(frozen=True)
class MultigoalBudget:
    """Training schedule, evaluation sizes and network preset of one reproduction.

    The defaults are the command's default budget: every method x 5 seeds on the 3-goal env in
    about 20 minutes on 2 CPU cores (18 measured, in the report); :meth:`full` is the long run.
    """

    preset: str = "quick"
    """Agent preset of :func:`s2ac.agents.make_agent_config` (``quick``: 2 x 32 networks, batch 50 on multigoal)."""
    total_steps: int = 15_000
    """Env steps per run (authors: 500k; REFERENCE.md §2): 10k of the policy's after the random phase."""
    random_steps: int = 5_000
    """Uniform random actions for this many first steps (authors: 10,000). With 2,000 (the demo's) the
    random phase reached each goal 0-4 times per seed, with 5,000 4-9 times (SAC buffers, seeds 0-4),
    so that every goal's value is seen before the policy's own data takes over."""
    learning_starts: int = 1_000
    """No update before this many env steps (authors: 1,000)."""
    train_freq: int = 50
    """Updates happen every ``train_freq`` env steps (authors: 50)."""
    gradient_steps: int = DEFAULT_GRADIENT_STEPS
    """Updates per round (authors: 50, i.e. one update per env step)."""
    eval_episodes: int = 200
    """Test episodes per (seed, policy mode, env variant). A goal counts as covered at a 5% share: with
    50 episodes a seed whose true share is 5% is counted either way about equally often (binomial
    standard error 0.031), with 200 the error is 0.015; the pure-JAX episodes cost seconds."""
    entropy_draws: int = 200
    """Policy draws per probe state for the entropy estimates."""
    probe_samples: int = 200
    """Policy samples per probe state drawn over the Q contours."""
    n_chunks: int = 20
    """Host syncs (progress / history rows) per run."""
    reference_spacing: float | None = 0.1
    """Grid spacing of the soft-optimal reference (:mod:`~s2ac.experiments.multigoal.soft_optimal`; about
    40 s at 0.1 on 2 cores); None skips it."""
    reference_episodes: int = 20_000
    """Test episodes of the soft-optimal policy."""
    hidden: tuple[int, ...] | None = None
    """Override of every network's hidden widths (tests); None keeps the preset's."""
    batch_size: int | None = None
    """Override of the minibatch size (tests); None keeps the preset's (authors: 100)."""
    agent_fields: tuple[tuple[str, Any], ...] = ()
    """``(field, value)`` pairs replacing agent config fields of every run, after the overrides above
    (e.g. ``(("auto_alpha", True),)``: the variants of ``s2ac reproduce temperature``)."""

    @classmethod
    def full(cls) -> MultigoalBudget:
        """``--full``: the corrected preset's 2 x 256 networks and the authors' update ratio on 100k env steps."""
        return cls(
            preset="corrected",
            total_steps=100_000,
            random_steps=10_000,
            learning_starts=1_000,
            train_freq=50,
            gradient_steps=50,
            eval_episodes=100,
            entropy_draws=500,
            probe_samples=200,
            n_chunks=40,
        )

    @property
    def n_updates(self) -> int:
        """Gradient steps per run (rounds ending at ``n * train_freq >= learning_starts``)."""
        rounds = self.total_steps // self.train_freq
        first = max(1, -(-self.learning_starts // self.train_freq))
        return max(0, rounds - first + 1) * self.gradient_steps

    def agent_config(self, algo: str, env_id: str) -> AgentConfig:
        """The preset's config of ``algo`` with this budget's network / batch overrides."""
        config = make_agent_config(algo, self.preset, env_id)
        fields: dict[str, Any] = {}
        if self.hidden is not None:
            fields.update(critic_hidden=self.hidden, actor_hidden=self.hidden)
            if any(f.name == "flow_hidden" for f in dataclasses.fields(config)):
                fields["flow_hidden"] = self.hidden
        if self.batch_size is not None:
            fields["batch_size"] = self.batch_size
        config = dataclasses.replace(config, **fields, **dict(self.agent_fields))
        config.validate()
        return config

    def train_config(self, env_id: str):
        return make_train_config(
            self.preset,
            env_id,
            total_steps=self.total_steps,
            random_steps=self.random_steps,
            learning_starts=self.learning_starts,
            train_freq=self.train_freq,
            gradient_steps=self.gradient_steps,
            buffer_size=max(self.total_steps, 1),
        )


def available_algos(algos: list[str], env_id: str) -> tuple[list[str], dict[str, str]]:
    """Split ``algos`` into those :func:`make_agent_config` accepts and the skipped ones (with the reason)."""
    ok, skipped = [], {}
    for algo in algos:
        try:
            make_agent_config(algo, "quick", env_id)
        except ValueError as err:
            skipped[algo] = str(err)
        else:
            ok.append(algo)
    return ok, skipped


def env_slug(env_id: str) -> str:
    """The env's short name, used in figure file names."""
    return MULTIGOAL_SPECS[env_id].name
