"""The class API's saved-model file: one zip, as Stable-Baselines3 writes.

``model.zip`` holds ``model.json`` (format version, algorithm, agent config, preset, schedule,
seed, env id, step counters, and the SHA-256 of the state) and ``state.msgpack`` (the agent state:
networks, optimiser states, PRNG key; flax msgpack). It is written to a temporary file in the
same folder and renamed, so a crash leaves either the old file or the new one. The replay buffer
is not included (as in SB3); a training run folder is the format for exact resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from s2ac.checkpoint import CheckpointError, atomic_write

FORMAT_VERSION = 1
META_FILE = "model.json"
STATE_FILE = "state.msgpack"


def model_path(path: str | os.PathLike) -> Path:
    """``path`` with a ``.zip`` suffix added when it has none (SB3's rule)."""
    path = Path(path)
    return path if path.suffix == ".zip" else path.with_name(path.name + ".zip")


def write_model(path: Path, meta: dict[str, Any], state_bytes: bytes) -> Path:
    """Write ``meta`` and the serialised state to the zip ``path`` atomically."""
    if path.is_dir():
        raise IsADirectoryError(f"cannot save a model to {path}: it is a folder (save writes one .zip file)")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "format": FORMAT_VERSION, "state_sha256": hashlib.sha256(state_bytes).hexdigest()}

    def write(fh) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(META_FILE, json.dumps(meta, indent=2))
            archive.writestr(STATE_FILE, state_bytes)

    atomic_write(path, write)
    return path


def read_model(path: Path) -> tuple[dict[str, Any], bytes]:
    """``(meta, state_bytes)`` of a model zip; :class:`CheckpointError` if it is damaged."""
    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read(META_FILE))
            state_bytes = archive.read(STATE_FILE)
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not a readable s2ac model file ({err})") from err
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has model format {meta.get('format')!r}; this version reads {FORMAT_VERSION}")
    if hashlib.sha256(state_bytes).hexdigest() != meta.get("state_sha256"):
        raise CheckpointError(f"{path} is corrupt: {STATE_FILE} does not match its SHA-256")
    return meta, state_bytes


__all__ = ["FORMAT_VERSION", "model_path", "read_model", "write_model"]
