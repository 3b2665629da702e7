"""The SBX comparison's bookkeeping: run records, aggregation over seeds, report, and the refusal of a
missing SBX interpreter. Training itself is not run here (see docs/algorithms/crossq.md)."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from s2ac.experiments import crossq_runner, sbx_compare
from s2ac.experiments.sbx_compare import SBXCompareConfig


def _record(label, seed, returns, train_s=10.0, env="Pendulum-v1"):
    return dict(label=label, env=env, seed=seed, steps=5000, eval_returns=returns, eval_lengths=[200] * len(returns),
                train_wall_s=train_s, eval_wall_s=1.0)  # fmt: skip


def test_parse_takes_the_last_record_line():
    noise = "Using cpu device\n{not json\n"
    first = json.dumps(_record("s2ac:crossq", 0, [-1.0]))
    last = json.dumps(_record("s2ac:crossq", 1, [-2.0]))
    assert sbx_compare.parse_runner_output(noise + first + "\nwarning: x\n" + last + "\n")["seed"] == 1
    with pytest.raises(ValueError, match="no run record"):
        sbx_compare.parse_runner_output('Using cpu device\n{"a": 1}\n')


def test_aggregate_mean_and_sample_std_over_seeds_by_hand():
    records = [
        _record("sbx:crossq", 2, [-150.0, -170.0], train_s=30.0),
        _record("sbx:crossq", 0, [-100.0, -200.0], train_s=10.0),
        _record("sbx:crossq", 1, [-300.0, -100.0], train_s=20.0),
        _record("s2ac:crossq", 0, [-1000.0]),
        {"label": "s2ac:crossq", "env": "Pendulum-v1", "seed": 1, "error": "timed out"},
    ]
    groups = sbx_compare.aggregate(records)
    g = groups["sbx:crossq @ Pendulum-v1"]
    assert g["seeds"] == [0, 1, 2]
    assert g["per_seed_return"] == [-150.0, -200.0, -160.0]
    # mean -170; deviations 20, -30, 10 -> sample variance (400 + 900 + 100) / 2 = 700
    assert g["mean_return"] == pytest.approx(-170.0)
    assert g["std_return"] == pytest.approx(math.sqrt(700.0))
    assert g["mean_train_wall_s"] == pytest.approx(20.0)
    one = groups["s2ac:crossq @ Pendulum-v1"]  # the failed seed is left out; one seed has no std
    assert one["seeds"] == [0] and one["mean_return"] == -1000.0 and math.isnan(one["std_return"])


def test_report_lists_every_run_and_the_failures():
    records = [_record("sbx:crossq", 0, [-100.0]), _record("sbx:crossq", 1, [-200.0])]
    records[0].update(command="s2ac reproduce sbx-compare --steps 5000", settings={"batch_size": 128})
    records[1]["machine_before"] = {"matmul_gflops_per_s": 42.0}
    summary = {
        "groups": sbx_compare.aggregate(records),
        "failed": [{"label": "s2ac:crossq", "env": "Pendulum-v1", "seed": 0, "error": "exit 1: boom"}],
        "versions": {},
        "machine": {"cpu_model": "cpu", "cpu_count": 2, "matmul_gflops_per_s": 50.0},
    }
    text = sbx_compare.report_markdown(summary)
    assert "-150.0 ± 70.7" in text  # sqrt(5000) = 70.71
    assert "0: -100.0, 1: -200.0" in text
    assert "s2ac:crossq @ Pendulum-v1 seed 0: exit 1: boom" in text
    assert "`s2ac reproduce sbx-compare --steps 5000`" in text and '{"batch_size": 128}' in text
    assert "| 42–42 |" in text


def test_run_spec_maps_labels_and_refuses_others(tmp_path):
    cfg = SBXCompareConfig(out=tmp_path, sbx_python="/x/python", learning_starts=500)
    command, spec = sbx_compare.run_spec(cfg, "sbx:crossq", "Pendulum-v1", 3)
    assert command[0] == "/x/python" and spec["impl"] == "sbx" and spec["settings"]["learning_starts"] == 500
    command, spec = sbx_compare.run_spec(cfg, "s2ac:s2ac-crossq", "Pendulum-v1", 3)
    assert command[0] == sys.executable and spec["algo"] == "s2ac-crossq" and spec["settings"]["train_freq"] == 0
    with pytest.raises(ValueError, match="only 'sbx:crossq'"):
        sbx_compare.run_spec(cfg, "sbx:sac", "Pendulum-v1", 0)
    with pytest.raises(ValueError, match="must be 'sbx:crossq' or 's2ac:ALGO'"):
        sbx_compare.run_spec(cfg, "torch:crossq", "Pendulum-v1", 0)


def test_missing_sbx_interpreter_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="SBX interpreter .* not found") as err:
        sbx_compare.check_sbx_python(str(tmp_path / "nope" / "python"))
    assert "\n" not in str(err.value)


def test_evaluation_matches_a_hand_loop():
    """The shared protocol against a direct Gymnasium loop with the same reset seeds and a fixed action."""
    act = np.array([0.5], np.float32)
    result = crossq_runner.evaluate(lambda obs: act, "Pendulum-v1", seed=4, episodes=2)
    for i in range(2):
        env = gym.make("Pendulum-v1")
        env.reset(seed=1_000_000 + 4000 + i)
        total = sum(env.step(act)[1] for _ in range(200))
        assert result["returns"][i] == pytest.approx(total) and result["lengths"][i] == 200


def test_the_default_sbx_interpreter_imports_sbx_when_present():
    python = Path(sbx_compare.DEFAULT_SBX_PYTHON)
    if not python.exists():
        pytest.skip(f"no SBX interpreter at {python} (set S2AC_SBX_PYTHON)")
    sbx_compare.check_sbx_python(str(python))


def test_bench_side_by_side_alternates_rounds_and_divides_by_sac(monkeypatch):
    """``s2ac bench update --side-by-side``: SAC first, every algorithm once per round, rounds alternating;
    each ratio is the median time over SAC's. The updates are stand-ins that take known times, so
    nothing compiles; the ratios are checked against the returned medians and the times against the delays."""
    from s2ac import bench

    delays = {"sac": 0.002, "crossq": 0.005, "s2ac": 0.008}
    calls = []

    def fake_compiled(algo, preset, args):
        def update(state, batch):
            calls.append(algo)
            time.sleep(delays[algo])
            return 0

        return update, None, None, 1e6 * delays[algo]

    monkeypatch.setattr(bench, "compiled_update", fake_compiled)
    args = bench.BenchUpdate(algo="crossq", repeats=6, compare_step_rules=False)
    costs = bench.algo_costs(args, ("crossq", "s2ac", "sac"), rounds=2)
    assert list(costs["ms"]) == ["sac", "crossq", "s2ac"]
    per_call = 1 + 3  # median_seconds: one untimed call, then max(3, 6 // 2) timed ones
    assert calls == (["sac"] * per_call + ["crossq"] * per_call + ["s2ac"] * per_call) * 2
    assert costs["flops"] == {name: 1e6 * d for name, d in delays.items()}
    assert costs["ratio_to_sac"]["sac"] == 1.0
    for name, delay in delays.items():
        assert costs["ratio_to_sac"][name] == pytest.approx(costs["ms"][name] / costs["ms"]["sac"])
        assert costs["ms"][name] >= 1e3 * delay  # a sleep can overshoot on a loaded machine, never undershoot
        r = costs["ratio_to_sac_per_round"][name]
        assert r["min"] <= r["median"] <= r["max"]
