"""The probe density mode (``per_particle_trace_probe``): the self term's trace from one Rademacher
probe, against the Hessian's trace from ``jax.hessian`` (an independent reference), its actor gradient
against finite differences of the true objective, and the presets that choose it (float64)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2ac import stein
from s2ac.agents import make_agent_config
from s2ac.envs import action_dim

ALPHA, SIGMA, EPS = 0.7, 0.6, 0.05


def _separable(a):
    """A sum of 1-D terms: its Hessian is diagonal, where one Rademacher probe gives the exact trace."""
    return jnp.sum(-0.5 * a**2 / 0.3 + jnp.cos(2.0 * a))


def _coupled(a):
    """A two-mode energy with a full Hessian (off-diagonal terms: the probe is noisy, unbiased)."""
    c = jnp.array([[1.0, 0.5, -0.3], [-1.0, 0.2, 0.4]])
    w = jnp.array([[2.0, 0.8, 0.0], [0.8, 1.5, 0.6], [0.0, 0.6, 1.0]])
    return jax.nn.logsumexp(jnp.stack([-0.5 * (a - ck) @ w @ (a - ck) for ck in c]))


def _reference_parts(energy, a):
    """``Delta log q_i`` of the first-order per-particle density, written out here: the mean-field
    trace term of the poster's closed form, and the traces ``tr grad^2 E(a_i)`` from ``jax.hessian``."""
    m, d = a.shape
    s = jax.vmap(jax.grad(energy))(a)
    diff = a[:, None, :] - a[None, :, :]
    sq = jnp.sum(diff**2, -1)
    k = jnp.exp(-sq / (2 * SIGMA**2)) * (1 - jnp.eye(m))
    bracket = jnp.einsum("ijd,jd->ij", diff, s) + ALPHA * sq / SIGMA**2 - d * ALPHA
    mean_field = EPS / (m * SIGMA**2) * jnp.sum(k * bracket, 1)
    traces = jax.vmap(lambda x: jnp.trace(jax.hessian(energy)(x)))(a)
    return mean_field, traces


def _probe_delta(energy, a, key, probed=None):
    return stein.svgd_step(
        jax.vmap(jax.grad(energy)), a, step_size=EPS, bandwidth=SIGMA, alpha=ALPHA,
        log_density="per_particle_trace_probe", key=key, probed=probed,
    )[1]  # fmt: skip


@pytest.mark.parametrize("probed", [None, 1, 3])
def test_probe_is_exact_where_the_hessian_is_diagonal(probed):
    """Every particle carries ``-(eps/m)`` times the mean trace of the probed particles (all, or the
    first ``probed``): exact for a diagonal Hessian, whatever the probe."""
    with jax.enable_x64(True):
        a = jax.random.normal(jax.random.PRNGKey(0), (6, 3), jnp.float64)
        mean_field, traces = _reference_parts(_separable, a)
        ref = mean_field - EPS * jnp.mean(traces[: probed or 6]) / 6
        deltas = jax.jit(jax.vmap(lambda k: _probe_delta(_separable, a, k, probed)))(
            jax.random.split(jax.random.PRNGKey(0), 3)
        )
        for delta in deltas:
            np.testing.assert_allclose(delta, ref, atol=1e-12)


def test_probe_is_unbiased_for_a_full_hessian():
    """Mean over 1,000 probes within 4 standard errors of the reference set-mean trace, and single
    probes do vary (so the comparison is not of two exact values)."""
    with jax.enable_x64(True):
        a = jax.random.normal(jax.random.PRNGKey(1), (6, 3), jnp.float64)
        mean_field, traces = _reference_parts(_coupled, a)
        keys = jax.random.split(jax.random.PRNGKey(2), 1000)
        draws = np.asarray(jax.jit(jax.vmap(lambda k: _probe_delta(_coupled, a, k)))(keys))
        correction = draws - np.asarray(mean_field)  # (probes, m): the same for every particle
        np.testing.assert_allclose(correction, correction[:, :1].repeat(6, 1), atol=1e-12)
        estimate = -correction[:, 0] * 6 / EPS  # the probes' mean trace
        se = estimate.std() / math.sqrt(len(keys))
        assert estimate.std() > 1e-3
        assert abs(estimate.mean() - float(jnp.mean(traces))) < 4 * se


def test_probed_particles_are_checked():
    with pytest.raises(ValueError, match="probed"):
        stein.svgd_sample(
            lambda x: -x, jnp.zeros((4, 2)), jnp.zeros(4), steps=1, step_size=0.1,
            log_density="per_particle_trace_probe", key=jax.random.PRNGKey(0), probed=5,
        )  # fmt: skip
    from s2ac.agents.s2ac import S2ACConfig

    with pytest.raises(ValueError, match="self_term_probes"):
        S2ACConfig(self_term_probes=0).validate()


def test_probe_mode_needs_a_key_and_leaves_the_particles_alone():
    with jax.enable_x64(True):
        a0 = jax.random.normal(jax.random.PRNGKey(3), (5, 2), jnp.float64)
        score = jax.vmap(jax.grad(_separable))
        kw = dict(steps=3, step_size=0.1, step_control="adaptive", target_margin=0.5)
        with pytest.raises(ValueError, match="pass key="):
            stein.svgd_sample(score, a0, jnp.zeros(5), log_density="per_particle_trace_probe", **kw)
        probe = stein.svgd_sample(
            score, a0, jnp.zeros(5), log_density="per_particle_trace_probe", key=jax.random.PRNGKey(0), **kw
        )
        mean_field = stein.svgd_sample(score, a0, jnp.zeros(5), log_density="mean_field", **kw)
        np.testing.assert_array_equal(probe.particles, mean_field.particles)
        assert np.all(np.isnan(probe.folded))  # no Jacobian block, so no folding flag


M, STEPS = 5, 3


def _objective(theta, key):
    """``mean(alpha log q^L - E(a^L))`` of q0 = N(mu, s^2 I) through three adaptive steps in the probe
    mode, noise and probes held fixed: theta = (mu_x, mu_y, mu_z, log s). The TRUE objective: the
    steps and the probed traces move with theta."""
    xi = jax.random.normal(jax.random.PRNGKey(4), (M, 3), jnp.float64)
    mu, log_s = theta[:3], theta[3]
    a0 = mu + jnp.exp(log_s) * xi
    log_q0 = -0.5 * jnp.sum(xi**2, -1) - 3 * log_s - 1.5 * math.log(2 * math.pi)
    res = stein.svgd_sample(
        jax.vmap(jax.grad(_coupled)), a0, log_q0, steps=STEPS, step_size=0.3, bandwidth=0.8, alpha=ALPHA,
        log_density="per_particle_trace_probe", step_control="adaptive", target_margin=0.3, key=key,
    )  # fmt: skip
    return jnp.mean(ALPHA * res.log_q - jax.vmap(_coupled)(res.particles))


@pytest.mark.parametrize("theta", [(0.3, -0.2, 0.1, -0.7), (-0.4, 0.5, 0.0, -1.0)])
def test_probe_mode_actor_gradient_matches_finite_differences(theta, monkeypatch):
    """Through the probe's JVP (third derivatives of E); the probe trace on stop-gradient particles fails it."""
    key = jax.random.PRNGKey(5)
    with jax.enable_x64(True):
        theta = jnp.asarray(theta, jnp.float64)
        grad = np.asarray(jax.jit(jax.grad(_objective))(theta, key))
        h = 1e-6
        shifted = theta + h * jnp.concatenate([jnp.eye(4), -jnp.eye(4)])  # one compiled pass for all 8 points
        values = np.asarray(jax.jit(jax.vmap(_objective, (0, None)))(shifted, key))
        fd = (values[:4] - values[4:]) / (2 * h)
        assert np.linalg.norm(grad - fd) / np.linalg.norm(fd) < 1e-5
        own = stein.self_trace_probe
        monkeypatch.setattr(stein, "self_trace_probe", lambda f, p, k, n=None: own(f, jax.lax.stop_gradient(p), k, n))
        broken = np.asarray(jax.jit(jax.grad(lambda t, k: _objective(t, k)))(theta, key))  # a new trace
    assert np.linalg.norm(broken - fd) / np.linalg.norm(fd) > 1e-3


@pytest.mark.parametrize(
    ("preset", "env_id", "mode"),
    [
        ("quick", "Hopper-v5", ("per_particle_trace_probe", "adaptive", 0.5, False)),
        ("corrected", "Hopper-v5", ("per_particle_trace_probe", "adaptive", 0.5, False)),
        ("corrected", "Pendulum-v1", ("mean_field", "adaptive", 0.5, False)),
        ("quick", "InvertedDoublePendulum-v5", ("mean_field", "adaptive", 0.5, False)),
        ("quick", "s2ac/MultiGoal3-v0", ("mean_field", "adaptive_bound", 0.3, True)),
        ("corrected", "s2ac/MultiGoal-v0", ("mean_field", "adaptive_bound", 0.3, True)),
        ("paper", "Hopper-v5", ("mean_field", "fixed", 0.5, False)),
        ("paper", "s2ac/MultiGoal3-v0", ("mean_field", "fixed", 0.3, False)),
    ],
)
def test_presets_pick_the_density_measured_against_ground_truth(preset, env_id, mode):
    """MuJoCo-style presets (L = 3, the blocks' rule at margin 0.5): the probe mode above two action
    dimensions, the mean field up to two (both within 0.2 nats there; first derivatives only); multigoal (L = 10,
    the bound's rule at margin 0.3, sigma differentiated): the mean field; paper: the authors' closed
    form, fixed step and sigma as a schedule (docs/maths/entropy.md §4, §5)."""
    for algo in ("s2ac", "s2ac-phi", "s2ac-crossq"):
        config = make_agent_config(algo, preset, env_id)
        got = (config.log_density, config.svgd_step_control, config.svgd_target_margin, config.bandwidth_gradient)
        assert got == mode


@pytest.mark.parametrize(
    ("env_id", "dim"),
    [
        ("Pendulum-v1", 1),
        ("InvertedDoublePendulum-v5", 1),
        ("Hopper-v5", 3),
        ("s2ac/MultiGoal3-v0", 2),
        ("NoSuchEnv-v0", None),
    ],
)
def test_action_dim_reads_the_env(env_id, dim):
    """The size the presets' density choice reads: the env's action vector, None for an id not made here
    (whose S²AC presets then keep the config's default density)."""
    assert action_dim(env_id) == dim
    if dim is None:
        assert make_agent_config("s2ac", "corrected", env_id).log_density == "per_particle_trace_probe"
