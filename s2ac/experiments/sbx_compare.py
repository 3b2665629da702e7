"""CrossQ here against SBX's CrossQ (the reference implementation): same env, seeds, budget and settings.

Each run is one subprocess of :mod:`s2ac.experiments.crossq_runner`: SBX's in the interpreter of a
separate environment with ``sbx-rl`` installed (``sbx_python``; SBX pins its own JAX and brings
PyTorch through Stable-Baselines3, so it is kept apart from this package's environment), ours in this
interpreter. Both are trained, timed and evaluated by the same code (deterministic actions,
``episodes`` episodes, the same reset seeds). Every run writes ``out/<env>/<label>_seed<k>.json``;
a run whose file exists is not run again, so an interrupted comparison continues where it stopped.
``report.md`` and ``summary.json`` cover every run file in ``out`` (so several commands, e.g. other
algorithms at their own settings, add rows to one report) and give, per (label, env): the mean ±
sample standard deviation (``ddof=1``) over seeds of each seed's mean evaluation return, the
per-seed returns, and the wall times of training (construction and compilation included) and
evaluation.

Labels: ``sbx:crossq`` (SBX) and ``s2ac:ALGO`` (this package's ALGO under ``preset``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# NumPy and the report helpers are imported where used: the command line imports this module for
# its options only.

RUNNER = Path(__file__).with_name("crossq_runner.py")
"""The script every run executes."""
DEFAULT_SBX_PYTHON = os.environ.get("S2AC_SBX_PYTHON", ".venv-sbx/bin/python")
"""Interpreter with ``sbx-rl`` installed (environment variable ``S2AC_SBX_PYTHON``)."""


@dataclass(frozen=True)
class SBXCompareConfig:
    """CrossQ vs SBX's CrossQ (and other algorithms of this package) at one budget and seed set."""

    out: Path = Path("results/crossq")
    """Output folder: <env>/<label>_seed<k>.json per run, summary.json, report.md."""
    envs: tuple[str, ...] = ("Pendulum-v1",)
    """Gymnasium env ids."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds (the same integers for both implementations)."""
    steps: int = 5000
    """Env steps per run."""
    episodes: int = 10
    """Deterministic evaluation episodes after training."""
    labels: tuple[str, ...] = ("sbx:crossq", "s2ac:crossq")
    """Runs per (env, seed): ``sbx:crossq`` or ``s2ac:ALGO``."""
    preset: str = "quick"
    """Preset of this package's algorithms (CrossQ's widths, batch and warm-up are set from ``settings``)."""
    learning_starts: int = 1000
    """Uniform random actions and no update for this many env steps, in both implementations."""
    settings: str = ""
    """JSON object overriding the runner's shared settings (crossq_runner.SETTINGS), e.g. '{"batch_size": 256}'."""
    sbx_python: str = DEFAULT_SBX_PYTHON
    """Python of the environment with sbx-rl (default: $S2AC_SBX_PYTHON, else .venv-sbx/bin/python)."""
    timeout_s: float = 3600.0
    """Time limit of one run (a run past it is recorded as failed)."""
    report_only: bool = False
    """Run nothing: write the report from the run files in ``out``."""
    json: bool = False
    """Print the summary as one JSON object."""


# -- running -----------------------------------------------------------------------------


def check_sbx_python(path: str) -> None:
    """Refuse, in one line, an SBX interpreter that is missing or cannot import ``sbx``."""
    exe = shutil.which(path) or (path if Path(path).is_file() else None)
    if exe is None:
        raise FileNotFoundError(
            f"SBX interpreter {path!r} not found: create it with `python3 -m venv .venv-sbx && "
            f".venv-sbx/bin/pip install sbx-rl 'gymnasium[mujoco]'`, or pass --sbx-python"
        )
    probe = subprocess.run([exe, "-c", "import sbx"], capture_output=True, text=True)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"SBX interpreter {path!r} cannot import sbx ({last}); pip install sbx-rl into it")


def parse_runner_output(stdout: str) -> dict[str, Any]:
    """The run record: the last line of ``stdout`` that is a JSON object (libraries may print before it)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "eval_returns" in record:
                return record
    raise ValueError("runner printed no run record (a JSON line with 'eval_returns')")


def run_file(out: Path, env: str, label: str, seed: int) -> Path:
    """Where the record of one run is written."""
    return out / env / f"{label.replace(':', '_')}_seed{seed}.json"


def run_spec(cfg: SBXCompareConfig, label: str, env: str, seed: int) -> tuple[list[str], dict[str, Any]]:
    """Command line and spec of one run (``sbx:crossq`` or ``s2ac:ALGO``)."""
    impl, _, algo = label.partition(":")
    settings = {"learning_starts": cfg.learning_starts, **(json.loads(cfg.settings) if cfg.settings else {})}
    if impl == "s2ac" and algo != "crossq":  # other algorithms keep their own schedule of update rounds
        settings.update(train_freq=0)
    spec = dict(impl=impl, env=env, seed=seed, steps=cfg.steps, episodes=cfg.episodes, settings=settings)
    if impl == "sbx":
        if algo != "crossq":
            raise ValueError(f"label {label!r}: SBX runs only 'sbx:crossq' here")
        python = cfg.sbx_python
    elif impl == "s2ac":
        spec.update(algo=algo, preset=cfg.preset)
        python = sys.executable
    else:
        raise ValueError(f"label {label!r} must be 'sbx:crossq' or 's2ac:ALGO'")
    return [python, str(RUNNER), json.dumps(spec)], spec


def run_one(cfg: SBXCompareConfig, label: str, env: str, seed: int, command: str = "") -> dict[str, Any]:
    """Run (or read back) one (label, env, seed); a failed run's record has ``error`` set. The record
    keeps ``command`` (the comparison's command line) and the dense matmul rate measured just before."""
    from s2ac.experiments.reporting import json_safe
    from s2ac.machine import load_average, matmul_rate

    path = run_file(cfg.out, env, label, seed)
    if path.exists():
        return json.loads(path.read_text())
    argv, spec = run_spec(cfg, label, env, seed)
    child_env = dict(os.environ)
    if spec["impl"] == "s2ac":  # this checkout first, as the parent sees it
        root = str(Path(__file__).resolve().parents[2])
        child_env["PYTHONPATH"] = os.pathsep.join([root, child_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    machine = {"matmul_gflops_per_s": matmul_rate(256, 256), "load_average_1min": load_average()}
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=cfg.timeout_s, env=child_env)
        record = parse_runner_output(done.stdout) if done.returncode == 0 else None
        error = None if record else f"exit {done.returncode}: {(done.stderr.strip().splitlines() or [''])[-1]}"
    except subprocess.TimeoutExpired:
        record, error = None, f"timed out after {cfg.timeout_s:.0f} s"
    if record is None:
        return {"label": label, "env": env, "seed": seed, "error": error, "wall_s": time.perf_counter() - start}
    record.update(label=label, process_wall_s=time.perf_counter() - start, command=command, machine_before=machine)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(record), indent=1))
    return record


def read_records(out: Path) -> list[dict[str, Any]]:
    """Every run record under ``out`` (``out/<env>/*.json``), whichever command wrote it."""
    return [json.loads(p.read_text()) for p in sorted(out.glob("*/*.json"))]


# -- aggregation ---------------------------------------------------------------------------


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; NaN for fewer than two values)."""
    import numpy as np

    x = np.asarray(values, np.float64)
    if x.size == 0:
        return math.nan, math.nan
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else math.nan


def aggregate(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per ``label @ env``: seeds, each seed's mean evaluation return, mean ± std over seeds, wall times."""
    import numpy as np

    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("error") is None:
            groups.setdefault(f"{r['label']} @ {r['env']}", []).append(r)
    out = {}
    for key, runs in sorted(groups.items()):
        runs = sorted(runs, key=lambda r: r["seed"])
        per_seed = [float(np.mean(r["eval_returns"])) for r in runs]
        mean, std = mean_std(per_seed)
        train_s = [float(r["train_wall_s"]) for r in runs]
        out[key] = {
            "label": runs[0]["label"],
            "env": runs[0]["env"],
            "steps": sorted({int(r["steps"]) for r in runs}),
            "seeds": [int(r["seed"]) for r in runs],
            "per_seed_return": per_seed,
            "mean_return": mean,
            "std_return": std,
            "train_wall_s": train_s,
            "mean_train_wall_s": float(np.mean(train_s)),
            "eval_wall_s": [float(r["eval_wall_s"]) for r in runs],
            "episodes": int(len(runs[0]["eval_returns"])),
            "preset": runs[0].get("preset"),
            "settings": runs[0].get("settings", {}),
            "agent_config": (runs[0].get("versions") or {}).get("config"),
            "commands": sorted({r.get("command") or "" for r in runs} - {""}),
            "matmul_gflops_per_s": [(r.get("machine_before") or {}).get("matmul_gflops_per_s") for r in runs],
        }
    return out


def _fmt(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def report_markdown(summary: dict[str, Any]) -> str:
    """``report.md``: the table of :func:`aggregate`, then each group's settings and command, and the machine."""
    from s2ac.experiments.reporting import markdown_table

    rows, notes = [], []
    for key, g in summary["groups"].items():
        per_seed = ", ".join(f"{s}: {_fmt(v)}" for s, v in zip(g["seeds"], g["per_seed_return"]))
        walls = ", ".join(f"{_fmt(w, 0)}" for w in g["train_wall_s"])
        rates = [r for r in g.get("matmul_gflops_per_s", []) if r is not None]
        rate = f"{min(rates):.0f}–{max(rates):.0f}" if rates else "n/a"
        rows.append([g["label"], g["env"], "/".join(map(str, g["steps"])), f"{_fmt(g['mean_return'])} ± "
                     f"{_fmt(g['std_return'])}", per_seed, walls, rate])  # fmt: skip
        preset = f"preset `{g['preset']}`, " if g.get("preset") else ""
        commands = "; ".join(f"`{c}`" for c in g.get("commands", [])) or "n/a"
        config = f"; agent config `{g['agent_config']}`" if g.get("agent_config") else ""
        notes.append(f"* {key}: {preset}settings `{json.dumps(g.get('settings', {}))}`{config}; command {commands}")
    failed = [f"{f['label']} @ {f['env']} seed {f['seed']}: {f['error']}" for f in summary["failed"]]
    machine = summary["machine"]
    lines = [
        "# CrossQ vs SBX's CrossQ",
        "",
        "Evaluation: deterministic episodes after training (10 unless the command says otherwise), the same reset "
        "seeds for every implementation (crossq_runner.eval_seed). Return: mean ± sample std (ddof 1) over seeds of "
        "each seed's mean evaluation return. Training wall time includes construction and compilation; the runs "
        "went one at a time, at nice 10, on a machine shared with other jobs. Matmul: a dense 256 x 256 @ 256 x 256 "
        "float32 matmul's GFLOP/s measured just before each run (range over the runs of the row).",
        "",
        markdown_table(
            ["run", "env", "env steps", "return", "per seed", "train wall s per seed", "matmul GFLOP/s"], rows
        ),  # fmt: skip
        "",
        "Settings and commands (`train_freq` 0: the preset's own rounds of updates; other s2ac algorithms keep their "
        "preset's widths and optimiser, and share only `learning_starts`):",
        "",
        *notes,
        "",
        f"Machine: {machine.get('cpu_model')} ({machine.get('cpu_count')} cores); at report time dense matmul "
        f"{_fmt(machine.get('matmul_gflops_per_s'))} GFLOP/s, 1-min load {machine.get('load_average_1min')}.",
        "",
        f"Versions: {json.dumps(summary['versions'])}",
    ]
    if failed:
        lines += ["", "Failed runs:", ""] + [f"* {f}" for f in failed]
    return "\n".join(lines) + "\n"


def run_sbx_compare(cfg: SBXCompareConfig, command: str = "") -> dict[str, Any]:
    """Run every missing (label, env, seed) one after another, then write summary.json and report.md."""
    import numpy as np

    from s2ac.experiments.reporting import json_safe
    from s2ac.machine import machine_info

    if not cfg.report_only and any(label.startswith("sbx:") for label in cfg.labels):
        check_sbx_python(cfg.sbx_python)
    records = []
    for env in cfg.envs:
        for seed in cfg.seeds:
            for label in cfg.labels:
                path = run_file(cfg.out, env, label, seed)
                if cfg.report_only and not path.exists():
                    continue
                record = run_one(cfg, label, env, seed, command)
                print(f"{label} {env} seed {seed}: " + (record.get("error") or
                      f"return {np.mean(record['eval_returns']):.1f}, train {record['train_wall_s']:.0f} s"),
                      flush=True)  # fmt: skip
                records.append(record)
    failed = [r for r in records if r.get("error") is not None]
    ok = [r for r in read_records(cfg.out) if r.get("error") is None]
    versions: dict[str, Any] = {}
    for r in ok:
        versions.setdefault(r["label"], {k: v for k, v in r.get("versions", {}).items() if k != "config"})
    summary = {
        "command": command,
        "config": json_safe({k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}),
        "groups": aggregate(ok),
        "failed": failed,
        "versions": versions,
        "machine": machine_info(matmul=(256, 256)),
    }
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "summary.json").write_text(json.dumps(json_safe(summary), indent=1))
    (cfg.out / "report.md").write_text(report_markdown(summary))
    return summary
