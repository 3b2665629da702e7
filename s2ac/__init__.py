"""s2ac: Stein Soft Actor-Critic and max-entropy baselines in JAX."""

from s2ac.api import S2AC, SAC, SACNF, SQL, Algorithm, AmortizedS2AC, S2ACPhi

__all__ = ["S2AC", "S2ACPhi", "AmortizedS2AC", "SAC", "SQL", "SACNF", "Algorithm"]
__version__ = "0.1.0"
