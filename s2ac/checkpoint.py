"""Atomic checkpoints: agent state (flax msgpack), replay buffer (npz), trainer state (JSON).

Layout of a run folder::

    run/checkpoints/ckpt-000012000/{state.msgpack, replay.npz, trainer.json, manifest.json}
    run/checkpoints/latest          # name of the newest complete checkpoint

A checkpoint is written into a temporary folder, fsynced, then renamed; ``latest`` is
replaced atomically afterwards. A crash at any point leaves the previous checkpoint
intact. ``manifest.json`` holds a SHA-256 per file, so corruption is detected on load.
A temporary folder's name carries its writer's pid, so pruning removes only the leftovers of
writers that are gone (the run folder's lock, :class:`s2ac.runs.RunLock`, keeps out live ones).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from flax import serialization

from s2ac.errors import CheckpointError

STATE_FILE = "state.msgpack"
REPLAY_FILE = "replay.npz"
TRAINER_FILE = "trainer.json"
MANIFEST_FILE = "manifest.json"
LATEST = "latest"
CHECKPOINT_FILES = (STATE_FILE, REPLAY_FILE, TRAINER_FILE)
"""Every file a checkpoint holds besides its manifest; a manifest must list each of them."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Replace ``path`` by what ``write(fh)`` writes, in one rename of a fsynced temporary file in the
    same folder, so a reader (or a crash) sees the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the file it replaces was an ordinary one
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write` of ``text`` (UTF-8)."""
    atomic_write(path, lambda fh: fh.write(text.encode()))


TMP_MARK = ".tmp-"
STALE_AGE_S = 3600.0
"""A temporary folder whose name carries no pid (an earlier version's) is a leftover after this long."""


def _tmp_prefix(name: str) -> str:
    return f".{name}{TMP_MARK}{os.getpid()}-"


def _tmp_is_stale(path: Path) -> bool:
    """Whether temporary folder ``path`` is a leftover: not this process's and its writer is gone."""
    tail = path.name.split(TMP_MARK, 1)[-1]
    pid_text = tail.split("-", 1)[0]
    if pid_text.isdigit():
        pid = int(pid_text)
        if pid == os.getpid():
            return False  # ours, being written right now (a finished one has been renamed or removed)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    try:
        return time.time() - path.stat().st_mtime > STALE_AGE_S
    except FileNotFoundError:
        return False


def _with_path(err: OSError, path: Path) -> OSError:
    """``err`` naming ``path`` when the OS did not (a failed write or flush names no file)."""
    if err.filename is not None or err.errno is None:
        return err
    return type(err)(err.errno, err.strerror or os.strerror(err.errno), str(path))


def checkpoint_name(step: int) -> str:
    return f"ckpt-{step:09d}"


def save_checkpoint(
    ckpt_root: Path, step: int, agent_state: Any, trainer_state: dict, replay_saver, keep: int = 2
) -> Path:
    """Write a complete checkpoint for ``step`` atomically; keep the newest ``keep``.

    ``replay_saver(path)`` writes the replay buffer (so this module stays buffer-agnostic).
    """
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / checkpoint_name(step)
    tmp = Path(tempfile.mkdtemp(dir=ckpt_root, prefix=_tmp_prefix(final.name)))
    old = None
    try:
        (tmp / STATE_FILE).write_bytes(serialization.to_bytes(agent_state))
        replay_saver(tmp / REPLAY_FILE)
        (tmp / TRAINER_FILE).write_text(json.dumps(trainer_state))
        files = CHECKPOINT_FILES
        for name in files:
            _fsync_file(tmp / name)
        manifest = {"step": step, "sha256": {name: _sha256(tmp / name) for name in files}}
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest))
        _fsync_file(tmp / MANIFEST_FILE)
        if final.exists():
            # A re-save of the same step after a resume: the old one is renamed aside (a temporary name,
            # so a crash here leaves it to pruning) and removed only once the new one is in place.
            old = Path(tempfile.mkdtemp(dir=ckpt_root, prefix=_tmp_prefix(final.name)))
            os.replace(final, old)
        os.replace(tmp, final)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not final.exists():
            os.replace(old, final)
        raise _with_path(err, tmp) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not final.exists():
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    atomic_write_text(ckpt_root / LATEST, final.name)
    _prune(ckpt_root, keep)
    return final


def _prune(ckpt_root: Path, keep: int) -> None:
    """Keep the newest ``keep`` checkpoints; remove temporary folders whose writers are gone."""
    done = sorted(p for p in ckpt_root.glob("ckpt-*") if p.is_dir() and TMP_MARK not in p.name)
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in ckpt_root.glob(f".ckpt-*{TMP_MARK}*"):  # leftovers of a crash mid-write
        if _tmp_is_stale(stale):
            shutil.rmtree(stale, ignore_errors=True)


def verify_checkpoint(path: Path) -> dict:
    """Check every file against the manifest; return the manifest or raise :class:`CheckpointError`."""
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointError(f"checkpoint {path} is incomplete: no {MANIFEST_FILE}")
    try:
        manifest = json.loads(manifest_path.read_text())
        hashes = manifest["sha256"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint {path} is corrupt: unreadable {MANIFEST_FILE} ({err})") from err
    unlisted = [name for name in CHECKPOINT_FILES if not isinstance(hashes, dict) or name not in hashes]
    if unlisted:  # an empty or partial manifest would let a garbage file pass unchecked
        raise CheckpointError(f"checkpoint {path} is corrupt: {MANIFEST_FILE} does not list {', '.join(unlisted)}")
    for name, expected in hashes.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint {path} is corrupt: {name} is missing")
        if _sha256(file) != expected:
            raise CheckpointError(f"checkpoint {path} is corrupt: {name} does not match its SHA-256 in the manifest")
    return manifest


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoint folders, newest first."""
    if not ckpt_root.is_dir():
        return []
    return sorted((p for p in ckpt_root.glob("ckpt-*") if p.is_dir() and ".tmp-" not in p.name), reverse=True)


def find_valid_checkpoint(ckpt_root: Path) -> tuple[Path | None, list[str]]:
    """``(newest checkpoint that verifies or None, why each newer one failed, newest first)``; the
    checkpoint ``latest`` names is tried first."""
    candidates = list_checkpoints(ckpt_root)
    latest_file = ckpt_root / LATEST
    if latest_file.is_file():
        named = ckpt_root / latest_file.read_text().strip()
        if named in candidates:
            candidates.remove(named)
            candidates.insert(0, named)
    failures = []
    for path in candidates:
        try:
            verify_checkpoint(path)
            return path, failures
        except CheckpointError as err:
            failures.append(str(err))
    return None, failures


def latest_valid_checkpoint(ckpt_root: Path, quiet: bool = False) -> Path | None:
    """The newest checkpoint that verifies; a corrupt newer one is reported (unless ``quiet``) and skipped."""
    found, failures = find_valid_checkpoint(ckpt_root)
    if not quiet:
        for reason in failures:
            warnings.warn(f"{reason}; trying an older checkpoint", stacklevel=2)
    return found


LEGACY_STATE_KEYS: dict[str, str] = {"actor_params": "init_params", "actor_opt": "init_opt"}
"""Top-level agent-state fields renamed since earlier versions, old name -> new name: S²AC's q0
(initial-distribution) network was stored as ``actor_params`` / ``actor_opt``. A rename applies only
where the template has the new field and not the old one (SQL and SAC keep ``actor_*``)."""


ADDED_STATE_KEYS: tuple[str, ...] = ("log_alpha", "alpha_opt")
"""Top-level agent-state fields added since earlier versions: S²AC's temperature. A checkpoint without
them takes the template's (a fresh state's ``log(alpha)``, which is what a fixed alpha means)."""


def upgrade_state_dict(state_dict: dict, template: Any) -> dict:
    """``state_dict`` with the :data:`LEGACY_STATE_KEYS` renamed where ``template`` expects the new names,
    and the :data:`ADDED_STATE_KEYS` it lacks taken from ``template``."""
    expected = serialization.to_state_dict(template)
    if not isinstance(state_dict, dict) or not isinstance(expected, dict):
        return state_dict
    upgraded = dict(state_dict)
    for old, new in LEGACY_STATE_KEYS.items():
        if old in upgraded and new not in upgraded and new in expected and old not in expected:
            upgraded[new] = upgraded.pop(old)
    for name in ADDED_STATE_KEYS:
        if name in expected and name not in upgraded:
            upgraded[name] = expected[name]
    return upgraded


def load_agent_state(path: Path, template: Any) -> Any:
    """Restore the agent state of checkpoint ``path`` into the structure of ``template``; checkpoints of
    earlier versions load too (see :data:`LEGACY_STATE_KEYS`)."""
    verify_checkpoint(path)
    try:
        state_dict = serialization.msgpack_restore((path / STATE_FILE).read_bytes())
        return serialization.from_state_dict(template, upgrade_state_dict(state_dict, template))
    except Exception as err:  # msgpack and structure errors come in many types
        raise CheckpointError(
            f"checkpoint {path} does not fit this agent (different algorithm or network sizes?): {err}"
        ) from err


def load_trainer_state(path: Path) -> dict:
    return json.loads((path / TRAINER_FILE).read_text())
