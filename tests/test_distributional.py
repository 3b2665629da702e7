"""Categorical critic maths against hand computations and a NumPy re-computation of C51's projection."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2ac import distributional as dist


def c51_projection_numpy(probs, v_min, v_max, shift, scale):
    """Bellemare et al. (2017) Algorithm 1 as a plain loop: floor/ceil neighbours, l == u handled."""
    n = len(probs)
    dz = (v_max - v_min) / (n - 1)
    out = np.zeros(n)
    for i in range(n):
        tz = min(max(shift + scale * (v_min + i * dz), v_min), v_max)
        b = (tz - v_min) / dz
        lo, hi = int(np.floor(b)), int(np.ceil(b))
        if lo == hi:
            out[lo] += probs[i]
        else:
            out[lo] += probs[i] * (hi - b)
            out[hi] += probs[i] * (b - lo)
    return out


def test_projection_hand_computation():
    # atoms 0, 1, 2; shifted atoms 0.5, 1.5, 2.5 (clipped to 2): 0.2 splits 0.1/0.1, 0.5 splits 0.25/0.25.
    atoms = dist.support(0.0, 2.0, 3)
    out = dist.project(jnp.array([0.2, 0.5, 0.3]), atoms, jnp.float32(0.5), jnp.float32(1.0))
    np.testing.assert_allclose(out, [0.1, 0.35, 0.55], atol=1e-6)
    # scale 0 (a terminal transition): all mass at the reward, split between its neighbours
    out = dist.project(jnp.array([0.2, 0.5, 0.3]), atoms, jnp.float32(1.25), jnp.float32(0.0))
    np.testing.assert_allclose(out, [0.0, 0.75, 0.25], atol=1e-6)


@pytest.mark.parametrize("n_atoms", [2, 11, 101])
def test_projection_matches_c51_loop(n_atoms):
    rng = np.random.default_rng(n_atoms)
    v_min, v_max = -10.0, 10.0
    atoms = dist.support(v_min, v_max, n_atoms)
    dz = (v_max - v_min) / (n_atoms - 1)
    # random shifts/scales, some pushing mass off the support, and one landing exactly on atoms
    cases = [(rng.normal(0, 4), rng.uniform(0, 1)) for _ in range(6)] + [(30.0, 0.99), (-30.0, 0.5), (dz, 1.0)]
    for shift, scale in cases:
        probs = rng.dirichlet(np.ones(n_atoms))
        got = dist.project(jnp.asarray(probs, jnp.float32), atoms, jnp.float32(shift), jnp.float32(scale))
        want = c51_projection_numpy(probs, v_min, v_max, shift, scale)
        np.testing.assert_allclose(got, want, atol=2e-6)
        assert abs(float(got.sum()) - 1.0) < 1e-5


def test_bootstrap_target_averages_the_two_critics_projections():
    rng = np.random.default_rng(0)
    v_min, v_max, n = -5.0, 5.0, 21
    atoms = dist.support(v_min, v_max, n)
    p1, p2 = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n) * 0.3)
    reward, gamma, done, bonus = 0.7, 0.99, 0.0, -0.4
    disc = gamma * (1 - done)
    got = dist.bootstrap_target(
        jnp.asarray(p1, jnp.float32),
        jnp.asarray(p2, jnp.float32),
        atoms,
        jnp.float32(reward),
        jnp.float32(disc),
        jnp.float32(bonus),
    )
    shift = reward + disc * bonus  # target atoms r + gamma (z + alpha H')
    t1 = c51_projection_numpy(p1, v_min, v_max, shift, disc)
    t2 = c51_projection_numpy(p2, v_min, v_max, shift, disc)
    np.testing.assert_allclose(got, 0.5 * (t1 + t2), atol=2e-6)
    # it is neither critic's target alone
    assert np.abs(np.asarray(got) - t1).max() > 1e-2 and np.abs(np.asarray(got) - t2).max() > 1e-2
    # a terminal transition: every atom of the target is at the reward
    term = dist.bootstrap_target(jnp.asarray(p1), jnp.asarray(p2), atoms, jnp.float32(0.75), 0.0, jnp.float32(bonus))
    np.testing.assert_allclose(term, c51_projection_numpy(p1, v_min, v_max, 0.75, 0.0), atol=1e-6)
    # batched by vmap, as the critic calls it
    batched = jax.vmap(dist.bootstrap_target, in_axes=(0, 0, None, 0, 0, 0))(
        jnp.stack([p1, p2]),
        jnp.stack([p2, p1]),
        atoms,
        jnp.array([reward, reward]),
        jnp.array([disc, disc]),
        jnp.array([bonus, bonus]),
    )
    np.testing.assert_allclose(batched[0], batched[1], atol=1e-6)


def test_cross_entropy_and_expected_q_against_numpy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=11) * 3
    target = rng.dirichlet(np.ones(11))
    p = np.exp(logits - logits.max())
    p /= p.sum()
    want = -np.sum(target * np.log(p)) + 0.005 * np.sum(p * np.log(p))
    got = dist.cross_entropy_loss(jnp.asarray(logits, jnp.float32), jnp.asarray(target, jnp.float32))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    atoms = dist.support(-3.0, 7.0, 11)
    np.testing.assert_allclose(dist.expected_q(jnp.asarray(logits), atoms), np.sum(p * np.asarray(atoms)), rtol=1e-5)
    # the regulariser pushes towards a flatter distribution: its gradient at a peaked prediction
    # (target = prediction, so the cross-entropy part vanishes) lowers the peak logit
    peaked = jnp.array([5.0, 0.0, 0.0])
    grad = jax.grad(lambda z: dist.cross_entropy_loss(z, jax.nn.softmax(peaked), 0.5))(peaked)
    assert grad[0] > 0
    # finite gradients where a probability underflows
    g = jax.grad(lambda z: dist.cross_entropy_loss(z, jnp.array([1.0, 0.0, 0.0])))(jnp.array([-200.0, 100.0, 0.0]))
    assert bool(jnp.all(jnp.isfinite(g)))


@pytest.mark.parametrize(
    "args, words",
    [
        ((1.0, 1.0, 51), "v_min must be < v_max"),
        ((5.0, -5.0, 51), "v_min must be < v_max"),
        ((-1.0, 1.0, 1), "n_atoms must be an int >= 2"),
        ((-1.0, 1.0, 0), "n_atoms"),
        ((float("nan"), 1.0, 51), "finite"),
    ],
)
def test_bad_support_one_line(args, words):
    with pytest.raises(ValueError, match=words) as info:
        dist.support(*args)
    assert "\n" not in str(info.value)


def test_support_monitor_warns_once_naming_the_settings():
    monitor = dist.SupportMonitor(-200.0, 200.0)
    assert monitor(np.array([0.0, 10.0, -50.0])) == 0.0
    with pytest.warns(dist.SupportWarning, match=r"v_min, v_max\] = \[-200, 200\].*set v_min and v_max") as rec:
        share = monitor(np.array([0.0, 900.0, 1500.0, 10.0]), what="returns")
    assert share == 0.5 and len(rec) == 1 and "returns" in str(rec[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert monitor(np.array([5000.0])) == 1.0  # a second time: no warning
        assert dist.SupportMonitor(-1.0, 1.0)(mass=np.array([0.0, 0.005])) == 0.0025  # below threshold
    # the in-graph metric: mass pushed off the support
    atoms = dist.support(-1.0, 1.0, 3)
    np.testing.assert_allclose(dist.outside_mass(jnp.array([0.2, 0.3, 0.5]), atoms, 0.5, 1.0), 0.5, atol=1e-7)
