"""Stein core against independent references: autodiff Jacobians, numpy, closed-form entropy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2ac import stein


def banana_energy(x):
    """A non-Gaussian energy in any d >= 2 (curved, non-quadratic, coupled coordinates)."""
    return -0.5 * jnp.sum(x**2) - 0.8 * (x[1] - 0.5 * x[0] ** 2) ** 2 + 0.3 * jnp.sin(jnp.sum(x))


banana_score = jax.vmap(jax.grad(banana_energy))


def _particles(m=7, d=3, seed=0, scale=1.0):
    return scale * jax.random.normal(jax.random.PRNGKey(seed), (m, d))


def _phi_interaction_autodiff(particles, scores, sigma, alpha, i, x):
    """j != i part of phi_i as a function of a_i = x, built from jax.grad of the kernel."""
    m = particles.shape[0]
    total = jnp.zeros_like(x)
    for j in range(m):
        if j == i:
            continue
        aj = particles[j]
        k = stein.rbf_kernel(aj, x, sigma)
        grad_aj_k = jax.grad(stein.rbf_kernel, argnums=0)(aj, x, sigma)
        total = total + k * scores[j] + alpha * grad_aj_k
    return total / m


def _phi_full_autodiff(score_fn, particles, sigma, alpha, i, x):
    """Full phi_i with a_i = x (scores recomputed, j = i term included)."""
    a = particles.at[i].set(x)
    return stein.svgd_direction(a, score_fn(a), sigma, alpha)[i]


@pytest.mark.parametrize("normalizer", ["m", "m-1"])
def test_closed_form_equals_minus_eps_trace_of_interaction_jacobian(normalizer):
    particles = _particles(m=7, d=3)
    scores = banana_score(particles)
    sigma, alpha, eps = jnp.asarray(0.9), 0.37, 0.05
    m = particles.shape[0]
    n_norm = m if normalizer == "m" else m - 1
    closed = stein.closed_form_log_q_change(particles, scores, sigma, alpha, eps, n_norm)
    for i in range(m):
        jac = jax.jacfwd(lambda x, i=i: _phi_interaction_autodiff(particles, scores, sigma, alpha, i, x))(particles[i])
        expected = -eps * jnp.trace(jac) * m / n_norm
        np.testing.assert_allclose(closed[i], expected, rtol=1e-5, atol=1e-7)


def test_interaction_jacobian_matches_autodiff():
    particles = _particles(m=6, d=4, seed=3)
    scores = banana_score(particles)
    sigma, alpha = jnp.asarray(1.3), 0.2
    analytic = stein.interaction_jacobian(particles, scores, sigma, alpha)
    for i in range(particles.shape[0]):
        jac = jax.jacfwd(lambda x, i=i: _phi_interaction_autodiff(particles, scores, sigma, alpha, i, x))(particles[i])
        np.testing.assert_allclose(analytic[i], jac, rtol=1e-5, atol=1e-6)


def test_exact_mode_matches_full_autodiff_log_det():
    particles = _particles(m=5, d=3, seed=1)
    sigma, alpha, eps = 0.8, 0.5, 0.1
    res = stein.svgd_sample(
        banana_score, particles, jnp.zeros(5), steps=1, step_size=eps, bandwidth=sigma, alpha=alpha, log_density="exact"
    )
    for i in range(5):
        jac = jax.jacfwd(lambda x, i=i: _phi_full_autodiff(banana_score, particles, sigma, alpha, i, x))(particles[i])
        expected = -jnp.linalg.slogdet(jnp.eye(3) + eps * jac)[1]
        np.testing.assert_allclose(res.log_q[i], expected, rtol=1e-5, atol=1e-6)
    # The margin is eps max_i ||J_i||_F of the mean-field blocks (full Jacobian minus the Hessian / m).
    hess = jax.vmap(jax.hessian(banana_energy))(particles) / 5
    blocks = [
        jax.jacfwd(lambda x, i=i: _phi_full_autodiff(banana_score, particles, sigma, alpha, i, x))(particles[i])
        - hess[i]
        for i in range(5)
    ]
    expected_margin = eps * max(float(np.linalg.norm(np.asarray(j), "fro")) for j in blocks)
    np.testing.assert_allclose(res.invertibility_margin[0], expected_margin, rtol=1e-5)


def _one_step_gap(mode_a, mode_b, eps):
    particles = _particles(m=8, d=3, seed=2)
    kwargs = dict(steps=1, step_size=eps, bandwidth=1.0, alpha=0.7)
    a = stein.svgd_sample(banana_score, particles, jnp.zeros(8), log_density=mode_a, **kwargs)
    b = stein.svgd_sample(banana_score, particles, jnp.zeros(8), log_density=mode_b, **kwargs)
    return float(jnp.max(jnp.abs(a.log_q - b.log_q)))


@pytest.mark.parametrize(("first_order", "exact"), [("closed_form", "exact_noself"), ("closed_form_self", "exact")])
def test_first_order_error_is_quadratic_in_step_size(first_order, exact):
    eps = np.array([0.08, 0.04, 0.02, 0.01])
    with jax.enable_x64(True):
        gaps = np.array([_one_step_gap(first_order, exact, e) for e in eps])
    slope = np.polyfit(np.log(eps), np.log(gaps), 1)[0]
    # log|det(I + eps A)| - eps tr A = -eps^2 tr(A^2)/2 + O(eps^3): slope 2 (measured 1.98-2.00).
    assert 1.9 < slope < 2.1, (slope, gaps)


def test_self_term_is_minus_eps_over_m_trace_of_hessian():
    particles = _particles(m=6, d=3, seed=4)
    eps = 0.05
    kw = dict(steps=1, step_size=eps, bandwidth=1.1, alpha=0.3)
    base = stein.svgd_sample(banana_score, particles, jnp.zeros(6), log_density="closed_form", **kw)
    with_self = stein.svgd_sample(banana_score, particles, jnp.zeros(6), log_density="closed_form_self", **kw)
    hess_tr = jax.vmap(lambda x: jnp.trace(jax.hessian(banana_energy)(x)))(particles)
    np.testing.assert_allclose(with_self.log_q - base.log_q, -eps / 6 * hess_tr, rtol=1e-5, atol=1e-7)


def test_kernel_gradient_matches_jax_grad():
    x, y = jnp.array([0.3, -1.2, 0.5]), jnp.array([1.0, 0.1, -0.4])
    for sigma in (0.5, 1.0, 3.0):
        np.testing.assert_allclose(
            stein.rbf_kernel_grad_first(x, y, sigma), jax.grad(stein.rbf_kernel)(x, y, sigma), rtol=1e-6
        )
        np.testing.assert_allclose(
            stein.rbf_kernel(x, y, sigma), np.exp(-np.sum((np.asarray(x) - np.asarray(y)) ** 2) / (2 * sigma**2))
        )


def test_bandwidth_rules_match_numpy():
    rng = np.random.default_rng(0)
    for m in (2, 5, 10, 33):
        x = rng.normal(size=(m, 3)).astype(np.float32)
        sq = np.array([[np.sum((x[i] - x[j]) ** 2) for j in range(m)] for i in range(m)])
        np.testing.assert_allclose(
            stein.bandwidth_from_rule(jnp.asarray(x), "mean/2") ** 2, sq.mean() / (4 * np.log(m + 1)), rtol=1e-5
        )
        np.testing.assert_allclose(
            stein.bandwidth_from_rule(jnp.asarray(x), "median") ** 2, np.median(sq) / (2 * np.log(m + 1)), rtol=1e-5
        )


def test_svgd_direction_matches_definition():
    particles = _particles(m=5, d=2, seed=5)
    scores = banana_score(particles)
    sigma, alpha = 0.7, 0.4
    phi = stein.svgd_direction(particles, scores, jnp.asarray(sigma), alpha)
    for i in range(5):
        ref = sum(
            stein.rbf_kernel(particles[j], particles[i], sigma) * scores[j]
            + alpha * jax.grad(stein.rbf_kernel)(particles[j], particles[i], sigma)
            for j in range(5)
        )
        np.testing.assert_allclose(phi[i], ref / 5, rtol=1e-5, atol=1e-6)


GAUSS_MU = jnp.array([-0.6871, 0.8010])
GAUSS_COV = 5.0 * jnp.array([[0.2260, 0.1652], [0.1652, 0.6779]])


def _gauss_score(x):
    return -(x - GAUSS_MU) @ jnp.linalg.inv(GAUSS_COV)


def test_svgd_recovers_gaussian_entropy_with_tuned_bandwidth():
    true_h = 0.5 * np.linalg.slogdet(2 * np.pi * np.e * np.asarray(GAUSS_COV))[1]
    estimates = []
    for seed in range(3):
        a0 = jax.random.normal(jax.random.PRNGKey(seed), (200, 2)) * np.sqrt(6.0)
        lq0 = -0.5 * jnp.sum(a0**2, 1) / 6.0 - jnp.log(2 * jnp.pi * 6.0)
        res = jax.jit(lambda a, lq: stein.svgd_sample(_gauss_score, a, lq, steps=200, step_size=0.5, bandwidth=5.0))(
            a0, lq0
        )
        estimates.append(float(stein.stein_entropy(res.log_q)))
        # The particles also reach the target's moments.
        np.testing.assert_allclose(jnp.mean(res.particles, 0), GAUSS_MU, atol=0.15)
    assert abs(np.mean(estimates) - true_h) < 0.1, estimates


def test_jit_equals_eager_and_vmap_equals_loop():
    batch = jax.random.normal(jax.random.PRNGKey(9), (4, 6, 3))
    lq0 = jnp.zeros((4, 6))

    def run(a, lq):
        return stein.svgd_sample(banana_score, a, lq, steps=4, step_size=0.1, alpha=0.5, log_density="closed_form")

    eager = [run(batch[b], lq0[b]) for b in range(4)]
    jitted = jax.jit(run)(batch[0], lq0[0])
    np.testing.assert_allclose(jitted.particles, eager[0].particles, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jitted.log_q, eager[0].log_q, rtol=1e-5, atol=1e-6)
    vm = jax.jit(jax.vmap(run))(batch, lq0)
    np.testing.assert_allclose(vm.particles, np.stack([e.particles for e in eager]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vm.log_q, np.stack([e.log_q for e in eager]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vm.bandwidth, np.stack([e.bandwidth for e in eager]), rtol=1e-5)


def test_gradient_through_sampler_matches_finite_differences():
    """The actor differentiates the entropy estimate through every SVGD step (second order)."""

    def entropy_of_shift(shift):
        base = _particles(m=5, d=2, seed=6)
        # Fixed bandwidth: the rules are deliberately not differentiated (stop_gradient).
        res = stein.svgd_sample(
            banana_score, base + shift, jnp.zeros(5), steps=3, step_size=0.1, alpha=0.5, bandwidth=0.9
        )
        return stein.stein_entropy(res.log_q) + jnp.sum(res.particles[:, 0])

    with jax.enable_x64(True):
        shift = jnp.array([0.2, -0.1], dtype=jnp.float64)
        grad = jax.grad(entropy_of_shift)(shift)
        h = 1e-6
        fd = np.array(
            [(entropy_of_shift(shift + h * e) - entropy_of_shift(shift - h * e)) / (2 * h) for e in jnp.eye(2)]
        )
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)


def _full_jacobians(score_fn, particles, sigma, alpha):
    """Per-particle full Jacobians d phi_i / d a_i by jax.jacfwd of the whole drift (independent reference)."""
    return [
        jax.jacfwd(lambda x, i=i: _phi_full_autodiff(score_fn, particles, sigma, alpha, i, x))(particles[i])
        for i in range(particles.shape[0])
    ]


def test_spectral_norm_and_det_closed_forms_match_numpy():
    for d in (1, 2, 3, 4):
        mats = jax.random.normal(jax.random.PRNGKey(d), (50, d, d))
        mats = mats.at[0].set(jnp.eye(d) * 2.0)  # a repeated eigenvalue (p = 0 in the cubic)
        np.testing.assert_allclose(stein.spectral_norm(mats), np.linalg.norm(np.asarray(mats), 2, axis=(-2, -1)),
                                   rtol=2e-4)  # fmt: skip
        np.testing.assert_allclose(stein.small_det(mats), np.linalg.det(np.asarray(mats)), rtol=1e-4, atol=1e-5)


def _steep_energies():
    centre = jnp.array([0.8, -0.5])
    return {
        # Curvature 60, as the multigoal action cost -30 ||a||^2.
        "quadratic": lambda a: -30.0 * jnp.sum((a - centre) ** 2),
        # Peaks on a lattice of spacing 0.5, particles started next to them.
        "periodic": lambda a: 5.0 * jnp.sum(jnp.cos(2 * jnp.pi * a / 0.5)),
    }


@pytest.mark.parametrize("name", ["quadratic", "periodic"])
def test_adaptive_rule_keeps_steep_energies_invertible_converges_and_stays_first_order(name):
    energy = _steep_energies()[name]
    score = jax.vmap(jax.grad(energy))
    a0 = 0.5 * jax.random.normal(jax.random.PRNGKey(0), (10, 2))
    if name == "periodic":
        a0 = 0.5 * jnp.round(a0 / 0.5) + 0.02 * a0
    kw = dict(steps=10, step_size=0.1, alpha=1.0, trajectory=True)
    fixed = stein.svgd_sample(score, a0, jnp.zeros(10), log_density="exact", **kw)
    # The authors' fixed step folds these maps: margin far above 1 and negative determinants.
    assert float(jnp.max(fixed.invertibility_margin)) > 2.0 and float(jnp.max(fixed.folded)) > 0.5
    target = stein.DEFAULT_TARGET_MARGIN
    runs = {
        mode: stein.svgd_sample(score, a0, jnp.zeros(10), log_density=mode, step_control="adaptive", **kw)
        for mode in ("mean_field", "mean_field_logdet", "per_particle")
    }
    exact, closed = runs["mean_field_logdet"], runs["mean_field"]
    assert float(jnp.max(exact.invertibility_margin)) <= target * (1 + 1e-5)
    assert float(jnp.max(exact.folded)) == 0.0
    # Measured, not bounded: with the self term's secant in the rule, a finite set's own blocks
    # (Hessian / m: 6 on the quadratic, up to 79 on the periodic peaks) do not fold either; without
    # the secant they folded on the periodic peaks and the particles left them (energy 9.9 -> 2.7).
    assert float(jnp.max(runs["per_particle"].folded)) == 0.0
    # The step never depends on the density mode: both runs move the same particles.
    np.testing.assert_allclose(closed.trajectory, exact.trajectory, rtol=1e-5, atol=1e-6)
    # Per step, first order: |eps tr A - log det(I + eps A)| <= d mu^2 / 2 + d mu^3 / (3 (1 - mu)) at
    # margin mu >= eps ||A|| (A the mean-field block, bounded by B).
    mu = np.asarray(exact.invertibility_margin)[:, None]
    gap = np.abs(np.diff(np.asarray(closed.log_q_trajectory - exact.log_q_trajectory), axis=0))
    assert np.all(gap <= 2 * mu**2 / 2 + 2 * mu**3 / (3 * (1 - mu)) + 1e-5)
    # Converge instead of diverging: the energy of the particles rises to near the peak level.
    e0, e_fixed, e_adapt = (float(jnp.mean(jax.vmap(energy)(x))) for x in (a0, fixed.particles, exact.particles))
    peak = {"quadratic": 0.0, "periodic": 10.0}[name]
    assert e_adapt > e0 and abs(e_adapt - peak) < 0.25 * abs(e0 - peak) + 1.5
    assert np.all(np.isfinite(np.asarray(exact.particles)))
    assert abs(e_adapt - peak) < abs(e_fixed - peak) or name == "quadratic"


def test_folded_steps_are_flagged_in_exact_mode():
    # Steep along one axis only and a huge step: I + eps J has ONE negative eigenvalue, so det < 0
    # (an even number of negative eigenvalues keeps det > 0: the margin >= 1 is the general flag).
    score = jax.vmap(jax.grad(lambda x: -50.0 * x[0] ** 2 - 0.1 * x[1] ** 2))
    a0 = _particles(m=4, d=2, seed=1)
    for mode in ("exact", "closed_form_self"):
        res = stein.svgd_sample(score, a0, jnp.zeros(4), steps=1, step_size=1.0, bandwidth=1.0, log_density=mode)
        assert float(res.folded[0]) == 1.0 and float(res.invertibility_margin[0]) > 1.0
    ok = stein.svgd_sample(score, a0, jnp.zeros(4), steps=1, step_size=0.01, bandwidth=1.0, log_density="exact")
    assert float(ok.folded[0]) == 0.0


def test_trajectory_shapes_and_consistency():
    a0 = _particles(m=4, d=2)
    res = stein.svgd_sample(banana_score, a0, jnp.zeros(4), steps=3, step_size=0.1, trajectory=True)
    assert res.trajectory.shape == (4, 4, 2) and res.log_q_trajectory.shape == (4, 4)
    np.testing.assert_allclose(res.trajectory[-1], res.particles)
    np.testing.assert_allclose(res.log_q_trajectory[-1], res.log_q)
    assert res.bandwidth.shape == (3,) and res.invertibility_margin.shape == (3,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(particles=jnp.zeros((3,))), "shape"),
        (dict(particles=jnp.zeros((1, 2)), log_q0=jnp.zeros(1)), "at least 2"),
        (dict(log_q0=jnp.zeros(5)), "log_q0"),
        (dict(steps=-1), "steps"),
        (dict(step_size=float("nan")), "step_size"),
        (dict(alpha=0.0), "alpha"),
        (dict(bandwidth="silverman"), "bandwidth"),
        (dict(bandwidth=-1.0), "bandwidth"),
        (dict(log_density="exactish"), "log_density"),
        (dict(normalizer="n"), "normalizer"),
        (dict(step_control="clipped"), "step_control"),
        (dict(target_margin=1.5), "target_margin"),
        (dict(step_size=jnp.full((5,), 0.1)), "schedule"),
    ],
)
def test_bad_arguments_name_the_problem(kwargs, message):
    args = dict(particles=jnp.zeros((4, 2)), log_q0=jnp.zeros(4), steps=2, step_size=0.1)
    args.update(kwargs)
    particles, log_q0 = args.pop("particles"), args.pop("log_q0")
    with pytest.raises(ValueError, match=message):
        stein.svgd_sample(banana_score, particles, log_q0, **args)


@pytest.mark.parametrize("mode", ["closed_form", "closed_form_self", "exact", "exact_noself", "none"])
def test_batched_sampler_equals_vmap_of_the_single_set_sampler(mode):
    # Each set has its own energy (its own centre), as each state has its own Q in RL.
    with jax.enable_x64(True):
        n_sets, m, d = 4, 6, 3
        a = jax.random.normal(jax.random.PRNGKey(0), (d, d), jnp.float64)
        precision = a @ a.T + jnp.eye(d)
        centres = jax.random.normal(jax.random.PRNGKey(1), (n_sets, d), jnp.float64)

        def energy(x, c):
            return -0.5 * (x - c) @ precision @ (x - c) + 0.3 * jnp.sum(jnp.sin(2 * x))

        def set_score(c):
            return jax.vmap(jax.grad(lambda x: energy(x, c)))

        def all_scores(x):
            return jax.vmap(lambda c, xs: set_score(c)(xs))(centres, x)

        p0 = jax.random.normal(jax.random.PRNGKey(2), (n_sets, m, d), jnp.float64)
        lq0 = -jnp.sum(p0**2, axis=-1)
        kw = dict(steps=3, step_size=0.1, alpha=0.37, log_density=mode, trajectory=True, step_control="adaptive")
        ref = jax.vmap(lambda c, x, lq: stein.svgd_sample(set_score(c), x, lq, **kw))(centres, p0, lq0)
        got = stein.svgd_sample_batched(all_scores, p0, lq0, **kw)
        for field in ref._fields:
            np.testing.assert_allclose(getattr(got, field), getattr(ref, field), rtol=1e-10, atol=1e-12, err_msg=field)
    with pytest.raises(ValueError, match=r"shape \(B, m, d\)"):
        stein.svgd_sample_batched(all_scores, p0[0], lq0[0], steps=1, step_size=0.1)
