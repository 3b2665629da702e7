"""Baseline samplers against independent references: exact Gaussian pushforwards, noise moments, HMC invariance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2ac import samplers

MU = np.array([-0.6871, 0.8010])
SIGMA = 5.0 * np.array([[0.2260, 0.1652], [0.1652, 0.6779]])
PREC = np.linalg.inv(SIGMA)


def gaussian_score(x):
    return -(x - jnp.asarray(MU, jnp.float32)) @ jnp.asarray(PREC, jnp.float32)


def gaussian_log_prob(x):
    diff = x - jnp.asarray(MU, jnp.float32)
    return -0.5 * diff @ jnp.asarray(PREC, jnp.float32) @ diff


def np_mvn_log_prob(x, mean, cov):
    """Reference multivariate normal log-density (float64 numpy)."""
    d = len(mean)
    diff = x - mean
    maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
    return -0.5 * maha - 0.5 * np.linalg.slogdet(cov)[1] - 0.5 * d * np.log(2 * np.pi)


def _init(m, mean=(0.0, 0.0), var=6.0, seed=0):
    x = np.asarray(mean) + np.sqrt(var) * np.asarray(jax.random.normal(jax.random.PRNGKey(seed), (m, 2)), np.float64)
    return x, np_mvn_log_prob(x, np.asarray(mean), var * np.eye(2))


def test_deterministic_langevin_log_q_is_the_exact_gaussian_pushforward_density():
    # The step is the affine map a -> A a + b, A = I - eps P: q^L = N(A^L m0 + ..., A^L C0 A^L^T) exactly.
    eps, steps = 0.1, 7
    x0, lq0 = _init(50, mean=(1.0, -2.0), var=2.0)
    res = samplers.deterministic_langevin_sample(
        gaussian_score, jnp.asarray(x0, jnp.float32), jnp.asarray(lq0, jnp.float32), steps=steps, step_size=eps
    )
    a = np.eye(2) - eps * PREC
    b = eps * PREC @ MU
    x, mean, cov = x0, np.array([1.0, -2.0]), 2.0 * np.eye(2)
    for _ in range(steps):
        x, mean, cov = x @ a.T + b, a @ mean + b, a @ cov @ a.T
    np.testing.assert_allclose(res.particles, x, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(res.log_q, np_mvn_log_prob(np.asarray(res.particles, np.float64), mean, cov), atol=2e-3)
    # Entropy change H(q^L) - H(q^0) = L log|det A| for every particle.
    np.testing.assert_allclose(res.log_q - lq0, -steps * np.linalg.slogdet(a)[1], rtol=1e-4)


def test_langevin_accounting_ignores_the_noise_entropy():
    # Same per-particle Jacobian with or without noise, but the true marginal entropies differ:
    # with noise the Gaussian marginal has C' = A C A^T + 2 eps I.
    eps, steps = 0.1, 30
    x0, lq0 = _init(64)
    args = (jnp.asarray(x0, jnp.float32), jnp.asarray(lq0, jnp.float32))
    noisy = samplers.langevin_sample(gaussian_score, *args, jax.random.PRNGKey(1), steps=steps, step_size=eps)
    det = samplers.deterministic_langevin_sample(gaussian_score, *args, steps=steps, step_size=eps)
    np.testing.assert_allclose(noisy.log_q, det.log_q, rtol=1e-5)
    assert not np.allclose(noisy.particles, det.particles)
    a = np.eye(2) - eps * PREC
    cov = 6.0 * np.eye(2)
    for _ in range(steps):
        cov = a @ cov @ a.T + 2 * eps * np.eye(2)
    true_entropy = 0.5 * np.linalg.slogdet(2 * np.pi * np.e * cov)[1]
    estimate = -float(jnp.mean(noisy.log_q))
    assert estimate < true_entropy - 3.0  # the accounting misses the entropy the noise adds


def test_langevin_one_step_noise_has_variance_two_eps():
    eps, n = 0.3, 40_000
    x0 = jnp.tile(jnp.array([[1.0, -2.0]]), (n, 1))
    res = samplers.langevin_sample(gaussian_score, x0, jnp.zeros((n,)), jax.random.PRNGKey(0), steps=1, step_size=eps)
    expected_mean = np.array([1.0, -2.0]) + eps * np.asarray(gaussian_score(x0[:1]))[0]
    x = np.asarray(res.particles, np.float64)
    np.testing.assert_allclose(x.mean(0), expected_mean, atol=0.02)
    np.testing.assert_allclose(np.cov(x.T), 2 * eps * np.eye(2), atol=0.025)


def test_langevin_trajectory_and_jit_agree():
    x0, lq0 = _init(16)
    args = (gaussian_score, jnp.asarray(x0, jnp.float32), jnp.asarray(lq0, jnp.float32), jax.random.PRNGKey(3))
    eager = samplers.langevin_sample(*args, steps=5, step_size=0.1, trajectory=True)
    jitted = jax.jit(lambda: samplers.langevin_sample(*args, steps=5, step_size=0.1, trajectory=True))()
    np.testing.assert_allclose(eager.particles, jitted.particles, rtol=1e-5, atol=1e-6)
    assert eager.trajectory.shape == (6, 16, 2) and eager.log_q_trajectory.shape == (6, 16)
    np.testing.assert_allclose(eager.trajectory[-1], eager.particles)
    np.testing.assert_allclose(eager.log_q_trajectory[0], lq0, rtol=1e-6)


def _leapfrog_matrix(eps, n_steps):
    """Phase-space matrix of n leapfrog steps on the quadratic potential 1/2 q^T P q (numpy, exact)."""
    eye, zero = np.eye(2), np.zeros((2, 2))
    kick = np.block([[eye, zero], [-0.5 * eps * PREC, eye]])
    drift = np.block([[eye, eps * eye], [zero, eye]])
    return np.linalg.matrix_power(kick @ drift @ kick, n_steps)


def test_hmc_log_det_is_the_leapfrog_position_block():
    eps, n_leap = 0.2, 10
    m_full = _leapfrog_matrix(eps, n_leap)
    assert np.isclose(np.linalg.det(m_full), 1.0)  # volume preserving in phase space
    log_det_qq = np.linalg.slogdet(m_full[:2, :2])[1]
    x0, lq0 = _init(200)
    res = samplers.hmc_sample(
        gaussian_log_prob,
        jnp.asarray(x0, jnp.float32),
        jnp.asarray(lq0, jnp.float32),
        jax.random.PRNGKey(0),
        steps=1,
        step_size=eps,
        n_leapfrog=n_leap,
    )
    moved = np.any(np.asarray(res.particles) != x0.astype(np.float32), axis=1)
    delta = np.asarray(res.log_q) - lq0
    np.testing.assert_allclose(delta[moved], -log_det_qq, atol=1e-3)
    np.testing.assert_allclose(delta[~moved], 0.0, atol=1e-5)
    assert np.isclose(float(res.accept_rate[0]), moved.mean())


def test_hmc_converges_to_and_keeps_the_target():
    n = 4000
    key = jax.random.PRNGKey(0)
    x0 = jnp.array([4.0, 4.0]) + jnp.sqrt(0.2) * jax.random.normal(key, (n, 2))
    res = samplers.hmc_sample(
        gaussian_log_prob, x0, jnp.zeros((n,)), jax.random.PRNGKey(1), steps=40, step_size=0.2, n_leapfrog=10
    )
    x = np.asarray(res.particles, np.float64)
    np.testing.assert_allclose(x.mean(0), MU, atol=0.1)
    np.testing.assert_allclose(np.cov(x.T), SIGMA, atol=0.2, rtol=0.08)
    assert float(jnp.mean(res.accept_rate)) > 0.9


def test_hmc_rejects_diverging_trajectories():
    # eps * sqrt(lambda_max(P)) ~ 5 > 2: leapfrog is unstable, the energy explodes, Metropolis rejects.
    x0, lq0 = _init(100)
    res = samplers.hmc_sample(
        gaussian_log_prob,
        jnp.asarray(x0, jnp.float32),
        jnp.asarray(lq0, jnp.float32),
        jax.random.PRNGKey(0),
        steps=3,
        step_size=5.0,
        n_leapfrog=10,
    )
    assert float(jnp.max(res.accept_rate)) < 0.05
    assert np.all(np.isfinite(np.asarray(res.log_q)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(particles=jnp.zeros((3,))), "particles must have shape"),
        (dict(log_q0=jnp.zeros((4,))), "log_q0 must have shape"),
        (dict(steps=-1), "steps must be"),
        (dict(step_size=float("nan")), "step_size must be"),
    ],
)
def test_langevin_rejects_bad_input(kwargs, match):
    args = dict(particles=jnp.zeros((3, 2)), log_q0=jnp.zeros((3,)), steps=2, step_size=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        samplers.langevin_sample(
            gaussian_score,
            args["particles"],
            args["log_q0"],
            jax.random.PRNGKey(0),
            steps=args["steps"],
            step_size=args["step_size"],
        )


def test_hmc_rejects_bad_leapfrog_count():
    with pytest.raises(ValueError, match="n_leapfrog"):
        samplers.hmc_sample(
            gaussian_log_prob,
            jnp.zeros((3, 2)),
            jnp.zeros((3,)),
            jax.random.PRNGKey(0),
            steps=1,
            step_size=0.1,
            n_leapfrog=0,
        )
