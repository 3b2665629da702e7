"""s2ac: Stein Soft Actor-Critic and max-entropy baselines in JAX.

The class API has one class per registered algorithm (:data:`s2ac.agents.REGISTRY`):
``S2AC``, ``S2ACPhi``, ``AmortizedS2AC``, ``SAC``, ``SQL``, ``CrossQ``, ``S2ACCrossQ``, ``S2ACDist``,
``DIME``, ``SACNF``
(written out in :mod:`s2ac.api`).

``import s2ac`` is light: the class API (and with it JAX) is imported on first use of one of its
names, so that the command line answers ``--help`` and argument errors at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from s2ac import envs as _envs  # noqa: F401  (registers the multigoal ids with Gymnasium; no JAX)

if TYPE_CHECKING:  # what IDEs and type checkers see: the classes written out in s2ac/api.py
    from s2ac.api import (
        ALGORITHMS,
        DIME,
        S2AC,
        SAC,
        SACNF,
        SQL,
        Algorithm,
        AmortizedS2AC,
        CrossQ,
        ModelLogger,
        Policy,
        S2ACCrossQ,
        S2ACDist,
        S2ACPhi,
    )

__all__ = ["Algorithm", "ALGORITHMS", "ModelLogger", "Policy", "S2AC", "S2ACPhi", "AmortizedS2AC", "SAC", "SQL"]
__all__ += ["CrossQ", "S2ACCrossQ", "S2ACDist", "DIME", "SACNF"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """The class API's names on first use (a registered algorithm's class included)."""
    from s2ac.names import ALGO_CLASSES

    if name not in __all__ and name not in ALGO_CLASSES.values():
        raise AttributeError(f"module 's2ac' has no attribute {name!r}")  # also lets submodules import
    return getattr(importlib.import_module("s2ac.api"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
