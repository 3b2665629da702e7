"""Faults a user can cause or meet: torn metrics files, partial manifests, bad eval arguments,
loading a model with the wrong class. Each ends in one clear message and loses nothing written."""

import json
import warnings

import numpy as np
import pytest

from s2ac import checkpoint as ckpt
from s2ac.cli import main
from s2ac.logger import METRICS_FILE, MetricLogger, read_metrics


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
    with pytest.raises(ValueError, match=r"holds a 'sac' model, not a 's2ac' one: load it with s2ac.SAC.load"):
        S2AC.load(saved)
    assert type(Algorithm.load(saved)) is SAC and type(SAC.load(saved)) is SAC
