"""Host-side replay buffer: a numpy ring buffer that samples many minibatches at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from s2ac.agents.base import Batch

_FIELDS = ("obs", "action", "reward", "next_obs", "terminated")


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions stored as float32 numpy arrays."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int):
        if capacity <= 0:
            raise ValueError(f"buffer capacity must be > 0; got {capacity}")
        self.capacity = int(capacity)
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros((capacity, act_dim), np.float32)
        self.reward = np.zeros((capacity,), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.terminated = np.zeros((capacity,), np.float32)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward: float, next_obs, terminated: bool) -> None:
        i = self.pos
        self.obs[i] = obs
        self.action[i] = action
        self.reward[i] = reward
        self.next_obs[i] = next_obs
        self.terminated[i] = float(terminated)
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, rng: np.random.Generator, n_batches: int, batch_size: int) -> Batch:
        """``n_batches`` minibatches in one draw, shaped ``(n_batches, batch_size, ...)``."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, size=(n_batches, batch_size))
        return Batch(*(getattr(self, f)[idx] for f in _FIELDS))

    # -- persistence (part of a checkpoint) ---------------------------------------
    def save(self, path: Path) -> None:
        """Write the filled part and the ring position to ``path`` (an ``.npz``)."""
        n = self.size
        with open(path, "wb") as fh:
            np.savez(fh, pos=self.pos, size=n, capacity=self.capacity, **{f: getattr(self, f)[:n] for f in _FIELDS})

    def load(self, path: Path) -> None:
        """Restore from :meth:`save`; the capacity and shapes must match."""
        with np.load(path) as data:
            n, pos, saved_capacity = int(data["size"]), int(data["pos"]), int(data["capacity"])
            # A different capacity is fine while the saved ring never wrapped (a run being extended).
            unwrapped = n < saved_capacity or pos == 0
            if saved_capacity != self.capacity and not (unwrapped and n <= self.capacity):
                raise ValueError(f"replay capacity mismatch: checkpoint {saved_capacity}, config {self.capacity}")
            for f in _FIELDS:
                arr = data[f]
                if arr.shape[1:] != getattr(self, f).shape[1:]:
                    raise ValueError(
                        f"replay field {f!r} has shape {arr.shape[1:]}, expected {getattr(self, f).shape[1:]}"
                    )
                getattr(self, f)[:n] = arr
            self.size, self.pos = n, n % self.capacity if saved_capacity != self.capacity else pos
