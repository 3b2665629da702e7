"""CrossQ (Bhatt et al., ICLR 2024) as a registry entry: SAC's tanh-Gaussian actor on the ``crossq``
critic part, with no agent class of its own.

What makes it CrossQ is a set of config fields (:data:`CROSSQ_FIELDS`): the ``crossq`` critic (batch
renormalisation, one joint pass over (s, a) and (s', a'), no target network), a batch-renormalised
actor (the paper's ``brn_actor``), alpha tuned toward ``-|A|``, policy delay 3, Adam with beta1 0.5
and lr 1e-3 for actor, critic and alpha, ReLU networks. See docs/algorithms/crossq.md.
"""

from __future__ import annotations

from s2ac.agents.sac import SACAgent, SACConfig
from s2ac.config import is_multigoal

CROSSQ_FIELDS = dict(
    critic="crossq",
    actor_renorm=True,
    auto_alpha=True,
    policy_delay=3,
    adam_beta1=0.5,
    critic_lr=1e-3,
    actor_lr=1e-3,
    alpha_lr=1e-3,
    activation="relu",
    batch_size=256,
    alpha=1.0,
)
"""CrossQ's settings (``adityab/CrossQ`` ``train.py``; SBX ``sbx/crossq``): alpha starts at 1 (SBX's
``ent_coef="auto"``), batch 256. Batch-renorm defaults (momentum 0.99, warm-up 100k, r_max 3,
d_max 5, epsilon 1e-3) are the config's own."""

PAPER_WIDTHS = dict(critic_hidden=(2048, 2048), actor_hidden=(256, 256))
"""The paper's networks: critic 2 x 2048, actor 2 x 256."""

QUICK_FIELDS = dict(critic_hidden=(256, 256), actor_hidden=(64, 64), batch_size=128)
"""Sized for 2 CPU cores: critic 2 x 256 (paper 2048), actor 2 x 64 (paper 256), batch 128 (256). The
critic part brings a 5k-update renorm warm-up (100k) under ``quick`` for every actor on it
(:data:`s2ac.config.QUICK_RENORM_WARMUP_STEPS`), so that renormalisation starts inside a quick run."""


def preset_fields(preset: str, env_id: str) -> dict:
    """CrossQ's fields under every preset; the paper's widths under ``paper`` and ``corrected``; the
    small ones under ``quick``. On multigoal (not ``paper``) alpha is fixed, as for every algorithm."""
    fields = dict(CROSSQ_FIELDS, **(QUICK_FIELDS if preset == "quick" else PAPER_WIDTHS))
    if is_multigoal(env_id) and preset != "paper":
        fields.update(auto_alpha=False)
        fields.pop("alpha")
    return fields


def train_preset_fields(preset: str, env_id: str) -> dict:
    """Schedule fields: random actions and no update for the first 5000 env steps under ``paper``
    (CrossQ; SBX: 100). Updates keep the project's rounds of 50 every 50 env steps: the same one
    update per env step (UTD 1) as CrossQ's one every step, run in one compiled call."""
    if preset == "paper":
        return dict(learning_starts=5_000, random_steps=5_000)
    return {}


__all__ = ["CROSSQ_FIELDS", "PAPER_WIDTHS", "QUICK_FIELDS", "SACAgent", "SACConfig", "preset_fields"]
