"""Replay buffers: a host (numpy) ring buffer for the host loop, and the same ring as JAX arrays for
the whole-loop-in-JAX path (:mod:`s2ac.jax_loop`). Both store ``terminated`` only: a time-limit
truncation is not terminal (REFERENCE.md §1 "Critic")."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from s2ac.types import Array, Batch

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


# -- the same ring as JAX arrays (a pytree carried through a compiled loop) ------------------


class ReplayState(NamedTuple):
    """A fixed-capacity ring buffer as arrays; slot ``step % capacity`` holds env step ``step``."""

    obs: Array
    action: Array
    reward: Array
    next_obs: Array
    terminated: Array


def replay_init(capacity: int, obs_dim: int, act_dim: int) -> ReplayState:
    """An empty buffer (zeros) of ``capacity`` transitions."""
    return ReplayState(
        jnp.zeros((capacity, obs_dim), jnp.float32),
        jnp.zeros((capacity, act_dim), jnp.float32),
        jnp.zeros((capacity,), jnp.float32),
        jnp.zeros((capacity, obs_dim), jnp.float32),
        jnp.zeros((capacity,), jnp.float32),
    )


def replay_add(buffer: ReplayState, step: Array, obs, action, reward, next_obs, terminated) -> ReplayState:
    """Write the transition of global env step ``step`` (0-based) into slot ``step % capacity``."""
    i = step % buffer.reward.shape[0]
    values = (obs, action, reward, next_obs, terminated)
    return ReplayState(*(field.at[i].set(jnp.asarray(v, field.dtype)) for field, v in zip(buffer, values)))


def replay_filled(buffer: ReplayState, n_added: Array) -> Array:
    """Number of valid slots after ``n_added`` insertions."""
    return jnp.minimum(n_added, buffer.reward.shape[0])


def replay_sample(buffer: ReplayState, key: Array, n_added: Array, n_batches: int, batch_size: int) -> Batch:
    """``n_batches`` minibatches shaped ``(n_batches, batch_size, ...)``, uniform over the filled slots."""
    idx = jax.random.randint(key, (n_batches, batch_size), 0, replay_filled(buffer, n_added))
    return Batch(*(field[idx] for field in buffer))


def replay_to_host(buffer: ReplayState, n_added: int) -> ReplayBuffer:
    """The host :class:`ReplayBuffer` holding the same transitions in the same slots."""
    host = ReplayBuffer(buffer.reward.shape[0], buffer.obs.shape[1], buffer.action.shape[1])
    values = jax.device_get(buffer)
    for name, value in zip(_FIELDS, values):
        getattr(host, name)[:] = value
    host.size = min(int(n_added), host.capacity)
    host.pos = int(n_added) % host.capacity
    return host


__all__ = [
    "ReplayBuffer",
    "ReplayState",
    "replay_init",
    "replay_add",
    "replay_filled",
    "replay_sample",
    "replay_to_host",
]
