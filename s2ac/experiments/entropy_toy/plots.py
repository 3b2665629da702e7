"""Figures of the entropy toy: particle snapshots, entropy vs steps, the bandwidth-sweep heatmaps and the
mixture-sweep errors (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from s2ac.experiments.entropy_toy.config import EntropyToyConfig, InitSpec, bandwidth_label, sampler_specs
from s2ac.experiments.entropy_toy.densities import langevin_gaussian_entropy

# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------


def _ellipse(mean: np.ndarray, cov: np.ndarray, radius: float) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, 100)
    return mean + radius * np.stack([np.cos(t), np.sin(t)], 1) @ np.linalg.cholesky(cov).T


def plot_snapshots(path: Path, cfg: EntropyToyConfig, spec: InitSpec, comp_init, truth: float) -> None:
    """Rows: samplers; columns: snapshot steps; titles carry each panel's log-det entropy estimate (seed 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {k: f"C{i}" for i, k in enumerate(sampler_specs(cfg))}  # same colours as the curves figure
    labels = {k: v for k, v in sampler_specs(cfg).items() if k != "svgd_exact"}
    steps = [s for s in cfg.snapshot_steps if s <= cfg.n_steps]
    mean, cov = np.asarray(cfg.target_mean), np.asarray(cfg.target_cov)
    fig, axes = plt.subplots(len(labels), len(steps), figsize=(2.6 * len(steps), 2.6 * len(labels)), squeeze=False)
    for r, (name, label) in enumerate(labels.items()):
        res = comp_init[name]
        for c, step in enumerate(steps):
            ax = axes[r, c]
            for rad in (1.0, 2.0):
                e = _ellipse(mean, cov, rad)
                ax.plot(e[:, 0], e[:, 1], color="0.55", lw=0.8)
            x = res["trajectory"][0, step]
            ax.scatter(x[:, 0], x[:, 1], s=3, color=colors[name], alpha=0.7)
            ax.set_xlim(-7, 7)
            ax.set_ylim(-6, 8)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=7)
            ax.set_title(f"step {step}: H est = {res['logdet'][0, step]:.2f}", fontsize=9)
            if c == 0:
                ax.set_ylabel(label.replace(" (", "\n("), fontsize=8)
    fig.suptitle(
        f"Particles from {spec.label} ({cfg.n_particles} particles, seed 0); grey: target 1- and 2-sigma ellipses; "
        f"true entropy {truth:.4f}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=cfg.dpi)
    plt.close(fig)


def plot_entropy_curves(path: Path, cfg: EntropyToyConfig, comp, truth: float) -> None:
    """Top: the samplers' log-det estimates vs steps; bottom: references from the particles' positions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sampler_specs(cfg)
    fig, axes = plt.subplots(2, len(cfg.inits), figsize=(6.5 * len(cfg.inits), 8.5), squeeze=False)
    steps = np.arange(cfg.n_steps + 1)
    for c, spec in enumerate(cfg.inits):
        top, bottom = axes[0, c], axes[1, c]
        for k, (name, label) in enumerate(labels.items()):
            res = comp[spec.slug][name]
            style = {"svgd_exact": "--", "det_langevin": "-."}.get(name, "-")  # det. Langevin's estimate = Langevin's
            est = res["logdet"].mean(0)
            top.plot(steps, est, style, color=f"C{k}", label=f"{label}: final {est[-1]:.2f}")
            bottom.plot(steps, res["knn"].mean(0), style, color=f"C{k}", label=f"{label}: kNN of particles")
        init_cov = spec.variance * np.eye(len(spec.mean))
        for k, (name, noise) in ((2, ("langevin", True)), (3, ("det_langevin", False))):
            exact = langevin_gaussian_entropy(
                init_cov, np.asarray(cfg.target_cov), cfg.langevin_step_size, cfg.n_steps, noise
            )
            bottom.plot(steps, exact, ":", color=f"C{k}", lw=2, label=f"{labels[name]}: exact marginal")
        for ax in (top, bottom):
            ax.axhline(truth, color="k", lw=1, label=f"true entropy {truth:.4f}")
            ax.set_ylim(-1.0, 7.5)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="lower left")
        top.set_ylabel("log-det entropy estimate  -mean log q")
        bottom.set_ylabel("entropy of the particles' distribution")
        top.set_title(f"init {spec.label}: the samplers' own estimates (mean of {cfg.comparison_n_seeds} seeds)")
        bottom.set_title(f"init {spec.label}: references independent of the accounting")
    fig.tight_layout()
    fig.savefig(path, dpi=cfg.dpi)
    plt.close(fig)


def plot_bandwidth_sweep(path: Path, cfg: EntropyToyConfig, rows: list[dict], truth: float) -> None:
    """Heatmaps of the mean estimate (text) and its error vs the truth (colour): modes x inits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bws = [bandwidth_label(b) for b in (*cfg.sweep_bandwidths, *cfg.sweep_rules)]
    ms = list(cfg.sweep_particles)
    fig, axes = plt.subplots(
        len(cfg.sweep_modes),
        len(cfg.inits),
        figsize=(0.75 * len(bws) * len(cfg.inits) + 1.5, 0.7 * len(ms) * len(cfg.sweep_modes) + 1.8),
        squeeze=False,
        constrained_layout=True,
    )
    lookup = {(r["init"], r["mode"], r["n_particles"], r["bandwidth"]): r for r in rows}
    image = None
    for a, mode in enumerate(cfg.sweep_modes):
        for b, spec in enumerate(cfg.inits):
            ax = axes[a, b]
            vals = np.array([[lookup[(spec.label, mode, m, bw)]["mean"] for bw in bws] for m in ms])
            margins = np.array([[lookup[(spec.label, mode, m, bw)]["max_margin"] for bw in bws] for m in ms])
            err = np.where(np.isfinite(vals), vals - truth, np.nan)
            image = ax.imshow(err, cmap="RdBu_r", vmin=-2.0, vmax=2.0, aspect="auto")
            for p in range(len(ms)):
                for q in range(len(bws)):
                    text = f"{vals[p, q]:.2f}" if np.isfinite(vals[p, q]) and abs(vals[p, q]) < 1e3 else "div."
                    if margins[p, q] >= 1.0:
                        text += "*"
                    ax.text(q, p, text, ha="center", va="center", fontsize=7)
            ax.set_xticks(range(len(bws)), [bw.replace("sigma=", "") for bw in bws], fontsize=8)
            ax.set_yticks(range(len(ms)), [f"{m}x{m}" for m in ms], fontsize=8)
            ax.set_xlabel("bandwidth sigma / rule")
            ax.set_ylabel("particles x steps")
            ax.set_title(f"{mode}, init {spec.label}", fontsize=9)
    fig.suptitle(
        f"SVGD entropy estimate (mean of {cfg.sweep_n_seeds} seeds, eps={cfg.svgd_step_size:g}); colour: error vs "
        f"true {truth:.4f}; * step map not provably invertible (margin >= 1)",
        fontsize=9,
    )
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.9, label="estimate - truth (nats)")
    fig.savefig(path, dpi=cfg.dpi)
    plt.close(fig)


def plot_mixture_sweep(path: Path, cfg: EntropyToyConfig, rows: list[dict]) -> None:
    """Estimate error vs number of components, one panel per (cov type, d)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(cfg.mix_cov_types), len(cfg.mix_dims), figsize=(4.6 * len(cfg.mix_dims), 3.6 * len(cfg.mix_cov_types) + 1.0)
    )
    axes = np.atleast_2d(axes).reshape(len(cfg.mix_cov_types), len(cfg.mix_dims))
    labels = list(rows[0]["estimates"])
    for a, cov_type in enumerate(cfg.mix_cov_types):
        for b, d in enumerate(cfg.mix_dims):
            ax = axes[a, b]
            sel = [r for r in rows if r["d"] == d and r["cov_type"] == cov_type]
            ks = [r["n_components"] for r in sel]
            for k, label in enumerate(labels):
                color = f"C{k // len(cfg.mix_modes)}"
                err = np.array([r["estimates"][label]["error_mean"] for r in sel])
                std = np.array([r["estimates"][label]["error_std"] for r in sel])
                style = "--" if label.endswith("self") else "-"
                ax.errorbar(ks, err, yerr=std, fmt=style + "o", ms=3, color=color, label=label)
                if k % len(cfg.mix_modes) == 0:
                    cross = [r["estimates"][label]["cross_entropy_minus_truth"] for r in sel]
                    bw = label.split(" ")[0]
                    ax.plot(ks, cross, ":x", color=color, label=f"{bw}: particles' E_q[-log p] - truth")
            h0_err = [r["init_entropy"] - r["true_entropy_mc"] for r in sel]
            ax.plot(ks, h0_err, ":", color="0.4", label="H(q0) - truth (no update)")
            ax.axhline(0.0, color="k", lw=1)
            ax.set_title(f"d={d}, {cov_type} covariances", fontsize=9)
            ax.set_xlabel("mixture components K")
            ax.set_ylabel("estimate - MC truth (nats)")
            ax.grid(alpha=0.3)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=3, fontsize=8)
    fig.suptitle(
        f"SVGD entropy on Gaussian mixtures ({cfg.mix_particles} particles x {cfg.mix_steps} steps, "
        f"eps={cfg.svgd_step_size:g}, init N(0,{cfg.mix_init_variance:g}I), {cfg.mix_n_seeds} random mixtures)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0.0, 0.1, 1.0, 1.0))
    fig.savefig(path, dpi=cfg.dpi)
    plt.close(fig)


def write_figures(
    out_dir: Path, cfg: EntropyToyConfig, comp, sweep: list[dict], mix: list[dict], truth: float
) -> list[str]:
    """Every figure of :func:`s2ac.experiments.entropy_toy.run_entropy_toy` into ``out_dir``; their file names."""
    files = []
    for spec in cfg.inits:
        name = f"snapshots_{spec.slug}.png"
        plot_snapshots(out_dir / name, cfg, spec, comp[spec.slug], truth)
        files.append(name)
    plot_entropy_curves(out_dir / "entropy_vs_steps.png", cfg, comp, truth)
    plot_bandwidth_sweep(out_dir / "bandwidth_sweep.png", cfg, sweep, truth)
    plot_mixture_sweep(out_dir / "mixture_sweep.png", cfg, mix)
    return files + ["entropy_vs_steps.png", "bandwidth_sweep.png", "mixture_sweep.png"]
