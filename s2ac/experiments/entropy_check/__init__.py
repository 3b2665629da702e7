"""Entropy check: every density the package reports against ground truth on the same particles.

Ground truth is the entropy of the sampler's real particle distribution, estimated by
Kozachenko-Leonenko k-NN over pooled particles of many independent particle sets (one particle
per set, so the repulsion inside a set does not bias it), calibrated on analytic entropies
(``L = 0``: the Gaussian ``q0``). Estimators plug in through :data:`ESTIMATORS`: each maps a
sampler trajectory to per-particle log-densities, so later density kinds (flows, diffusion
bounds) are one more entry. ``s2ac reproduce entropy-check`` writes ``summary.json``,
``report.md`` and ``entropy_check.png``.
"""

from s2ac.experiments.entropy_check.run import ESTIMATORS, run_entropy_check

__all__ = ["ESTIMATORS", "run_entropy_check"]
