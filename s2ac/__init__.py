"""s2ac: Stein Soft Actor-Critic and max-entropy baselines in JAX.

The class API has one class per registered algorithm (:data:`s2ac.agents.REGISTRY`):
``S2AC``, ``S2ACPhi``, ``AmortizedS2AC``, ``SAC``, ``SQL``, ``SACNF``.
"""

from s2ac import api
from s2ac.api import ALGORITHMS, Algorithm

globals().update({cls.__name__: cls for cls in ALGORITHMS.values()})
__all__ = ["Algorithm", "ALGORITHMS", *api.API_CLASSES]
__version__ = "0.1.0"
