"""Metrics sinks: JSONL (for scripts) and TensorBoard (for people), plus the progress bar."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

METRICS_FILE = "metrics.jsonl"


class MetricLogger:
    """Append metric rows ``{"step": n, key: value, ...}`` to ``metrics.jsonl`` and TensorBoard.

    On resume, rows after the checkpoint's step are dropped (they will be written again,
    identically; a torn last line left by a crash goes with them) and TensorBoard purges events
    after that step. Each row is one ``write`` of a whole line, flushed, so a crash leaves at most
    one torn line, at the end. A failed write (a full disk) raises an ``OSError`` naming the file.
    """

    def __init__(self, run_dir: Path, resume_step: int | None = None, tensorboard: bool = True):
        self.path = Path(run_dir) / METRICS_FILE
        if resume_step is not None and self.path.exists():
            kept = [row for row in read_metrics(run_dir) if row["step"] <= resume_step]
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(json.dumps(row) + "\n" for row in kept))
            os.replace(tmp, self.path)  # the old rows stay whole until the new file is complete
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self._fh = open(self.path, "a")
        self._write_failed = False
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=resume_step)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": int(step)}
        row.update({k: (float(v) if v is not None else None) for k, v in metrics.items()})
        try:
            self._fh.write(json.dumps(row) + "\n")
            self._fh.flush()
        except OSError as err:
            self._write_failed = True
            if err.filename is not None or err.errno is None:
                raise
            raise type(err)(err.errno, err.strerror or os.strerror(err.errno), str(self.path)) from err
        if self._tb is not None:
            for key, value in metrics.items():
                if value is not None and math.isfinite(float(value)):
                    self._tb.add_scalar(key, float(value), int(step))

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError:
            if not self._write_failed:  # after a failed write, that error is the one to report
                raise
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: Path) -> list[dict]:
    """All rows of a run's ``metrics.jsonl``. A torn last line (a crash or a full disk mid-write) is
    dropped with a warning naming the file; an unreadable line before the last is an error naming
    the file and the line."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    lines = [(i + 1, line) for i, line in enumerate(path.read_text().splitlines()) if line.strip()]
    rows = []
    for n, (number, line) in enumerate(lines):
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or "step" not in row:
                raise ValueError("not a metric row")
        except ValueError as err:
            if n == len(lines) - 1:
                warnings.warn(f"{path}: dropped a torn last line {number} ({err})", RuntimeWarning, stacklevel=2)
                break
            raise ValueError(f"{path}: line {number} is not a metric row ({err}); the file is damaged") from err
        rows.append(row)
    return rows


def make_progress(enabled: bool = True) -> Progress:
    """A rich progress bar showing steps, steps/s and the latest return."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:>7.1f} steps/s"),
        TextColumn("return {task.fields[ret]}"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )
