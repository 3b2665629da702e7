"""Run-time study: cost of one update and of acting, for every method, side by side in one process.

:func:`run_runtime` reuses :mod:`s2ac.bench` (no timing code of its own) to measure, on the current
machine and device (``jax.devices()``):

1. the median ms per compiled update, its XLA FLOPs and the achieved GFLOP/s of SAC, S²AC(phi),
   S²AC(phi,theta) over a grid of SVGD steps L (at m = 10) and particles m (at L = 3), amortized
   S²AC and SQL, at Hopper's dimensions (obs 11, act 3, batch 100, 256-unit networks);
2. the dense ``(B*m x H) @ (H x H)`` float32 matmul rate of the same process, before and after the
   updates (the faster of the two is the reference for the fraction);
3. env steps/s of acting on Hopper-v5 (policy + ``env.step``) via :func:`s2ac.bench.run_bench_act`;
4. ratios to SAC and fractions of the matmul rate.

It writes ``results.json``, ``report.md`` and ``runtime.png`` into ``out_dir``.
Absolute times on shared machines are noisy; only ratios measured in the same run are comparable.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2ac.bench import BenchAct, BenchUpdate, run_bench_act, time_update
from s2ac.experiments.reporting import json_safe, markdown_table
from s2ac.experiments.stats import fmt_number
from s2ac.machine import load_average, machine_info, matmul_rate, pick

CLI_COMMAND = "s2ac reproduce runtime --out results/runtime"
"""The command line that reproduces the full study."""
ACT_ENV = "Hopper-v5"
"""Env whose acting throughput is measured."""
ACT_ALGOS: tuple[str, ...] = ("sac", "s2ac", "s2ac-amortized", "sql")
"""Methods whose acting throughput is measured."""
LABELS: dict[str, str] = {
    "sac": "SAC",
    "s2ac-phi": "S²AC(φ)",
    "s2ac": "S²AC(φ,θ)",
    "s2ac-amortized": "amortized S²AC",
    "sql": "SQL",
    "sac-nf": "SAC-NF",
}
"""Display names of the algorithms."""


@dataclass(frozen=True)
class RuntimeGrid:
    """What the study measures and how often."""

    steps_grid: tuple[int, ...] = (1, 3, 5, 10)
    """SVGD steps L of S²AC(phi,theta) at ``base_particles``."""
    particles_grid: tuple[int, ...] = (5, 10, 20, 50)
    """Particles m of S²AC(phi,theta) at ``base_steps``."""
    phi_steps: tuple[int, ...] = (3, 10)
    """SVGD steps L of S²AC(phi) at ``base_particles``."""
    base_steps: int = 3
    """L of the other SVGD methods and of the m sweep (authors' MuJoCo setting)."""
    base_particles: int = 10
    """m of the other SVGD methods and of the L sweep (authors' setting)."""
    hidden: int = 256
    """Width of every hidden layer."""
    repeats: int = 30
    """Timed updates per row and trial (median reported)."""
    trials: int = 3
    """Passes over all rows; each row keeps its fastest pass (the machine's speed drifts between passes)."""
    matmul_repeats: int = 50
    """Timed matmuls per trial of the reference rate."""
    matmul_trials: int = 3
    """Trials of the reference rate (best median kept)."""
    act_steps: int = 2000
    """Env steps timed per method for the acting throughput."""

    @classmethod
    def quick(cls) -> RuntimeGrid:
        """A reduced grid (small nets, few repeats) that runs in well under a minute on 2 cores."""
        return cls(
            steps_grid=(1, 3),
            particles_grid=(5, 10),
            phi_steps=(3,),
            hidden=64,
            repeats=3,
            trials=1,
            matmul_repeats=10,
            matmul_trials=1,
            act_steps=100,
        )


@dataclass(frozen=True)
class UpdateCase:
    """One row of the update table: an algorithm at a given (L, m)."""

    algo: str
    steps: int | None = None
    particles: int | None = None

    @property
    def label(self) -> str:
        """Display name with (L, m) for the SVGD methods."""
        name = LABELS.get(self.algo, self.algo)
        return name if self.steps is None else f"{name} L={self.steps} m={self.particles}"


def update_cases(grid: RuntimeGrid) -> list[UpdateCase]:
    """The update rows in report order: SAC, S²AC(phi), the S²AC(phi,theta) sweeps, amortized S²AC, SQL."""
    cases = [UpdateCase("sac")]
    cases += [UpdateCase("s2ac-phi", L, grid.base_particles) for L in grid.phi_steps]
    cases += [UpdateCase("s2ac", L, grid.base_particles) for L in grid.steps_grid]
    cases += [UpdateCase("s2ac", grid.base_steps, m) for m in grid.particles_grid if m != grid.base_particles]
    if grid.base_steps not in grid.steps_grid:
        cases.append(UpdateCase("s2ac", grid.base_steps, grid.base_particles))
    cases.append(UpdateCase("s2ac-amortized", grid.base_steps, grid.base_particles))
    cases.append(UpdateCase("sql"))
    return cases


def bench_args(case: UpdateCase, grid: RuntimeGrid) -> BenchUpdate:
    """The :class:`s2ac.bench.BenchUpdate` of one row (Hopper dims, batch 100)."""
    return BenchUpdate(
        algo=case.algo,
        particles=case.particles or grid.base_particles,
        svgd_steps=case.steps if case.steps is not None else grid.base_steps,
        hidden=grid.hidden,
        repeats=grid.repeats,
        compare_sac=False,
    )


def measure_update(case: UpdateCase, grid: RuntimeGrid) -> dict[str, Any]:
    """ms, FLOPs and GFLOP/s of one row's update, plus the compile-and-time wall seconds."""
    start = time.perf_counter()
    stats = time_update(case.algo, "corrected", bench_args(case, grid))
    row = {"label": case.label, "algo": case.algo, "svgd_steps": case.steps, "particles": case.particles}
    row.update(stats)
    row["wall_s"] = time.perf_counter() - start
    return row


def measure_updates(grid: RuntimeGrid) -> list[dict[str, Any]]:
    """Every row of :func:`update_cases`, in ``grid.trials`` interleaved passes; each row keeps its fastest."""
    cases = update_cases(grid)
    passes = [[measure_update(case, grid) for case in cases] for _ in range(grid.trials)]
    rows = []
    for trials in zip(*passes, strict=True):
        best = dict(min(trials, key=lambda r: r["ms"]))
        best["ms_per_trial"] = [r["ms"] for r in trials]
        best["wall_s"] = sum(r["wall_s"] for r in trials)
        rows.append(best)
    return rows


def reference_rate(grid: RuntimeGrid) -> float:
    """GFLOP/s of the dense matmul at the S²AC update's dominant shape (batch * m rows)."""
    rows = BenchUpdate().batch * grid.base_particles
    return matmul_rate(rows, grid.hidden, repeats=grid.matmul_repeats, trials=grid.matmul_trials)


def add_ratios(rows: list[dict[str, Any]], matmul_gflops: float) -> None:
    """Add ``ratio_to_sac`` (ms / SAC's ms) and ``fraction_of_matmul`` to every row in place."""
    sac_ms = next(r["ms"] for r in rows if r["algo"] == "sac")
    for row in rows:
        row["ratio_to_sac"] = row["ms"] / sac_ms
        row["fraction_of_matmul"] = row["gflops_per_s"] / matmul_gflops


def measure_acting(grid: RuntimeGrid) -> dict[str, Any]:
    """Env steps/s of acting on Hopper-v5; an ``error`` entry if the env cannot be made."""
    try:
        return run_bench_act(BenchAct(env=ACT_ENV, algos=ACT_ALGOS, steps=grid.act_steps))
    except Exception as exc:  # noqa: BLE001 - acting is optional (e.g. MuJoCo missing); report why
        return {"env": ACT_ENV, "error": f"{type(exc).__name__}: {exc}", "algos": {}}


MACHINE_KEYS = (
    "processor",
    "arch",
    "cpu_count",
    "platform",
    "jax",
    "backend",
    "device_kind",
    "device_count",
)
"""The :func:`s2ac.machine.machine_info` entries ``results.json`` records."""


# ----------------------------------------------------------------------------- report


def update_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the update rows."""
    header = ["method", "ms / update", "GFLOP / update", "GFLOP/s", "fraction of matmul", "ratio to SAC"]
    body = [
        [
            r["label"],
            fmt_number(r["ms"]),
            fmt_number(r["flops"] / 1e9, 3),
            fmt_number(r["gflops_per_s"], 1),
            fmt_number(r["fraction_of_matmul"], 3),
            fmt_number(r["ratio_to_sac"], 1),
        ]
        for r in rows
    ]
    return markdown_table(header, body)


def acting_table(acting: dict[str, Any]) -> str:
    """Markdown table of env steps/s of acting (or the reason it is missing)."""
    if acting.get("error"):
        return f"Acting not measured: {acting['error']}"
    body = [
        [
            LABELS.get(algo, algo),
            fmt_number(s["env_steps_per_s"], 0),
            fmt_number(s["ms_per_action"], 3),
            fmt_number(s.get("throughput_vs_sac"), 2),
        ]
        for algo, s in acting["algos"].items()
    ]
    return markdown_table(["method", "env steps/s", "ms / action", "throughput vs SAC"], body)


def _width_note(hidden: int) -> list[str]:
    """Lines noting that the amortizer keeps its default width when the nets are narrowed."""
    if hidden == 256:
        return []
    return [
        f"The amortized sampler keeps its default 2 x 256 width ({hidden} applies to the critics and actor "
        "only), so amortized S²AC is over-weighted in this grid.",
        "",
    ]


def _load_note(load: dict[str, float | None], cores: int | None) -> str:
    """One sentence on the machine's load average during the run."""
    values = [v for v in load.values() if v is not None]
    if not values:
        return ""
    note = f"1-minute load average at start / end: {fmt_number(load['start'])} / {fmt_number(load['end'])}"
    if cores and max(values) > cores:
        note += f" (above the {cores} cores: other processes competed for them, so times are inflated and noisy)"
    return note + "."


def report_markdown(results: dict[str, Any]) -> str:
    """The study's ``report.md``."""
    m, g = results["machine"], results["grid"]
    mm = results["matmul"]
    lines = [
        "# Run-time study: update and acting cost",
        "",
        f"Command: `{results['command']}`"
        + (" (quick grid: `run_runtime(out_dir, quick=True)`)" if results["quick"] else ""),
        "",
        f"Machine: {m['cpu_count']}-core {m['arch']} CPU, processor `{m['processor']}`; JAX {m['jax']} on "
        f"backend `{m['backend']}`, device `{m['device_kind']}`.",
        f"Wall time: {results['wall_s']:.0f} s. {_load_note(results['load_average'], m['cpu_count'])}",
        "",
        "Absolute times on shared machines are noisy (clock and neighbours drift); compare only ratios "
        "measured in the same run, such as the ratio to SAC and the fraction of the matmul rate below.",
        "",
        "## Update",
        "",
        f"Hopper dimensions (obs 11, act 3), batch 100, {g['hidden']}-unit networks, `corrected` preset, "
        f"median of {g['repeats']} compiled updates after a warm-up, fastest of {g['trials']} interleaved passes "
        "over all rows; FLOPs from XLA's cost analysis with "
        "the SVGD loop unrolled. Reference: dense float32 matmul "
        f"{mm['shape'][0]}x{mm['shape'][1]} @ {mm['shape'][1]}x{mm['shape'][2]} at "
        f"{fmt_number(mm['before_gflops_per_s'], 1)} GFLOP/s before and "
        f"{fmt_number(mm['after_gflops_per_s'], 1)} after "
        f"the updates; the faster ({fmt_number(mm['reference_gflops_per_s'], 1)}) is the reference for the fraction.",
        "",
        *_width_note(g["hidden"]),
        update_table(results["updates"]),
        "",
        "## Acting",
        "",
        f'Env steps/s of `act(mode="random")` + `env.step` on {results["acting"].get("env", ACT_ENV)}, '
        f"untrained 256-unit `corrected` networks, {g['act_steps']} steps per method.",
        "",
        acting_table(results["acting"]),
        "",
        "## Figure",
        "",
        "![ms per update](runtime.png)",
        "",
    ]
    return "\n".join(lines)


def plot_runtime(path: Path, rows: list[dict[str, Any]], grid: RuntimeGrid) -> str:
    """ms per update of S²AC(phi,theta) vs L and vs m, with SAC's as a line; log y."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    sac_ms = next(r["ms"] for r in rows if r["algo"] == "sac")
    s2ac = [r for r in rows if r["algo"] == "s2ac"]
    by_l = sorted((r["svgd_steps"], r["ms"]) for r in s2ac if r["particles"] == grid.base_particles)
    by_m = sorted((r["particles"], r["ms"]) for r in s2ac if r["svgd_steps"] == grid.base_steps)
    fig = Figure(figsize=(10, 4))
    panels = [(by_l, f"SVGD steps L (m = {grid.base_particles})"), (by_m, f"particles m (L = {grid.base_steps})")]
    for ax, (points, xlabel) in zip(fig.subplots(1, 2), panels, strict=True):
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, "o-", label="S²AC(φ,θ)")
        ax.axhline(sac_ms, color="gray", ls="--", label="SAC")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ms per update")
        ax.set_xticks(xs)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"Update time, Hopper dims, batch 100, {grid.hidden}-unit nets")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path.name


# ----------------------------------------------------------------------------- driver


def run_runtime(out_dir: Path, quick: bool = False) -> dict:
    """Measure update and acting cost of every method in this process; write results, report and figure.

    ``quick`` uses :meth:`RuntimeGrid.quick` (64-unit nets, L in {1, 3}, m in {5, 10}, few repeats).
    Returns the dict written to ``results.json``.
    """
    start = time.perf_counter()
    grid = RuntimeGrid.quick() if quick else RuntimeGrid()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    before = reference_rate(grid)
    rows = measure_updates(grid)
    after = reference_rate(grid)
    add_ratios(rows, max(before, after))
    acting = measure_acting(grid)
    results = {
        "command": CLI_COMMAND,
        "quick": quick,
        "grid": dataclasses.asdict(grid),
        "machine": pick(machine_info(), MACHINE_KEYS),
        "load_average": {"start": load_before, "end": load_average()},
        "matmul": {
            "shape": [BenchUpdate().batch * grid.base_particles, grid.hidden, grid.hidden],
            "before_gflops_per_s": before,
            "after_gflops_per_s": after,
            "reference_gflops_per_s": max(before, after),
        },
        "updates": rows,
        "acting": acting,
    }
    results["figure"] = plot_runtime(out_dir / "runtime.png", rows, grid)
    results["wall_s"] = time.perf_counter() - start
    results = json_safe(results)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "report.md").write_text(report_markdown(results))
    return results


__all__ = ["RuntimeGrid", "UpdateCase", "update_cases", "run_runtime"]
