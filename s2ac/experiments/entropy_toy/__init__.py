"""Entropy evaluation toy (poster "Entropy Evaluation, H(pi*) = 3.41"; REFERENCE.md §3).

Target ``p = N(mu, Sigma)`` with ``mu = (-0.6871, 0.8010)``,
``Sigma = 5 [[0.2260, 0.1652], [0.1652, 0.6779]]`` and true entropy
``H(p) = 1/2 log det(2 pi e Sigma) = 3.4112``. Particles start from ``N(0, 6 I)``
(6 is a variance) or ``N((4, 4), 0.2 I)`` and move by SVGD (step 0.5) or by a
baseline sampler (:mod:`s2ac.samplers`). Every sampler tracks ``log q`` of each
particle by the change of variables of its step and estimates
``H ~= -(1/m) sum_i log q^L(a_i^L)`` (:func:`s2ac.stein.stein_entropy`).

Four parts, all written to ``out_dir`` by :func:`run_entropy_toy`:

1. sampler comparison: particle snapshots and the estimate vs steps for SVGD,
   Langevin, deterministic Langevin and HMC from both inits, next to two
   references that do not use the samplers' accounting (a k-nearest-neighbour
   entropy of the particles, and the exact marginal entropy of the Langevin
   chains, which stay Gaussian on a Gaussian target);
2. bandwidth sweep: fixed sigma and the two bandwidth rules x particle counts,
   closed-form and exact per-particle log-det, mean over seeds;
3. dimension / mixture sweep: SVGD on Gaussian mixtures in ``d`` dimensions
   against a Monte-Carlo ground truth ``-E_p[log p(x)]`` with the correct
   ``d``-dimensional normaliser;
4. ``summary.json`` / ``summary.md``: all tables, the acceptance number and timings.

Layout: :mod:`.config` (settings), :mod:`.densities` (targets and ground truths), :mod:`.run` (the
parts and the driver), :mod:`.plots`, :mod:`.report`; the k-NN estimator is shared
(:mod:`s2ac.experiments.estimators`).
"""

from s2ac.experiments.entropy_toy.config import (
    CLI_COMMAND,
    BandwidthSpec,
    EntropyToyConfig,
    InitSpec,
    bandwidth_label,
    sampler_specs,
)
from s2ac.experiments.entropy_toy.densities import (
    GaussianMixture,
    gaussian_entropy,
    gaussian_log_prob_fn,
    gaussian_score_fn,
    isotropic_log_prob,
    langevin_gaussian_entropy,
    make_mixture,
    mc_entropy,
    mixture_from_covs,
    mixture_log_prob,
    mixture_sample,
    mixture_score_fn,
    ula_stationary_entropy,
)
from s2ac.experiments.entropy_toy.plots import (
    plot_bandwidth_sweep,
    plot_entropy_curves,
    plot_mixture_sweep,
    plot_snapshots,
)
from s2ac.experiments.entropy_toy.report import summary_markdown
from s2ac.experiments.entropy_toy.run import (
    comparison_summary,
    initial_particles,
    run_bandwidth_sweep,
    run_entropy_toy,
    run_headline,
    run_mixture_sweep,
    run_sampler_comparison,
    svgd_toy_entropies,
)
from s2ac.experiments.estimators import knn_entropy

__all__ = [
    "CLI_COMMAND",
    "BandwidthSpec",
    "EntropyToyConfig",
    "GaussianMixture",
    "InitSpec",
    "bandwidth_label",
    "comparison_summary",
    "gaussian_entropy",
    "gaussian_log_prob_fn",
    "gaussian_score_fn",
    "initial_particles",
    "isotropic_log_prob",
    "knn_entropy",
    "langevin_gaussian_entropy",
    "make_mixture",
    "mc_entropy",
    "mixture_from_covs",
    "mixture_log_prob",
    "mixture_sample",
    "mixture_score_fn",
    "plot_bandwidth_sweep",
    "plot_entropy_curves",
    "plot_mixture_sweep",
    "plot_snapshots",
    "run_bandwidth_sweep",
    "run_entropy_toy",
    "run_headline",
    "run_mixture_sweep",
    "run_sampler_comparison",
    "sampler_specs",
    "summary_markdown",
    "svgd_toy_entropies",
    "ula_stationary_entropy",
]
