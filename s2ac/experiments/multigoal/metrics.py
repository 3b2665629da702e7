"""Outcome statistics of test episodes, the training margin summary, and which density-based entropy
estimates a method supports."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from s2ac.agents import Agent
from s2ac.evaluate import goal_outcomes

if TYPE_CHECKING:  # the jax_loop calls stay in multigoal/run.py
    from s2ac.jax_loop import Rollouts

ESTIMATORS_BY_DENSITY: dict[str, tuple[str, ...]] = {
    "particles": ("closed_form", "exact"),
    "sample_action": ("log_prob",),
    "none": (),
}
"""Density-based entropy estimates per :data:`s2ac.agents.common.POLICY_DENSITIES` value (the k-NN
reference applies to every method)."""


def episode_metrics(ro: Rollouts, n_goals: int) -> dict[str, np.ndarray]:
    """Per-seed outcome statistics of rollouts with leading axes ``(seeds, episodes)``
    (:func:`s2ac.evaluate.goal_outcomes`, plus mean return and length)."""
    out = goal_outcomes(ro.goal, ro.hit_wall, n_goals)
    out.update(mean_return=np.asarray(ro.returns).mean(axis=1), mean_length=np.asarray(ro.lengths).mean(axis=1))
    return out


def entropy_estimators(agent: Agent) -> list[str]:
    """Which density-based entropy estimates ``agent`` supports, from its ``policy_density`` flag;
    ``lower_bound`` in the place of ``log_prob`` for a sampler whose ``-log pi`` is an entropy lower
    bound (DIME, ``log_density_kind == "lower_bound"``)."""
    kinds = list(ESTIMATORS_BY_DENSITY[agent.policy_density])
    if getattr(agent, "log_density_kind", None) == "lower_bound":
        kinds = ["lower_bound" if k == "log_prob" else k for k in kinds]
    return kinds


def margin_summary(history: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """Per-seed invertibility margin ``eps ||d phi / d a||`` of the SVGD steps (S²AC only), or None.

    ``final``: mean over the last chunk's updates of the per-update maximum over the batch;
    ``max``: the largest value seen during training.
    """
    if "train/invertibility_margin" not in history:
        return None
    out = {
        "final": history["train/invertibility_margin"][-1],
        "max": np.nanmax(history["train/invertibility_margin_max"], axis=0),
    }
    for key, name in (
        ("invalid_state_fraction", "invalid_state_fraction_max"),
        ("actor_invertibility_margin", "actor_max"),
    ):
        if f"train/{key}_max" in history:
            out[name] = np.nanmax(history[f"train/{key}_max"], axis=0)
    return out
