"""s2ac: Stein Soft Actor-Critic and max-entropy baselines in JAX.

The class API has one class per registered algorithm (:data:`s2ac.agents.REGISTRY`):
``S2AC``, ``S2ACPhi``, ``AmortizedS2AC``, ``SAC``, ``SQL``, ``SACNF``.
"""

from s2ac import api
from s2ac.api import *  # noqa: F403  (the class API, whose classes the registry names)

__all__ = list(api.__all__)
__version__ = "0.1.0"
