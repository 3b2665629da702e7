"""Step-rule study: the adaptive rule stays invertible where the authors' fixed step folds, and transports."""

import jax

from s2ac.experiments import step_rules as sr


def test_adaptive_rule_is_valid_and_transports_where_the_fixed_step_folds():
    name = "quadratic (curvature 60)"
    energy, target_energy = sr.energies()[name]
    with jax.enable_x64(True):
        fixed = sr.run_rule(energy, name, sr.Rule("fixed", 0.1, 10))
        small = sr.run_rule(energy, name, sr.Rule("fixed", 0.01, 10))
        adaptive = sr.run_rule(energy, name, sr.Rule("adaptive", 0.1, 10, 0.5))
    assert fixed["margin"] > 1 and fixed["folded"] > 0
    assert adaptive["margin"] <= 0.5 + 1e-9 and adaptive["folded"] == 0
    # Transport: the adaptive particles end nearer the target's mean energy (-1) than the hand-tuned small step.
    assert abs(adaptive["final_energy"] - target_energy) < abs(small["final_energy"] - target_energy)
    assert adaptive["step_gap"] < 0.5 < fixed["step_gap"]


def test_report_marks_invalid_rows():
    row = dict(energy="e", target_energy=-1.0, control="fixed", step_size=0.1, steps=10, target_margin=0.5,
               margin=3.0, folded=1.0, step_gap=2.0, total_gap=9.0, final_energy=-0.5)  # fmt: skip
    text = sr.report_markdown([row, {**row, "control": "adaptive", "margin": 0.5}])
    assert text.count("INVALID") == 1 and "| e | fixed |" in text
