"""The registered names, without importing JAX or the agents: what ``s2ac --help`` and the first
parsing stage of ``s2ac train`` need to answer at once.

A copy of what :data:`s2ac.agents.REGISTRY` and :data:`s2ac.config.PRESETS` hold (a test checks that
they agree, naming what is missing): adding an algorithm to the registry adds its name here, and its
class-API class to :mod:`s2ac.api`.
"""

from __future__ import annotations

ALGO_CLASSES: dict[str, str] = {
    "s2ac": "S2AC",
    "s2ac-phi": "S2ACPhi",
    "s2ac-amortized": "AmortizedS2AC",
    "sac": "SAC",
    "sql": "SQL",
    "crossq": "CrossQ",
    "s2ac-crossq": "S2ACCrossQ",
    "s2ac-dist": "S2ACDist",
    "dime": "DIME",
    "sac-nf": "SACNF",
}
"""``--algo`` name -> class-API class name, in registry order."""
ALGOS: tuple[str, ...] = tuple(ALGO_CLASSES)
PRESETS: tuple[str, ...] = ("paper", "corrected", "quick")
DEFAULT_ALGO, DEFAULT_PRESET, DEFAULT_ENV = "s2ac", "corrected", "s2ac/MultiGoal3-v0"
"""Defaults of ``s2ac train``'s ``--algo``, ``--preset`` and ``--env`` (``TrainConfig.env_id``)."""

__all__ = ["ALGOS", "ALGO_CLASSES", "DEFAULT_ALGO", "DEFAULT_ENV", "DEFAULT_PRESET", "PRESETS"]
