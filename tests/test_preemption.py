"""Preemption: SIGTERM (what SLURM and Kubernetes send) and Ctrl-C at any moment of ``s2ac train``.

A signal during start-up (imports, compiling) ends the command at once with one line and exit
128 + signal, writing nothing; a signal while training finishes the current step, writes a
checkpoint, releases the lock, prints one line and exits with the same code. Either way,
``--resume`` (or a fresh start, where nothing was written) then ends exactly where a straight run
ends: the same agent state and replay buffer, bit for bit."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from child_process import default_sigint
from test_faults import one_error_line, run_cli, subprocess_env

from s2ac import checkpoint as ckpt
from s2ac import errors, runs

TOTAL = 300
ARGS = [
    "train", "--algo", "sac", "--env", "Pendulum-v1", "--preset", "quick", "--no-progress", "--no-plots",
    "--total-steps", str(TOTAL), "--train.learning-starts", "100", "--train.random-steps", "100",
    "--train.train-freq", "50", "--train.gradient-steps", "10", "--train.checkpoint-freq", "150",
    "--train.eval-freq", "0", "--train.log-every", "100", "--agent.batch-size", "32",
    "--agent.critic-hidden", "16", "16", "--agent.actor-hidden", "16", "16",
]  # fmt: skip
pytestmark = pytest.mark.xdist_group("preemption")


def final_state(run_dir: Path) -> tuple[str, dict]:
    """The SHA-256 of the final checkpoint's agent state and its replay arrays."""
    path = run_dir / "checkpoints" / ckpt.checkpoint_name(TOTAL)
    ckpt.verify_checkpoint(path)
    with np.load(path / ckpt.REPLAY_FILE) as replay:
        arrays = {k: replay[k] for k in replay.files}
    return hashlib.sha256((path / ckpt.STATE_FILE).read_bytes()).hexdigest(), arrays


def same_final_state(a: Path, b: Path) -> bool:
    (ha, ra), (hb, rb) = final_state(a), final_state(b)
    return ha == hb and ra.keys() == rb.keys() and all(np.array_equal(ra[k], rb[k]) for k in ra)


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    code, lines = run_cli([*ARGS, "--out", run_dir])
    assert code == 0, lines
    return run_dir


def start(run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "s2ac.cli", *ARGS, "--out", str(run_dir)],
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )


def wait_for(condition, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


def interrupt_and_finish(run_dir: Path, signum: int, moment) -> tuple[int, list[str]]:
    """Start the run, send ``signum`` once ``moment(proc)`` returns, check what the signal left, then
    finish the run (``--resume`` if it has a checkpoint, else from the start); returns the
    interrupted process's exit code and stderr lines."""
    proc = start(run_dir)
    moment(proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=300)
    lines = [line for line in stderr.splitlines() if line.strip()]
    code, expected = proc.returncode, 128 + signum
    assert "Traceback" not in stderr, stderr
    assert not (run_dir / runs.LOCK_FILE).exists(), "the lock was left behind"
    assert not [p for p in run_dir.rglob("*") if ckpt.TMP_MARK in p.name or p.name.startswith(".config.json")]
    has_checkpoint = bool(ckpt.list_checkpoints(run_dir / runs.CHECKPOINT_DIR))
    if code == 0:  # the run had finished before the signal arrived
        assert ckpt.list_checkpoints(run_dir / "checkpoints")[0].name == ckpt.checkpoint_name(TOTAL)
        return code, lines
    assert code == expected, (code, stderr)
    what = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
    if has_checkpoint:  # stopped while training: one line naming the checkpoint written at the signal
        assert len(lines) == 1, lines
        if lines[0].startswith(f"{what}: the run had finished"):  # during its figures or final evaluation
            assert ckpt.checkpoint_name(TOTAL) in lines[0]
        else:
            assert lines[0].startswith(f"{what}: stopped at env step ") and "--resume" in lines[0], lines
            step = int(lines[0].split("env step ")[1].split()[0])
            assert lines[0].split("with checkpoint ")[1].split(";")[0].endswith(ckpt.checkpoint_name(step))
        for path in ckpt.list_checkpoints(run_dir / "checkpoints"):
            ckpt.verify_checkpoint(path)
        config_before = (run_dir / runs.RUN_CONFIG_FILE).read_bytes()
        code, resumed = run_cli([*ARGS, "--out", run_dir, "--resume"])
        assert code == 0, resumed
        assert (run_dir / runs.RUN_CONFIG_FILE).read_bytes() == config_before
    else:  # ended during start-up: one line, and no run written
        line = one_error_line(lines)
        assert line.startswith("error: terminated (SIGTERM)" if signum == signal.SIGTERM else "error: interrupted")
        assert not (run_dir / runs.RUN_CONFIG_FILE).exists(), "start-up wrote config.json"
        code, fresh = run_cli([*ARGS, "--out", run_dir])
        assert code == 0, fresh
    return expected, lines


def after(seconds: float):
    return lambda proc: time.sleep(seconds)


def first_row(run_dir: Path):
    """Once the first metric row is written (the first episode is under way, training compiled)."""
    return lambda proc: wait_for(lambda: (run_dir / "metrics.jsonl").exists(), proc)


def checkpoint_write(run_dir: Path):
    """Once the first checkpoint's temporary folder appears (the checkpoint is being written)."""
    root = run_dir / "checkpoints"
    return lambda proc: wait_for(lambda: root.is_dir() and any(root.iterdir()), proc)


def test_sigterm_while_training_checkpoints_and_resume_equals_the_straight_run(straight, tmp_path):
    run_dir = tmp_path / "run"
    code, lines = interrupt_and_finish(run_dir, signal.SIGTERM, first_row(run_dir))
    assert code == errors.EXIT_TERMINATED == 143, lines
    assert lines[0].startswith("SIGTERM: stopped at env step ")
    assert same_final_state(run_dir, straight)


def test_ctrl_c_during_imports_ends_at_once_in_one_line_and_writes_nothing(tmp_path):
    # s2ac as the program, telling the test when the command line is loaded (JAX is not yet: the
    # command imports it, for several seconds here), then Ctrl-C 0.3 s into those imports.
    marker, run_dir = tmp_path / "loaded", tmp_path / "run"
    script = (
        "import sys, pathlib, s2ac.cli; assert 'jax' not in sys.modules; pathlib.Path(sys.argv[1]).touch(); "
        "sys.argv = ['s2ac', *sys.argv[2:]]; sys.exit(s2ac.cli.main())"
    )
    command = [sys.executable, "-c", script, str(marker), *ARGS, "--out", str(run_dir)]
    proc = subprocess.Popen(
        command,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    wait_for(marker.exists, proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert proc.returncode == errors.EXIT_INTERRUPTED, stderr
    assert one_error_line(lines).startswith("error: interrupted (Ctrl-C) before the command finished")
    assert "Exception ignored" not in stderr and not run_dir.exists()


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(22))
def test_signals_at_random_moments_then_resume_equal_the_straight_run(straight, tmp_path, trial):
    """22 trials: random delays over imports, compiling and training (SIGTERM, and Ctrl-C every third),
    the first episode, and the first checkpoint's write."""
    run_dir = tmp_path / "run"
    rng = random.Random(trial)
    signum = signal.SIGINT if trial % 3 == 2 else signal.SIGTERM
    if trial == 0:
        moment = first_row(run_dir)
    elif trial == 1:
        moment = checkpoint_write(run_dir)
    else:
        moment = after(rng.uniform(0.2, 30.0))
    code, lines = interrupt_and_finish(run_dir, signum, moment)
    assert code in (0, 128 + signum), lines
    assert same_final_state(run_dir, straight)


def test_exit_codes_of_the_signals_are_documented():
    assert errors.exit_code(errors.Terminated()) == errors.EXIT_TERMINATED == 128 + signal.SIGTERM
    assert errors.exit_code(KeyboardInterrupt()) == errors.EXIT_INTERRUPTED == 128 + signal.SIGINT
    docs = (Path(__file__).resolve().parents[1] / "docs" / "failures.md").read_text()
    assert "| 143 |" in docs and "| 130 |" in docs
    assert os.path.exists(Path(errors.__file__))
