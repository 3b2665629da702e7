"""The run folder and the host-side record of a run that every checkpoint carries.

A run folder holds ``config.json`` (algorithm, agent config, schedule), ``metrics.jsonl`` and
TensorBoard events (:mod:`s2ac.logger`), ``checkpoints/`` (:mod:`s2ac.checkpoint`) and figures.
Both training paths (:mod:`s2ac.loop` on the host, :mod:`s2ac.jax_loop` in JAX) write this format.

While a run trains, ``run.lock`` (:class:`RunLock`) holds the writer's pid, host, start time and
command, so a second writer is refused instead of silently interleaving with the first. Before
anything is written, :func:`check_run_fits` compares the run's memory needs with the machine's.
The failures a user can meet, and what survives each, are listed in ``docs/failures.md``.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import socket
import sys
import time
import uuid
import warnings
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from s2ac import checkpoint as ckpt
from s2ac import interrupts
from s2ac.agents.common import WORST_CASE_METRICS
from s2ac.config import ADDED_FIELD_DEFAULTS, AgentConfig, TrainConfig, config_to_dict
from s2ac.errors import NotEnoughMemory, RunFolderLocked, TrainingDiverged
from s2ac.logger import read_metrics

RUN_CONFIG_FILE = "config.json"
LOCK_FILE = "run.lock"
CHECKPOINT_DIR = "checkpoints"
# Fields that may differ between a run and its resumption: extending a run, and settings that only
# change how the same values are computed (so a run made before such a field existed still resumes).
RESUMABLE_CHANGES = {"total_steps", "remat_keep_matmuls"}


@dataclass
class LoopCounters:
    """Host-side loop state saved in every checkpoint (JSON-serialisable)."""

    env_steps: int = 0
    episodes: int = 0
    updates: int = 0
    last_return: float | None = None


@dataclass
class RunRecord:
    """The host-side bookkeeping of one run that a checkpoint carries: loop counters, the host RNG
    (warm-up actions, replay sampling), the last 100 episodes, and the training metrics summed
    since the last log row. :class:`Trainer` keeps one; a lockstep group keeps one per member."""

    counters: LoopCounters
    rng: np.random.Generator
    recent_returns: deque = field(default_factory=lambda: deque(maxlen=100))
    recent_lengths: deque = field(default_factory=lambda: deque(maxlen=100))
    metric_sums: dict = field(default_factory=dict)
    metric_count: int = 0
    metric_maxima: dict = field(default_factory=dict)  # WORST_CASE_METRICS: a bound must hold at every round

    def state_dict(self) -> dict:
        """JSON-ready trainer state of a checkpoint."""
        return {
            "counters": dict(self.counters.__dict__),
            "rng_state": self.rng.bit_generator.state,
            "recent_returns": list(self.recent_returns),
            "recent_lengths": list(self.recent_lengths),
            "metric_sums": dict(self.metric_sums),
            "metric_count": self.metric_count,
            "metric_maxima": dict(self.metric_maxima),
        }

    def load_state_dict(self, saved: dict) -> None:
        """Restore from :meth:`state_dict` in place (the counters and RNG objects are kept)."""
        known = {f.name for f in dataclasses.fields(LoopCounters)}  # older checkpoints had more counters
        self.counters.__dict__.update(
            LoopCounters(**{k: v for k, v in saved["counters"].items() if k in known}).__dict__
        )
        self.rng.bit_generator.state = saved["rng_state"]
        self.recent_returns.clear()
        self.recent_returns.extend(saved["recent_returns"])
        self.recent_lengths.clear()
        self.recent_lengths.extend(saved["recent_lengths"])
        self.metric_sums, self.metric_count = dict(saved["metric_sums"]), saved["metric_count"]
        self.metric_maxima = dict(saved.get("metric_maxima", {}))

    def add_metrics(self, metrics: dict[str, float]) -> None:
        """Add one training round's (finite) metrics to the sums of the next log row."""
        for key, value in metrics.items():
            self.metric_sums[key] = self.metric_sums.get(key, 0.0) + value
            if key in WORST_CASE_METRICS:
                self.metric_maxima[key] = max(self.metric_maxima.get(key, -math.inf), value)
        self.metric_count += 1

    def end_episode(self, episode_return: float, length: int) -> None:
        self.recent_returns.append(episode_return)
        self.recent_lengths.append(length)
        self.counters.episodes += 1
        self.counters.last_return = episode_return

    def log_row(self, fps: float, updates_per_s: float, extra: dict[str, float]) -> dict[str, float]:
        """The metric row (SB3 key names) of this log point; resets the metric sums."""
        row = {f"train/{k}": v / self.metric_count for k, v in self.metric_sums.items()} if self.metric_count else {}
        row.update({f"train/{k}_max": v for k, v in self.metric_maxima.items()})
        if self.recent_returns:
            row["rollout/ep_rew_mean"] = float(np.mean(self.recent_returns))
            row["rollout/ep_len_mean"] = float(np.mean(self.recent_lengths))
        row.update(
            {
                "train/n_updates": self.counters.updates,
                "time/episodes": self.counters.episodes,
                "time/fps": fps,
                "time/updates_per_s": updates_per_s,
            }
        )
        row.update(extra)
        self.metric_sums, self.metric_count, self.metric_maxima = {}, 0, {}
        return row


def first_non_finite(metrics: dict[str, float]) -> tuple[str, float] | None:
    """``(key, value)`` of the first non-finite metric, or None."""
    return next(((k, v) for k, v in metrics.items() if not math.isfinite(v)), None)


def run_config_dict(algo: str, agent_config: AgentConfig, train_config: TrainConfig) -> dict:
    """The ``config.json`` of a run: its algorithm, agent config and schedule."""
    return {"algo": algo, "agent": config_to_dict(agent_config), "train": config_to_dict(train_config)}


def config_differences(saved: dict, current: dict) -> list[str]:
    """``section.field: old -> new`` for every field that differs (:data:`RESUMABLE_CHANGES` aside)."""
    diffs = []
    if saved.get("algo") != current["algo"]:
        diffs.append(f"algo: {saved.get('algo')!r} -> {current['algo']!r}")
    for section in ("agent", "train"):
        old, new = saved.get(section, {}), current[section]
        for key in sorted(set(old) | set(new)):
            if key in RESUMABLE_CHANGES:
                continue
            a, b = old.get(key, ADDED_FIELD_DEFAULTS.get(key)), new.get(key)
            if isinstance(a, list):
                a = tuple(a)
            if isinstance(b, list):
                b = tuple(b)
            if a != b:
                diffs.append(f"{section}.{key}: {a!r} -> {b!r}")
    return diffs


RUN_LEFTOVERS = (LOCK_FILE, "metrics.jsonl", "events.out.tfevents.")
"""What a run can leave before its ``config.json`` (a lock, metric rows, TensorBoard events): a folder
holding only these is a run folder of ours."""


def read_run_config(run_dir: Path) -> dict:
    """The ``config.json`` of run folder ``run_dir``; :class:`CheckpointError` naming the file when it is
    not a JSON object of a run (a torn or edited file)."""
    cfg_path = run_dir / RUN_CONFIG_FILE
    try:
        saved = json.loads(cfg_path.read_text())
    except ValueError as err:
        raise ckpt.CheckpointError(f"{cfg_path} is not valid JSON ({err}); restore it or start a new run") from err
    if not isinstance(saved, dict) or not {"algo", "agent", "train"} <= set(saved):
        raise ckpt.CheckpointError(f"{cfg_path} is not a run's config (no algo, agent and train entries)")
    return saved


def _is_ours(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run of ours: a run's ``config.json``, a ``checkpoints`` folder, or only
    :data:`RUN_LEFTOVERS`."""
    if (run_dir / CHECKPOINT_DIR).is_dir():
        return True
    if all(p.name.startswith(RUN_LEFTOVERS) for p in run_dir.iterdir()):
        return True
    try:
        read_run_config(run_dir)
        return True
    except (OSError, ckpt.CheckpointError):
        return False


def _listing(entries: list[str], n: int = 4) -> str:
    more = f", and {len(entries) - n} more" if len(entries) > n else ""
    return ", ".join(entries[:n]) + more


def check_run_folder(run_dir: Path, current: dict, resume: bool) -> None:
    """Refuse, before anything is written, a ``run_dir`` that is not a place for the run of config
    ``current``. It must be a new path, an empty folder, or a run folder of ours: resuming needs one
    made with the same config (``total_steps`` aside; the differing fields are listed); a fresh run
    refuses one that holds checkpoints (a run stopped before its first checkpoint starts again). The
    current folder, and a folder holding anything else, are refused naming what is there."""
    run_dir = Path(run_dir)
    if str(run_dir) in ("", ".") or (run_dir.exists() and run_dir.resolve() == Path.cwd().resolve()):
        raise FileExistsError(
            f"--out {str(run_dir)!r} is the current folder; a run writes a folder of its own: name a new one "
            "(e.g. --out runs/NAME)"
        )
    cfg_path = run_dir / RUN_CONFIG_FILE
    if resume:
        if not cfg_path.is_file():
            raise FileNotFoundError(f"--resume: no run to resume in {run_dir} ({RUN_CONFIG_FILE} missing)")
        diffs = config_differences(read_run_config(run_dir), current)
        if diffs:
            raise ckpt.CheckpointError(
                f"cannot resume {run_dir}: its checkpoint was made with another config: "
                + "; ".join(diffs)
                + "; resume with the run's own settings, or start a new run with another --out"
            )
        return
    if not run_dir.is_dir():
        return  # a new path (a file in the way is the lock's EEXIST, naming it)
    entries = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(f".{LOCK_FILE}."))
    if not entries:
        return
    if not _is_ours(run_dir):
        raise FileExistsError(
            f"--out {run_dir} is not empty and holds no run ({_listing(entries)}); a run writes only into a new or "
            "empty folder, or continues a run folder (--resume): choose another --out"
        )
    if ckpt.list_checkpoints(run_dir / CHECKPOINT_DIR):
        raise FileExistsError(
            f"{run_dir} already holds a run with checkpoints; continue it (s2ac train --resume, or S2AC.load(folder)"
            ".learn(...)) or choose another folder (--out / run_dir)"
        )


def check_resume_length(run_dir: Path, steps: int, total_steps: int) -> None:
    """Refuse to resume a run that already has more env steps than ``total_steps`` (it cannot shrink)."""
    if steps > total_steps:
        raise ValueError(f"{run_dir} already has {steps} steps; --total-steps must be ≥ {steps}")


def write_run_config(run_dir: Path, current: dict) -> None:
    """Write (atomically) the ``config.json`` of ``run_dir``: once the command is going to run."""
    interrupts.raise_pending()  # a signal during start-up: nothing is written
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt.atomic_write_text(run_dir / RUN_CONFIG_FILE, json.dumps(current, indent=2))


def prepare_run_dir(run_dir: Path, current: dict, resume: bool) -> None:
    """:func:`check_run_folder`, then :func:`write_run_config`. The caller holds the folder's :class:`RunLock`."""
    check_run_folder(run_dir, current, resume)
    write_run_config(run_dir, current)


# -- a run folder's checkpoints ------------------------------------------


def _stopped_before_first_checkpoint(run_dir: Path) -> str:
    """Where a run without checkpoints stopped, from its config and metric rows (best effort)."""
    details = []
    try:
        freq = json.loads((run_dir / RUN_CONFIG_FILE).read_text())["train"]["checkpoint_freq"]
        if freq:
            details.append(f"the first was due at env step {freq}")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rows = read_metrics(run_dir)
        except (OSError, ValueError):
            rows = []
    if rows:
        details.append(f"its last metric row is at env step {rows[-1]['step']}")
    return f" ({'; '.join(details)})" if details else ""


def run_checkpoint(path: str | Path, purpose: str = "resume") -> Path:
    """The newest checkpoint of run folder ``path`` that verifies, for ``purpose`` ``"resume"`` or
    ``"load"``; a corrupt newer one is skipped with a warning. Raises :class:`CheckpointError` in one
    line naming ``path/checkpoints`` when the run has no checkpoint yet (it stopped, or is still
    running, before its first one) or when every checkpoint fails verification (with the newest's
    reason)."""
    run_dir = Path(path)
    root = run_dir / CHECKPOINT_DIR
    found, failures = ckpt.find_valid_checkpoint(root)
    if found is None and not failures:
        if purpose == "resume":
            raise ckpt.CheckpointError(
                f"cannot resume {run_dir}: {root} holds no checkpoint yet: the run stopped before its first "
                f"checkpoint{_stopped_before_first_checkpoint(run_dir)}; start it again without --resume"
            )
        raise ckpt.CheckpointError(
            f"cannot load {run_dir}: {root} holds no checkpoint yet (the run has not reached its first "
            f"checkpoint{_stopped_before_first_checkpoint(run_dir)}); wait for one, or resume or restart the run"
        )
    if found is None:
        what = "resume" if purpose == "resume" else "load"
        then = "; move it aside to start the run again without --resume" if purpose == "resume" else ""
        raise ckpt.CheckpointError(
            f"cannot {what} {run_dir}: all {len(failures)} checkpoint(s) under {root} failed verification "
            f"(newest: {failures[0]}){then}"
        )
    for reason in failures:
        warnings.warn(f"{reason}; using the older {found.name}", RuntimeWarning, stacklevel=2)
    return found


def check_transition(label: str, step: int, obs: np.ndarray, reward: float, ckpt_root: Path | None) -> None:
    """Raise :class:`TrainingDiverged` when an env returned a non-finite observation or reward at env
    step ``step``, naming the env and the last good checkpoint (which, like the rows written, is kept)."""
    bad = []
    if not math.isfinite(float(reward)):
        bad.append(f"reward {float(reward)}")
    if not np.all(np.isfinite(obs)):
        bad.append(f"observation entries {np.asarray(obs)[~np.isfinite(obs)][:4].tolist()}")
    if bad:
        raise TrainingDiverged(
            f"env {label} returned a non-finite {' and '.join(bad)} at env step {step}; training stopped; "
            f"last good checkpoint: {last_good_checkpoint(ckpt_root)}"
        )


def last_good_checkpoint(ckpt_root: Path | None) -> str:
    """The newest valid checkpoint under ``ckpt_root``, as a divergence message names it (``None``: a
    run that writes no checkpoints)."""
    if ckpt_root is None:
        return "none (this run writes no checkpoints)"
    last = ckpt.latest_valid_checkpoint(ckpt_root, quiet=True)
    return str(last) if last is not None else f"none yet under {ckpt_root}"


# -- memory ----------------------------------------------------------------------------------

FLOAT_BYTES = 4
PARTICLE_FIELDS = (
    "n_particles",
    "n_value_particles",
    "n_svgd_particles",
    "n_fixed_particles",
    "n_amortizer_samples",
    "n_act_candidates",
)
"""Agent-config fields that multiply the per-state work of an update (samples or particles per state)."""


def replay_capacity(cfg: TrainConfig, open_ended: bool = False) -> int:
    """Transitions a run's replay buffer holds: ``min(buffer_size, total_steps)`` (:class:`ReplayBuffer`),
    or ``buffer_size`` for an ``open_ended`` run (one that will be extended)."""
    return cfg.buffer_size if open_ended else min(cfg.buffer_size, cfg.total_steps)


def replay_bytes(cfg: TrainConfig, obs_dim: int, act_dim: int, open_ended: bool = False) -> int:
    """Bytes of the float32 replay buffer: obs, action, reward, next obs, terminated per transition."""
    return replay_capacity(cfg, open_ended) * (2 * obs_dim + act_dim + 2) * FLOAT_BYTES


def update_bytes(agent_config: AgentConfig, act_dim: int) -> tuple[int, str]:
    """A rough lower bound on the activations of one update and the field that scales it: every state of
    a batch carries its particles (the largest of :data:`PARTICLE_FIELDS`) through both critics' and the
    actor's hidden layers, once per SVGD step plus once, forward and backward; with particles, also
    the pairwise kernel (batch x particles^2) per step."""
    counts = {name: getattr(agent_config, name, None) for name in PARTICLE_FIELDS}
    counts = {k: v for k, v in counts.items() if isinstance(v, int) and v > 0}
    field_name = max(counts, key=counts.get) if counts else "batch_size"
    particles = counts.get(field_name, 1)
    steps = int(getattr(agent_config, "svgd_steps", 0) or 0) + 1
    widths = 2 * sum(agent_config.critic_hidden) + sum(agent_config.actor_hidden) + act_dim
    batch = agent_config.batch_size
    per_pass = batch * particles * widths + (batch * particles * particles if particles > 1 else 0)
    return 2 * steps * per_pass * FLOAT_BYTES, field_name


def available_memory() -> tuple[int | None, str]:
    """Host memory available now (``MemAvailable`` of /proc/meminfo, else physical memory) and its source."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available host memory"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "physical host memory"
    except (OSError, ValueError, AttributeError):
        return None, "host memory"


def device_memory() -> tuple[int | None, str]:
    """Memory of the accelerator that runs the update, or ``(None, ...)`` on the CPU (host memory)."""
    import jax

    try:
        device = jax.devices()[0]
        stats = device.memory_stats() if device.platform != "cpu" else None
    except Exception:  # backends differ in what they report; no estimate is better than a crash
        stats = None
    if not stats or not stats.get("bytes_limit"):
        return None, "host memory"
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)), f"free memory of {device.device_kind}"


def _gib(n: float) -> str:
    gib = n / 2**30
    return f"{gib:.2f} GiB" if gib < 10 else f"{gib:,.0f} GiB"


def check_run_fits(
    agent_config: AgentConfig,
    train_configs: Sequence[TrainConfig],
    obs_dim: int,
    act_dim: int,
    open_ended: bool = False,
) -> None:
    """Refuse, before anything is allocated or written, a run whose batch exceeds its replay buffer
    (``ValueError``) or whose estimated memory exceeds what is available (:class:`NotEnoughMemory`, naming
    the field and the estimate): the replay buffers (:func:`replay_bytes`) in host memory, the updates'
    activations (:func:`update_bytes`, once per member) in the accelerator's or, on the CPU, host memory.
    ``open_ended``: the buffer holds ``buffer_size`` transitions whatever ``total_steps`` (a run that
    will be extended)."""
    cfg = train_configs[0]
    capacity = replay_capacity(cfg, open_ended)
    if agent_config.batch_size > capacity:
        raise ValueError(
            f"agent.batch_size={agent_config.batch_size} is larger than the replay buffer, which holds "
            f"{capacity} transitions (train.buffer_size={cfg.buffer_size}, total_steps={cfg.total_steps}); "
            "lower batch_size or raise buffer_size"
        )
    n = len(train_configs)
    buffer_need = n * replay_bytes(cfg, obs_dim, act_dim, open_ended)
    update_need, field_name = update_bytes(agent_config, act_dim)
    update_need *= n
    host, host_source = available_memory()
    device, device_source = device_memory()
    members = f" for {n} runs" if n > 1 else ""
    if host is not None and buffer_need > host:
        raise NotEnoughMemory(
            f"not enough memory: the replay buffer{members} needs about {_gib(buffer_need)} "
            f"(train.buffer_size={cfg.buffer_size}, total_steps={cfg.total_steps}: {capacity} transitions of "
            f"{2 * obs_dim + act_dim + 2} floats), but {host_source} is {_gib(host)}; lower train.buffer_size"
        )
    if device is not None:
        budget, source = device, device_source
    else:  # on the CPU the update's activations share host memory with the buffer
        budget, source = (host - buffer_need if host is not None else None), host_source
    if budget is not None and update_need > budget:
        value = getattr(agent_config, field_name)
        raise NotEnoughMemory(
            f"not enough memory: one update{members} needs at least {_gib(update_need)} of activations "
            f"(agent.{field_name}={value}, agent.batch_size={agent_config.batch_size}), but {source} is "
            f"{_gib(max(budget, 0))}; lower agent.{field_name} or agent.batch_size"
        )


# -- the lock of a run folder ----------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _read_lock(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _release_lock_file(path: str, token: str, created_dir: str | None) -> None:
    """Remove the lock file at ``path`` if it still holds ``token`` (and a folder the lock created, if
    the run left it empty). Module-level so a finalizer can call it without keeping the lock alive."""
    lock = Path(path)
    holder = _read_lock(lock)
    if holder is not None and holder.get("token") == token:
        try:
            lock.unlink()
        except FileNotFoundError:
            pass
    if created_dir is not None:
        try:
            os.rmdir(created_dir)  # only succeeds while empty: a start-up that wrote nothing leaves nothing
        except OSError:
            pass


class RunLock:
    """An exclusive lock on a run folder: ``run.lock`` holds the holder's pid, host, start time and
    command, created atomically (a complete file is hard-linked into place, so it never exists half
    written; where links are not supported, ``O_CREAT | O_EXCL``). A second writer gets
    :class:`RunFolderLocked` naming the holder; a lock left by a dead process of this host is taken over
    with a warning (renamed away atomically, so of two processes taking it over one wins, then
    re-checked). Use as a context manager or with :meth:`acquire` / :meth:`release`; a lock never
    released is released when the object is collected or the interpreter exits."""

    def __init__(self, run_dir: str | Path, command: str | None = None):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.command = command if command is not None else " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
        self.token: str | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def held(self) -> bool:
        return self.token is not None

    def acquire(self) -> RunLock:
        """Take the lock (a no-op while this object holds it); creates the run folder if needed."""
        if self.held:
            return self
        created = None if self.run_dir.exists() else str(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": self.command,
            "token": token,
        }
        for _ in range(5):  # each pass either takes the lock, raises, or removed a stale one
            if self._create(record):
                self.token = token
                self._finalizer = weakref.finalize(self, _release_lock_file, str(self.path), token, created)
                return self
            holder = _read_lock(self.path)
            if holder is None:  # released in between
                continue
            self._take_over_or_raise(holder)
        raise RunFolderLocked(f"{self.run_dir}: could not take {self.path}; it keeps changing hands")

    def _create(self, record: dict) -> bool:
        text = json.dumps(record)
        tmp = self.run_dir / f".{LOCK_FILE}.{record['pid']}.{record['token'][:8]}"
        tmp.write_text(text)
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError as err:  # a filesystem without hard links
            if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def check_free(self) -> None:
        """Raise :class:`RunFolderLocked` if a live process holds the lock (read-only: nothing is taken)."""
        holder = _read_lock(self.path) if self.path.is_file() else None
        if holder is not None:
            self._raise_unless_stale(holder)

    def _raise_unless_stale(self, holder: dict) -> None:
        pid, host = holder.get("pid"), holder.get("host")
        here = host == socket.gethostname()
        if not (here and isinstance(pid, int) and not _pid_alive(pid)):
            if not holder:
                raise RunFolderLocked(
                    f"{self.run_dir} is locked by an unreadable {self.path} (a writer starting up?); if no process "
                    f"writes the run, delete {self.path}"
                )
            who = f"pid {pid} on {host}" + (
                " (another training loop of this process)" if here and pid == os.getpid() else ""
            )
            raise RunFolderLocked(
                f"{self.run_dir} is in use by {who} (since {holder.get('started')}: {holder.get('command')}); wait "
                f"for it to finish or choose another --out; if that process is gone, delete {self.path}"
            )

    def _take_over_or_raise(self, holder: dict) -> None:
        self._raise_unless_stale(holder)
        pid, host = holder.get("pid"), holder.get("host")
        aside = self.path.with_name(f".{LOCK_FILE}.stale-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:  # another process took it over first
            return
        if _read_lock(aside) != holder:  # it changed hands before our rename: put the live lock back
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            return
        aside.unlink(missing_ok=True)
        warnings.warn(
            f"{self.run_dir}: took over the lock of pid {pid} on {host} (started {holder.get('started')}), "
            "which is no longer running",
            RuntimeWarning,
            stacklevel=4,
        )

    def release(self) -> None:
        """Give the lock up (a no-op when not held)."""
        if self._finalizer is not None:
            self._finalizer()  # calls _release_lock_file once
        self.token, self._finalizer = None, None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class RunLocks:
    """The :class:`RunLock` of every folder of a training loop, taken in order and released together."""

    def __init__(self, run_dirs: Iterable[str | Path]):
        self.locks = [RunLock(d) for d in run_dirs]

    def acquire(self) -> RunLocks:
        try:
            for lock in self.locks:
                lock.acquire()
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        for lock in self.locks:
            lock.release()

    def release_on_error(self):
        """A context manager that releases the locks when its block raises (and re-raises)."""
        return _ReleaseOnError(self)

    def __enter__(self) -> RunLocks:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class _ReleaseOnError:
    def __init__(self, locks: RunLocks):
        self.locks = locks

    def __enter__(self) -> RunLocks:
        return self.locks

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:
            self.locks.release()


__all__ = [
    "RUN_CONFIG_FILE",
    "LOCK_FILE",
    "RESUMABLE_CHANGES",
    "LoopCounters",
    "NotEnoughMemory",
    "RunFolderLocked",
    "RunLock",
    "RunLocks",
    "RunRecord",
    "TrainingDiverged",
    "check_resume_length",
    "check_run_fits",
    "check_run_folder",
    "check_transition",
    "config_differences",
    "first_non_finite",
    "last_good_checkpoint",
    "prepare_run_dir",
    "read_run_config",
    "run_checkpoint",
    "run_config_dict",
    "write_run_config",
]
