"""Faults a user can cause or meet: torn metrics files, partial manifests, bad eval arguments, loading
a model with the wrong class, two writers in one run folder, stale locks, resuming without (valid)
checkpoints or with another config, an unwritable or full output folder, NaN from the env, memory
estimates, a batch larger than the buffer, Ctrl-C during start-up. Each ends in one clear line and a
documented exit code (docs/failures.md) and loses nothing already written."""

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from child_process import default_sigint

from s2ac import checkpoint as ckpt
from s2ac import errors, runs
from s2ac.cli import main
from s2ac.logger import METRICS_FILE, MetricLogger, read_metrics

ROOT = Path(__file__).resolve().parents[1]
SCHEDULE = [
    "--train.learning-starts", "100", "--train.random-steps", "100", "--train.checkpoint-freq", "150",
    "--train.eval-freq", "0", "--train.eval-episodes", "1", "--train.log-every", "100",
]  # fmt: skip
TRAIN = ["train", "--algo", "sac", "--env", "Pendulum-v1", "--preset", "quick", "--no-progress", "--no-plots"]


def train_args(out, *extra, total=300, env=None):
    args = [*TRAIN, *SCHEDULE, "--total-steps", str(total), "--out", str(out), *extra]
    return args if env is None else [*args, "--env", env]


def run_cli(args) -> tuple[int, list[str]]:
    """``s2ac ARGS`` in this process: the exit code and stderr's non-empty lines."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in args])
    return code, [line for line in err.getvalue().splitlines() if line.strip()]


def one_error_line(lines, *warnings_allowed) -> str:
    """The single error line of stderr (besides warnings matching ``warnings_allowed``)."""
    assert not any("Traceback" in line for line in lines), lines
    errs = [line for line in lines if not line.startswith("warning:")]
    assert len(errs) == 1 and errs[0].startswith("error: "), lines
    extra = [line for line in lines if line.startswith("warning:") and not any(w in line for w in warnings_allowed)]
    assert not extra, lines
    return errs[0]


def tree_hashes(folder: Path, skip=(runs.LOCK_FILE,)) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def plant_lock(run_dir: Path, pid: int, command="s2ac train (elsewhere)") -> None:
    record = {"pid": pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00", "command": command,
              "token": "planted"}  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / runs.LOCK_FILE).write_text(json.dumps(record))


def subprocess_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "S2AC_DEBUG": "0"}


class NaNAt(gymnasium.Wrapper):
    """Pendulum whose ``field`` ("reward" or "obs") turns NaN at its ``at``-th step."""

    def __init__(self, env, field: str, at: int):
        super().__init__(env)
        self.field, self.at, self.steps = field, at, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps == self.at:
            if self.field == "reward":
                reward = float("nan")
            else:
                obs = np.full_like(obs, np.nan)
        return obs, reward, terminated, truncated, info


NAN_REWARD_ENV, NAN_OBS_ENV = "faults/NaNRewardPendulum-v0", "faults/NaNObsPendulum-v0"
for _id, _field, _at in ((NAN_REWARD_ENV, "reward", 200), (NAN_OBS_ENV, "obs", 50)):
    if _id not in gymnasium.registry:
        gymnasium.register(
            id=_id,
            entry_point=lambda field=_field, at=_at, **kw: NaNAt(gymnasium.make("Pendulum-v1", **kw), field, at),
        )


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A finished 300-step SAC run (checkpoints at 150 and 300), trained into a folder holding the stale
    lock of a dead process: ``(run_dir, exit code, stderr lines, the dead pid)``."""
    run_dir = tmp_path_factory.mktemp("faults") / "run"
    pid = dead_pid()
    plant_lock(run_dir, pid)
    code, lines = run_cli(train_args(run_dir))
    return run_dir, code, lines, pid


def write_rows(run_dir, steps, torn: str | None = None):
    text = "".join(json.dumps({"step": s, "train/x": float(s)}) + "\n" for s in steps)
    (run_dir / METRICS_FILE).write_text(text + (torn or ""))


def test_a_torn_last_metrics_line_is_dropped_with_a_warning_naming_the_file(tmp_path):
    write_rows(tmp_path, [100, 200], torn='{"step": 300, "train/x": 3')
    with pytest.warns(RuntimeWarning, match=f"{METRICS_FILE}: dropped a torn last line 3"):
        rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [100, 200]


def test_a_damaged_line_before_the_last_is_an_error_naming_file_and_line(tmp_path):
    (tmp_path / METRICS_FILE).write_text('{"step": 1}\n{"step": 2, oops\n{"step": 3}\n')
    with pytest.raises(ValueError, match=f"{METRICS_FILE}: line 2 is not a metric row"):
        read_metrics(tmp_path)


def test_resuming_over_a_torn_metrics_file_keeps_every_whole_row_up_to_the_checkpoint(tmp_path):
    write_rows(tmp_path, [100, 200, 300], torn='{"step": 400, "tr')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        logger = MetricLogger(tmp_path, resume_step=200, tensorboard=False)
    logger.log(300, {"train/x": 30.0})
    logger.close()
    assert [(r["step"], r["train/x"]) for r in read_metrics(tmp_path)] == [(100, 100.0), (200, 200.0), (300, 30.0)]


def test_a_manifest_must_list_every_file_of_the_checkpoint(tmp_path):
    path = ckpt.save_checkpoint(tmp_path, 5, {"w": np.ones(3)}, {"counters": {}}, lambda p: np.savez(p))
    ckpt.verify_checkpoint(path)
    (path / ckpt.STATE_FILE).write_bytes(b"garbage")
    for hashes in ({}, {ckpt.REPLAY_FILE: "0" * 64}):
        (path / ckpt.MANIFEST_FILE).write_text(json.dumps({"step": 5, "sha256": hashes}))
        with pytest.raises(ckpt.CheckpointError, match="does not list state.msgpack"):
            ckpt.verify_checkpoint(path)
    with pytest.warns(UserWarning, match="does not list"):
        assert ckpt.latest_valid_checkpoint(tmp_path) is None


@pytest.mark.parametrize("episodes", ["0", "-3"])
def test_eval_with_no_episodes_is_refused_in_one_line(tmp_path, capsys, episodes):
    assert main(["eval", str(tmp_path), "--episodes", episodes]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --episodes must be >= 1; got {episodes}"


def test_loading_a_model_with_another_algorithms_class_is_refused_naming_both(tmp_path):
    from s2ac import S2AC, SAC, Algorithm

    model = SAC("Pendulum-v1", preset="quick", run_dir=tmp_path / "run")
    saved = model.save(tmp_path / "sac_model")
    with pytest.raises(
        ValueError, match=r"holds a SAC \('sac'\) model, not a S2AC \('s2ac'\) one: load it with s2ac.SAC.load"
    ):
        S2AC.load(saved)
    assert type(Algorithm.load(saved)) is SAC and type(SAC.load(saved)) is SAC


# -- the lock of a run folder --------------------------------------------------------------------


@pytest.mark.xdist_group("faults")
def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(base_run):
    run_dir, code, lines, pid = base_run
    assert code == 0, lines
    assert len(lines) == 1 and lines[0].startswith("warning: ") and f"took over the lock of pid {pid}" in lines[0]
    assert not (run_dir / runs.LOCK_FILE).exists()
    assert [c.name for c in ckpt.list_checkpoints(run_dir / "checkpoints")] == ["ckpt-000000300", "ckpt-000000150"]


@pytest.mark.xdist_group("faults")
def test_a_second_writer_is_refused_naming_the_holder_and_changes_nothing(base_run):
    run_dir = base_run[0]
    before = tree_hashes(run_dir)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        plant_lock(run_dir, holder.pid)
        for extra in ((), ("--resume",)):
            code, lines = run_cli(train_args(run_dir, *extra))
            assert code == errors.EXIT_LOCKED == 5
            line = one_error_line(lines)
            assert (
                f"is in use by pid {holder.pid} on {socket.gethostname()}" in line and "s2ac train (elsewhere)" in line
            )
    finally:
        holder.kill()
        holder.wait()
        (run_dir / runs.LOCK_FILE).unlink()
    assert tree_hashes(run_dir) == before


def test_a_lock_held_by_another_loop_of_this_process_is_a_conflict_and_release_frees_it(tmp_path):
    first = runs.RunLock(tmp_path / "run").acquire()
    assert first.acquire() is first  # re-entrant for its holder
    with pytest.raises(runs.RunFolderLocked, match=rf"pid {os.getpid()} .*another training loop of this process"):
        runs.RunLock(tmp_path / "run").acquire()
    holder = json.loads((tmp_path / "run" / runs.LOCK_FILE).read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["started"]
    first.release()
    assert not (tmp_path / "run").exists()  # a lock that created an empty folder takes it away again
    with runs.RunLock(tmp_path / "run"):
        assert (tmp_path / "run" / runs.LOCK_FILE).is_file()


def test_a_lock_never_released_goes_with_its_object(tmp_path):
    (tmp_path / "run").mkdir()
    runs.RunLock(tmp_path / "run").acquire()  # dropped at once: the finalizer releases it
    assert not (tmp_path / "run" / runs.LOCK_FILE).exists()
    lock = runs.RunLock(tmp_path / "run").acquire()
    plant_lock(tmp_path / "run", 1)  # someone replaced the lock file: release must not delete theirs
    lock.release()
    assert (tmp_path / "run" / runs.LOCK_FILE).exists()


def test_a_constructed_loop_holds_the_lock_until_close(tmp_path):
    from s2ac.agents import make_agent_config
    from s2ac.config import make_train_config
    from s2ac.loop import Trainer

    cfg = make_train_config("quick", "Pendulum-v1", total_steps=200, learning_starts=100, random_steps=100)
    trainer = Trainer("sac", make_agent_config("sac", "quick", "Pendulum-v1"), cfg, tmp_path / "run", progress=False)
    with pytest.raises(runs.RunFolderLocked):
        Trainer("sac", make_agent_config("sac", "quick", "Pendulum-v1"), cfg, tmp_path / "run", progress=False)
    trainer.close()
    assert not (tmp_path / "run" / runs.LOCK_FILE).exists()


def test_pruning_keeps_temporary_folders_of_live_writers(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".ckpt-000000007.tmp-{holder.pid}-abc"
        dead = tmp_path / f".ckpt-000000007.tmp-{dead_pid()}-def"
        for folder in (live, dead):
            folder.mkdir()
        save = lambda step: ckpt.save_checkpoint(tmp_path, step, {"w": np.ones(3)}, {"counters": {}}, np.savez)  # noqa: E731
        save(5)
        first = save(5)  # the same step again (a resume at the last step): replaced whole
        ckpt.verify_checkpoint(first)
        assert live.exists() and not dead.exists()
        assert [p.name for p in tmp_path.iterdir() if ckpt.TMP_MARK in p.name] == [live.name]
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.xdist_group("faults")
def test_saving_a_loaded_run_never_touches_the_run_folder(base_run, tmp_path):
    from s2ac import SAC

    run_dir = base_run[0]
    before = tree_hashes(run_dir)
    model = SAC.load(run_dir)
    saved = model.save(run_dir)  # SB3's rule: one file, run_dir + ".zip", beside the folder
    assert saved == run_dir.with_name(run_dir.name + ".zip") and saved.is_file()
    (tmp_path / "folder.zip").mkdir()
    with pytest.raises(IsADirectoryError, match="it is a folder; save writes one .zip file"):
        model.save(tmp_path / "folder.zip")
    assert tree_hashes(run_dir) == before and not (run_dir / runs.LOCK_FILE).exists()
    saved.unlink()


# -- resume and checkpoint problems -------------------------------------------------------------


@pytest.mark.xdist_group("faults")
def test_resuming_with_another_config_is_one_line_and_changes_nothing(base_run):
    run_dir = base_run[0]
    before = tree_hashes(run_dir)
    code, lines = run_cli(train_args(run_dir, "--resume", "--agent.batch-size", "64"))
    assert code == errors.EXIT_CHECKPOINT == 3
    assert "another config: agent.batch_size: 100 -> 64" in one_error_line(lines)
    assert tree_hashes(run_dir) == before and not (run_dir / runs.LOCK_FILE).exists()


@pytest.mark.xdist_group("faults")
def test_resuming_when_every_checkpoint_is_corrupt_lists_the_first_reason(base_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(base_run[0], run_dir)
    for path in ckpt.list_checkpoints(run_dir / "checkpoints"):
        (path / ckpt.STATE_FILE).write_bytes(b"garbage")
    before = tree_hashes(run_dir)
    code, lines = run_cli(train_args(run_dir, "--resume"))
    assert code == 3
    line = one_error_line(lines)
    assert "all 2 checkpoint(s)" in line and "failed verification" in line
    assert "ckpt-000000300 is corrupt: state.msgpack does not match" in line
    assert tree_hashes(run_dir) == before


def killed_args(run_dir, *extra):
    return [*TRAIN, "--total-steps", "100000", "--train.learning-starts", "100000", "--train.random-steps",
            "100000", "--train.checkpoint-freq", "50000", "--train.eval-freq", "0", "--train.log-every", "100",
            "--out", str(run_dir), *extra]  # fmt: skip


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """A run killed (SIGKILL) after its first metric rows, before its first checkpoint."""
    run_dir = tmp_path_factory.mktemp("killed") / "run"
    proc = subprocess.Popen([sys.executable, "-m", "s2ac.cli", *killed_args(run_dir)], env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not read_rows_quietly(run_dir):
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    assert read_rows_quietly(run_dir), "the run wrote no metric row in time"
    return run_dir


def read_rows_quietly(run_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_metrics(run_dir) if (run_dir / METRICS_FILE).exists() else []


@pytest.mark.xdist_group("faults")
def test_resume_and_eval_of_a_run_killed_before_its_first_checkpoint_say_so(killed_run):
    before = tree_hashes(killed_run)
    assert (killed_run / runs.LOCK_FILE).exists()  # left by the killed process
    code, lines = run_cli(killed_args(killed_run, "--resume"))
    assert code == 3
    line = one_error_line(lines, "took over the lock")
    assert f"{killed_run / 'checkpoints'} holds no checkpoint yet" in line
    assert "stopped before its first checkpoint (the first was due at env step 50000" in line
    assert line.endswith("start it again without --resume")
    code, lines = run_cli(["eval", killed_run, "--episodes", "1"])
    assert code == 3
    assert f"cannot load {killed_run}: {killed_run / 'checkpoints'} holds no checkpoint yet" in one_error_line(lines)
    assert tree_hashes(killed_run) == before
    code, lines = run_cli(train_args(killed_run, total=200))  # a fresh start into it is allowed
    assert code == 0, lines
    assert [r["step"] for r in read_metrics(killed_run)] == [100, 200]


# -- the environment returns NaN ---------------------------------------------------------------


@pytest.mark.parametrize(("env", "step", "what", "last"), [
    (NAN_REWARD_ENV, 200, "reward nan", "ckpt-000000150"),
    (NAN_OBS_ENV, 50, "observation entries [nan", None),
])  # fmt: skip
def test_a_nan_from_the_env_stops_training_in_one_line_keeping_the_last_checkpoint(tmp_path, env, step, what, last):
    # Training starts after the NaN, so these runs compile nothing but the initial state.
    args = train_args(tmp_path / "run", "--train.learning-starts", "300", "--train.random-steps", "300", env=env)
    code, lines = run_cli(args)
    assert code == errors.EXIT_DIVERGED == 4
    line = one_error_line(lines, "cannot be snapshot", "restart the current episode")
    assert f"env {env} seed 0 returned a non-finite {what}" in line and f"at env step {step}" in line
    if last:
        assert line.endswith(str(tmp_path / "run" / "checkpoints" / last))
        ckpt.verify_checkpoint(tmp_path / "run" / "checkpoints" / last)
        assert [r["step"] for r in read_metrics(tmp_path / "run")] == [100]
    else:
        assert "none yet" in line
    assert not (tmp_path / "run" / runs.LOCK_FILE).exists()


# -- memory and batch size: refused before anything is written ------------------------------------


@pytest.mark.parametrize(("extra", "field"), [
    (["--total-steps", "10000000000000", "--train.buffer-size", "10000000000000"], "train.buffer_size"),
    (["--algo", "s2ac", "--agent.n-particles", "100000000"], "agent.n_particles"),
])  # fmt: skip
def test_a_run_that_cannot_fit_in_memory_is_refused_before_anything_is_written(tmp_path, extra, field):
    code, lines = run_cli([*train_args(tmp_path / "run"), *extra])
    assert code == errors.EXIT_MEMORY == 7
    line = one_error_line(lines)
    assert line.startswith("error: not enough memory") and field in line and "GiB" in line
    assert not (tmp_path / "run").exists()


def test_a_batch_larger_than_the_buffer_is_refused_before_anything_is_written(tmp_path):
    code, lines = run_cli([*train_args(tmp_path / "run"), "--train.buffer-size", "80"])
    assert code == 2
    assert "agent.batch_size=100 is larger than the replay buffer" in one_error_line(lines)
    assert "holds 80 transitions (train.buffer_size=80, total_steps=300)" in lines[0]
    assert not (tmp_path / "run").exists()


# -- the output folder cannot be written ------------------------------------------------------------


def test_an_out_that_is_a_file_or_under_a_file_is_one_line_naming_it(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("keep me")
    for out, reason in ((blocker, "File exists (EEXIST)"), (blocker / "run", "Not a directory (ENOTDIR)")):
        code, lines = run_cli(train_args(out))
        assert code == errors.EXIT_OS == 6
        line = one_error_line(lines)
        assert str(blocker) in line and reason in line
    assert blocker.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_read_only_out_is_one_line_naming_it(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        code, lines = run_cli(train_args(parent / "run"))
    finally:
        parent.chmod(0o755)
    assert code == 6
    line = one_error_line(lines)
    assert str(parent / "run") in line and "Permission denied" in line


LIMITED_CLI = (  # s2ac under a file-size limit; a write past it then fails with EFBIG instead of a signal
    "import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv.pop(1)), resource.getrlimit(resource.RLIMIT_FSIZE)[1])); "
    "runpy.run_module('s2ac.cli', run_name='__main__')"
)


@pytest.mark.xdist_group("faults")
def test_a_full_disk_while_extending_a_run_is_one_line_and_keeps_its_checkpoint(base_run, tmp_path):
    # Under a 100 kB file-size limit the next checkpoint (a 200 kB state) cannot be written.
    run_dir = tmp_path / "run"
    shutil.copytree(base_run[0], run_dir)
    kept = run_dir / "checkpoints" / "ckpt-000000300"
    before, rows = tree_hashes(kept), read_metrics(run_dir)
    proc = subprocess.run([sys.executable, "-c", LIMITED_CLI, "100000", *train_args(run_dir, "--resume", total=600)],
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 6, proc.stderr
    line = one_error_line(lines)
    assert "File too large (EFBIG)" in line and str(run_dir / "checkpoints") in line
    assert tree_hashes(kept) == before
    ckpt.verify_checkpoint(kept)
    assert ckpt.latest_valid_checkpoint(run_dir / "checkpoints") == kept
    assert read_metrics(run_dir)[: len(rows)] == rows
    assert json.loads((run_dir / "config.json").read_text())["train"]["total_steps"] == 600  # the extension
    assert not [p for p in (run_dir / "checkpoints").iterdir() if ckpt.TMP_MARK in p.name]
    assert not (run_dir / runs.LOCK_FILE).exists()


# -- interrupting, and tracebacks on request ----------------------------------------------------------


def test_ctrl_c_during_start_up_is_one_line_exit_130_and_leaves_nothing_half_written(tmp_path):
    marker, run_dir = tmp_path / "imported", tmp_path / "run"
    script = (  # s2ac as the program, telling the test when its imports are done
        "import sys, pathlib, s2ac.cli; pathlib.Path(sys.argv[1]).touch(); sys.argv = ['s2ac', *sys.argv[2:]]; "
        "sys.exit(s2ac.cli.main())"
    )
    # A run far longer than the test, so that a loaded machine delaying this process past the run's end
    # cannot turn the interruption into a finished run; Ctrl-C in training is exit 130 too. The child gets
    # Ctrl-C's default action: an xdist worker may ignore SIGINT, and its children would inherit that.
    args = train_args(run_dir, total=1_000_000)
    proc = subprocess.Popen([sys.executable, "-c", script, str(marker), *args], env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)  # fmt: skip
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)  # into main()'s start-up (parsing, env, compiling: several seconds), not the marker's write
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert proc.returncode == errors.EXIT_INTERRUPTED == 130, stderr
    # Start-up says "interrupted"; if a loaded machine let the run reach training, it stops with a checkpoint.
    assert len(lines) == 1 and "Traceback" not in stderr
    assert "interrupted" in lines[0] or lines[0].startswith("Ctrl-C: stopped at env step")
    assert not (run_dir / runs.LOCK_FILE).exists()
    if (run_dir / "config.json").exists():  # interrupted after the folder was prepared: it is whole
        json.loads((run_dir / "config.json").read_text())
    assert not [p for p in tmp_path.rglob("*") if ckpt.TMP_MARK in p.name or p.name.startswith(".config.json")]


def test_debug_shows_the_traceback_and_help_lists_the_exit_codes(tmp_path, capsys, monkeypatch):
    assert run_cli(["eval", tmp_path / "nothing"])[0] == 2
    with pytest.raises(FileNotFoundError):
        main(["--debug", "eval", str(tmp_path / "nothing")])
    monkeypatch.setenv("S2AC_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(["eval", str(tmp_path / "nothing")])
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out and all(f"  {code:<4} " in out for code in errors.EXIT_CODES)


def test_os_errors_and_memory_errors_map_to_their_exit_codes():
    assert errors.exit_code(OSError(28, "No space left on device", "/x")) == 6
    assert errors.one_line(OSError(28, "No space left on device", "/x")).startswith(
        "error: /x: No space left on device (ENOSPC); free some disk space"
    )
    assert errors.exit_code(FileExistsError("a message of ours")) == 2
    assert errors.exit_code(MemoryError("Unable to allocate 7 TiB")) == 7
    assert errors.exit_code(KeyboardInterrupt()) == 130
    assert errors.exit_code(runs.RunFolderLocked("x")) == 5
    assert errors.exit_code(ckpt.CheckpointError("x")) == 3
    assert (
        errors.one_line(RuntimeError("boom\nmore"))
        == "error: RuntimeError: boom (unexpected; rerun with --debug for the traceback)"
    )


# -- what a run may write: only its own run folder -------------------------------------------------


def someone_elses_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"name": "my project", "lr": 0.1}\n')
    (folder / "notes.txt").write_text("keep me\n")
    (folder / "metrics.jsonl").write_text('{"step": 1, "mine": 2}\n')
    return folder


@pytest.mark.parametrize("out", ["", "."])
def test_the_current_folder_as_out_is_refused_and_changes_nothing(tmp_path, monkeypatch, out):
    project = someone_elses_folder(tmp_path / "project")
    monkeypatch.chdir(project)
    before = tree_hashes(project, skip=())
    code, lines = run_cli([*TRAIN, *SCHEDULE, "--total-steps", "300", "--out", out])
    assert code == errors.EXIT_USAGE == 2
    assert "is the current folder; a run writes a folder of its own" in one_error_line(lines)
    assert tree_hashes(project, skip=()) == before


def test_an_out_holding_unrelated_files_is_refused_naming_them_and_changes_nothing(tmp_path):
    folder = someone_elses_folder(tmp_path / "theirs")
    before = tree_hashes(folder, skip=())
    for extra in ((), ("--resume",)):
        code, lines = run_cli(train_args(folder, *extra))
        line = one_error_line(lines)
        if extra:  # their config.json is not a run's: resuming names the file
            assert code == errors.EXIT_CHECKPOINT and f"{folder / 'config.json'} is not a run's config" in line
        else:
            assert code == errors.EXIT_USAGE
            assert f"--out {folder} is not empty and holds no run (config.json, metrics.jsonl, notes.txt)" in line
        assert tree_hashes(folder, skip=()) == before


def test_an_empty_folder_is_a_fine_out(tmp_path):
    from s2ac.runs import check_run_folder

    (tmp_path / "empty").mkdir()
    check_run_folder(tmp_path / "empty", {}, resume=False)  # no error
    check_run_folder(tmp_path / "new", {}, resume=False)


@pytest.mark.xdist_group("faults")
def test_shortening_a_finished_run_is_refused_and_changes_nothing(base_run):
    run_dir = base_run[0]
    before = tree_hashes(run_dir)
    code, lines = run_cli(train_args(run_dir, "--resume", total=200))
    assert code == errors.EXIT_USAGE
    assert one_error_line(lines) == f"error: {run_dir} already has 300 steps; --total-steps must be ≥ 300"
    assert tree_hashes(run_dir) == before and not (run_dir / runs.LOCK_FILE).exists()
    assert json.loads((run_dir / "config.json").read_text())["train"]["total_steps"] == 300


@pytest.mark.xdist_group("faults")
def test_resuming_with_a_config_json_that_is_not_json_names_the_file(base_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(base_run[0], run_dir)
    (run_dir / "config.json").write_text('{"algo": "sac", "agent": {')
    before = tree_hashes(run_dir)
    code, lines = run_cli(train_args(run_dir, "--resume"))
    assert code == errors.EXIT_CHECKPOINT
    assert one_error_line(lines).startswith(f"error: {run_dir / 'config.json'} is not valid JSON (")
    assert tree_hashes(run_dir) == before


@pytest.mark.xdist_group("faults")
def test_eval_on_an_env_of_other_spaces_names_the_mismatch(base_run):
    run_dir = base_run[0]
    before = tree_hashes(run_dir)
    code, lines = run_cli(["eval", run_dir, "--env", "MountainCarContinuous-v0", "--episodes", "1"])
    assert code == errors.EXIT_USAGE
    line = one_error_line(lines)
    assert f"--env MountainCarContinuous-v0 does not match the run {run_dir}, trained on Pendulum-v1" in line
    assert "observations (2,)" in line and "observations (3,)" in line
    assert tree_hashes(run_dir) == before


def test_action_spaces_are_named_by_their_kind():
    from s2ac.types import EnvSpec

    box = gymnasium.spaces.Box(-1, 1, (2,))
    for space, kind in (
        (gymnasium.spaces.Dict({"a": box}), "composite action space not supported: got Dict"),
        (gymnasium.spaces.Tuple((box,)), "composite action space not supported: got Tuple"),
        (gymnasium.spaces.Discrete(3), "discrete action space not supported: got Discrete"),
        (gymnasium.spaces.MultiBinary(3), "discrete action space not supported: got MultiBinary"),
    ):
        env = type("E", (), {"action_space": space, "observation_space": box})()
        with pytest.raises(ValueError, match=kind):
            EnvSpec.from_env(env)


def test_svgd_steps_zero_warns_that_it_is_no_longer_s2ac_and_negative_is_refused(tmp_path):
    # The buffer refusal stops the command right after the warning, before anything is written.
    base = [*TRAIN, "--algo", "s2ac", "--total-steps", "300", "--train.buffer-size", "10", "--out", tmp_path / "r"]
    code, lines = run_cli([*base, "--agent.svgd-steps", "0"])
    assert code == errors.EXIT_USAGE and "larger than the replay buffer" in one_error_line(lines, "svgd_steps=0")
    assert any(line.startswith("warning: agent.svgd_steps=0: no SVGD step") for line in lines)
    code, lines = run_cli([*base, "--agent.svgd-steps", "-1"])
    assert code == errors.EXIT_USAGE and "svgd_steps must be an int >= 0" in one_error_line(lines)
    assert not (tmp_path / "r").exists()


def test_a_run_that_ends_before_its_first_evaluation_plots_without_warnings(tmp_path):
    from s2ac.plots import plot_learning_curves

    write_rows(tmp_path, [100, 200])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plot_learning_curves(tmp_path).is_file()


def test_an_unreachable_cluster_leaves_no_out_folder(tmp_path, capsys):
    pytest.importorskip("ray")
    out = tmp_path / "sweep"
    code = main(["sweep", "--address", "127.0.0.1:9", "--out", str(out), "--algos", "sac", "--envs", "Pendulum-v1"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == errors.EXIT_INTERNAL or code == errors.EXIT_USAGE, err
    assert len(err) == 1 and "could not reach a Ray cluster at 127.0.0.1:9" in err[0], err
    assert not out.exists()
