"""Optional extras: without Ray (``s2ac[sweep]``) or distrax (``s2ac[nf]``) the rest of s2ac works, and
what needs them fails with one line naming the ``pip install``.

A missing package is simulated by a ``None`` entry in ``sys.modules`` (import then raises
``ModuleNotFoundError``), in a subprocess so that this test process keeps its real modules.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COMMON = """
import contextlib, io, json, sys
sys.modules[{missing!r}] = None
import numpy as np
import s2ac
from s2ac.cli import main
from s2ac.extras import MissingExtraError

def cli(*argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue().strip().splitlines()

model = s2ac.SAC("Pendulum-v1", seed=0)
action, _ = model.predict(np.zeros(3, np.float32), deterministic=True)
out = {{"sac_action_shape": list(np.shape(action))}}
"""

NO_DISTRAX = """
try:
    s2ac.SACNF("Pendulum-v1")
except MissingExtraError as err:
    out["api"] = [str(err), isinstance(err, ImportError)]
from s2ac.agents import make_agent_config
try:
    make_agent_config("sac-nf", "quick", "Pendulum-v1")
except ImportError as err:
    out["config"] = str(err)
out["train"] = cli("train", "--algo", "sac-nf", "--env", "Pendulum-v1", "--out", {out!r})
out["sweep"] = cli("sweep", "--algos", "sac-nf", "--envs", "Pendulum-v1", "--lockstep", "--out", {out!r})
print(json.dumps(out))
"""

NO_RAY = """
out["sweep"] = cli("sweep", "--algos", "sac", "--envs", "Pendulum-v1", "--out", {out!r})
out["mujoco"] = cli("reproduce", "mujoco", "--envs", "Hopper-v5", "--algos", "sac", "--steps", "10", "--out", {out!r})
print(json.dumps(out))
"""


def run_without(missing: str, body: str, tmp_path: Path) -> dict:
    script = COMMON.format(missing=missing) + body.format(out=str(tmp_path / "out"))
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_without_distrax_other_algorithms_work_and_sac_nf_names_the_extra(tmp_path):
    out = run_without("distrax", NO_DISTRAX, tmp_path)
    assert out["sac_action_shape"] == [1]
    message = "algorithm 'sac-nf' needs distrax, which is not installed: pip install 's2ac[nf]'"
    assert out["api"] == [message, True]
    assert out["config"] == message
    for command in ("train", "sweep"):
        code, lines = out[command]
        assert code == 2 and lines == [f"error: {message}"], (command, lines)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_without_ray_sweeps_name_the_extra_and_training_works(tmp_path):
    out = run_without("ray", NO_RAY, tmp_path)
    assert out["sac_action_shape"] == [1]
    for command in ("sweep", "mujoco"):
        code, lines = out[command]
        assert code == 2 and len(lines) == 1, (command, lines)
        expected = "error: s2ac sweep needs Ray Tune, which is not installed: pip install 's2ac[sweep]'"
        assert lines[0].startswith(expected)
        assert "--lockstep" in lines[0]
