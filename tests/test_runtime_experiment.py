"""Run-time study: the update grid, and a quick end-to-end run with its files and invariants."""

import json

import pytest

from s2ac.experiments import runtime as rt


def test_update_cases_cover_both_sweeps_once():
    grid = rt.RuntimeGrid()
    cases = rt.update_cases(grid)
    labels = [c.label for c in cases]
    assert len(labels) == len(set(labels))
    s2ac = [c for c in cases if c.algo == "s2ac"]
    assert sorted(c.steps for c in s2ac if c.particles == grid.base_particles) == list(grid.steps_grid)
    assert sorted(c.particles for c in s2ac if c.steps == grid.base_steps) == list(grid.particles_grid)
    assert {c.algo for c in cases} == {"sac", "s2ac-phi", "s2ac", "s2ac-amortized", "sql"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runtime")
    return out, rt.run_runtime(out, quick=True)


@pytest.mark.slow  # the run-time study end to end (minutes of compiling and timing)
def test_quick_run_writes_files(quick_run):
    out, results = quick_run
    for name in ("results.json", "report.md", "runtime.png"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "results.json").read_text())["updates"] == results["updates"]
    report = (out / "report.md").read_text()
    assert rt.CLI_COMMAND in report and "noisy" in report and results["machine"]["device_kind"] in report


@pytest.mark.slow  # the run-time study end to end (minutes of compiling and timing)
def test_quick_rows_are_positive_and_ratios_consistent(quick_run):
    _, results = quick_run
    assert results["matmul"]["reference_gflops_per_s"] > 0
    for row in results["updates"]:
        assert row["ms"] > 0 and row["flops"] > 0 and row["gflops_per_s"] > 0
        assert row["fraction_of_matmul"] > 0
    sac = next(r for r in results["updates"] if r["algo"] == "sac")
    assert sac["ratio_to_sac"] == pytest.approx(1.0)


@pytest.mark.slow  # the run-time study end to end (minutes of compiling and timing)
def test_s2ac_flops_grow_with_steps_and_particles(quick_run):
    _, results = quick_run
    grid = results["grid"]
    s2ac = [r for r in results["updates"] if r["algo"] == "s2ac"]
    by_l = [r["flops"] for r in sorted(s2ac, key=lambda r: r["svgd_steps"]) if r["particles"] == grid["base_particles"]]
    by_m = [r["flops"] for r in sorted(s2ac, key=lambda r: r["particles"]) if r["svgd_steps"] == grid["base_steps"]]
    assert len(by_l) >= 2 and len(by_m) >= 2
    assert all(a < b for a, b in zip(by_l, by_l[1:]))
    assert all(a < b for a, b in zip(by_m, by_m[1:]))
    assert all(r["ratio_to_sac"] > 1 for r in s2ac)


@pytest.mark.slow  # the run-time study end to end (minutes of compiling and timing)
def test_quick_acting_reports_steps_per_second(quick_run):
    _, results = quick_run
    acting = results["acting"]
    if acting.get("error"):
        pytest.skip(acting["error"])
    assert set(acting["algos"]) == set(rt.ACT_ALGOS)
    assert all(s["env_steps_per_s"] > 0 for s in acting["algos"].values())
