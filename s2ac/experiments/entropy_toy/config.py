"""Settings of the entropy toy (poster "Entropy Evaluation, H(pi*) = 3.41"; REFERENCE.md §3) and the labels
derived from them."""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Union

BandwidthSpec = Union[float, str]
LOG_2PI = math.log(2.0 * math.pi)
CLI_COMMAND = "s2ac reproduce entropy-toy --out results/entropy_toy"


class InitSpec(NamedTuple):
    """Isotropic Gaussian initial distribution ``N(mean, variance * I)``."""

    slug: str
    label: str
    mean: tuple[float, ...]
    variance: float


@dataclasses.dataclass(frozen=True)
class EntropyToyConfig:
    """Settings of the entropy toy; defaults reproduce the poster's setup (REFERENCE.md §3)."""

    target_mean: tuple[float, float] = (-0.6871, 0.8010)
    """Target mean mu (poster, "Entropy Evaluation")."""
    target_cov: tuple[tuple[float, float], tuple[float, float]] = (
        (5 * 0.2260, 5 * 0.1652),
        (5 * 0.1652, 5 * 0.6779),
    )
    """Target covariance Sigma = 5 [[0.2260, 0.1652], [0.1652, 0.6779]] (poster)."""
    inits: tuple[InitSpec, ...] = (
        InitSpec("wide", "N(0, 6I)", (0.0, 0.0), 6.0),
        InitSpec("offset", "N((4,4), 0.2I)", (4.0, 4.0), 0.2),
    )
    """Initial distributions (poster; 6 and 0.2 are variances)."""
    svgd_step_size: float = 0.5
    """SVGD step eps (poster)."""
    svgd_bandwidth: float = 5.0
    """Fixed kernel bandwidth sigma of the sampler comparison (the sweep's best region, sigma ~ 3-7)."""
    n_particles: int = 200
    """Particles per set in the sampler comparison."""
    n_steps: int = 200
    """Steps (iterations) of every sampler in the comparison."""
    snapshot_steps: tuple[int, ...] = (0, 5, 20, 50, 200)
    """Steps shown in the snapshot figures."""
    langevin_step_size: float = 0.1
    """Langevin step: the unadjusted chain's stationary law on this target has entropy H + 0.037 at 0.1
    (at 0.5 it would inflate the stiff direction's variance by 41%, so the particles themselves would be wrong)."""
    hmc_step_size: float = 0.2
    """HMC leapfrog step: eps * sqrt(lambda_max(Sigma^-1)) = 0.22, acceptance ~ 1."""
    hmc_n_leapfrog: int = 10
    """Leapfrog steps per HMC iteration: trajectory length T = 2 gives omega T = 2.15 and 1.05 rad along the two
    eigen-directions (|cos omega T| ~ 0.5), so neither direction is left nearly unchanged by an iteration."""
    knn_k: int = 3
    """Neighbour order of the Kozachenko-Leonenko reference entropy."""
    comparison_n_seeds: int = 3
    """Seeds of the sampler comparison (snapshots show the first)."""
    sweep_bandwidths: tuple[float, ...] = (0.1, 1.0, 3.0, 5.0, 7.0, 10.0, 100.0)
    """Fixed bandwidths of the sweep (the authors' figure)."""
    sweep_rules: tuple[str, ...] = ("mean/2", "median")
    """Adaptive bandwidth rules of the sweep (see :func:`s2ac.stein.bandwidth_from_rule`)."""
    sweep_particles: tuple[int, ...] = (10, 20, 100, 200)
    """Particle counts m of the sweep; each runs L = m steps (the authors' m x L pairing: 20x20, 100x100, 200x200)."""
    sweep_modes: tuple[str, ...] = ("closed_form", "exact")
    """Log-density accounting modes of the sweep (see :func:`s2ac.stein.svgd_step`)."""
    sweep_n_seeds: int = 5
    """Seeds per sweep cell (the first 3 also give the acceptance number)."""
    headline_n_seeds: int = 3
    """Seeds of the acceptance number and of the rules' headline numbers."""
    headline_runs: tuple[tuple[int, str, tuple[BandwidthSpec, ...]], ...] = (
        (200, "closed_form", (5.0, "mean/2", "median")),
        (200, "exact", (5.0, "mean/2")),
        (100, "closed_form", (5.0, "mean/2")),
    )
    """(m = L, accounting mode, bandwidths) of the headline table (REFERENCE.md §3's numbers); the first
    entry must contain sigma = 5 with m = 200 and the closed form (the acceptance number)."""
    mix_dims: tuple[int, ...] = (2, 10, 20)
    """Dimensions of the mixture sweep."""
    mix_components: tuple[int, ...] = (1, 2, 4, 6)
    """Mixture component counts (equal weights)."""
    mix_cov_types: tuple[str, ...] = ("isotropic", "random")
    """Component covariances: ``v I`` or ``Q diag(v) Q^T`` with random rotation Q, ``v ~ U(mix_var_range)``."""
    mix_mean_scale: float = 2.0
    """Component means ~ N(0, mix_mean_scale^2 I)."""
    mix_var_range: tuple[float, float] = (0.5, 2.0)
    """Range of the component variances (eigenvalues)."""
    mix_init_variance: float = 6.0
    """SVGD starts from N(0, mix_init_variance I) in d dimensions."""
    mix_particles: int = 200
    """Particles per set in the mixture sweep."""
    mix_steps: int = 200
    """SVGD steps in the mixture sweep."""
    mix_bandwidths: tuple[BandwidthSpec, ...] = (5.0, "mean/2")
    """Bandwidths of the mixture sweep (the "median" rule's per-step sort of m^2 distances is the slowest part)."""
    mix_modes: tuple[str, ...] = ("closed_form", "closed_form_self")
    """Accounting modes of the mixture sweep (``exact`` costs O(m^2 d^2) memory per step in d = 20)."""
    mix_n_seeds: int = 3
    """Random mixtures (and particle sets) per cell."""
    mc_samples: int = 100_000
    """Monte-Carlo samples of the ground-truth entropy."""
    dpi: int = 100
    """Figure resolution."""

    @classmethod
    def quick(cls) -> EntropyToyConfig:
        """Reduced grids for a smoke run (under a minute on 2 CPU cores)."""
        return cls(
            n_particles=100,
            n_steps=100,
            snapshot_steps=(0, 10, 50, 100),
            comparison_n_seeds=2,
            headline_runs=((200, "closed_form", (5.0, "mean/2")),),
            sweep_bandwidths=(1.0, 5.0, 100.0),
            sweep_rules=("mean/2",),
            sweep_particles=(20, 100),
            sweep_n_seeds=3,
            mix_dims=(2, 10),
            mix_components=(1, 3),
            mix_particles=100,
            mix_steps=100,
            mix_bandwidths=(5.0,),
            mix_modes=("closed_form",),
            mix_n_seeds=2,
            mc_samples=20_000,
        )


def bandwidth_label(bandwidth: BandwidthSpec) -> str:
    """``"sigma=5"`` for a fixed bandwidth, the rule's name otherwise."""
    return bandwidth if isinstance(bandwidth, str) else f"sigma={float(bandwidth):g}"


def sampler_specs(cfg: EntropyToyConfig) -> dict[str, str]:
    """Sampler key -> label (with the step sizes used), in the comparison's (and the figures' colour) order."""
    return {
        "svgd": f"SVGD (eps={cfg.svgd_step_size:g}, sigma={cfg.svgd_bandwidth:g}, closed form)",
        "svgd_exact": f"SVGD (eps={cfg.svgd_step_size:g}, sigma={cfg.svgd_bandwidth:g}, exact log-det)",
        "langevin": f"Langevin (eps={cfg.langevin_step_size:g})",
        "det_langevin": f"Deterministic Langevin (eps={cfg.langevin_step_size:g})",
        "hmc": f"HMC (eps={cfg.hmc_step_size:g}, {cfg.hmc_n_leapfrog} leapfrog)",
    }
