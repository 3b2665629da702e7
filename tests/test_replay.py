"""Replay buffer: ring semantics, batched sampling, persistence."""

import numpy as np
import pytest

from s2ac.replay import ReplayBuffer


def fill(buf, n, offset=0):
    for i in range(offset, offset + n):
        buf.add(np.full(2, i), np.full(1, -i), float(i), np.full(2, i + 1), i % 7 == 0)


def test_ring_overwrites_oldest_and_samples_shapes():
    buf = ReplayBuffer(5, 2, 1)
    fill(buf, 8)
    assert len(buf) == 5 and buf.pos == 3
    assert sorted(buf.reward.tolist()) == [3.0, 4.0, 5.0, 6.0, 7.0]
    batch = buf.sample(np.random.default_rng(0), 4, 3)
    assert batch.obs.shape == (4, 3, 2) and batch.action.shape == (4, 3, 1) and batch.reward.shape == (4, 3)
    np.testing.assert_array_equal(batch.next_obs[..., 0], batch.obs[..., 0] + 1)  # transitions stay intact
    np.testing.assert_array_equal(batch.terminated, (batch.reward % 7 == 0).astype(np.float32))


def test_save_load_roundtrip_and_capacity_rules(tmp_path):
    buf = ReplayBuffer(10, 2, 1)
    fill(buf, 6)
    buf.save(tmp_path / "r.npz")
    same = ReplayBuffer(10, 2, 1)
    same.load(tmp_path / "r.npz")
    for f in ("obs", "action", "reward", "next_obs", "terminated"):
        np.testing.assert_array_equal(getattr(same, f)[:6], getattr(buf, f)[:6])
    assert (same.pos, same.size) == (6, 6)
    bigger = ReplayBuffer(20, 2, 1)  # extending a run that never wrapped is fine
    bigger.load(tmp_path / "r.npz")
    assert (bigger.pos, bigger.size) == (6, 6)
    fill(buf, 10, offset=6)  # wraps
    buf.save(tmp_path / "wrapped.npz")
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(20, 2, 1).load(tmp_path / "wrapped.npz")
    with pytest.raises(ValueError, match="shape"):
        ReplayBuffer(10, 3, 1).load(tmp_path / "r.npz")
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3, 2, 1).sample(np.random.default_rng(0), 1, 1)
