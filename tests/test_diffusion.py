"""DIME's sampler and entropy bound against closed forms (linear-Gaussian chains), scipy and autodiff."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from s2ac import diffusion as dfn
from s2ac.diffusion_net import DiffusionScoreNet


def test_gaussian_kernel_log_prob_vs_scipy():
    rng = np.random.default_rng(0)
    x, mean, scale = rng.normal(size=3), rng.normal(size=3), rng.uniform(0.1, 2.0, size=3)
    want = stats.multivariate_normal(mean, np.diag(scale**2)).logpdf(x)
    np.testing.assert_allclose(
        dfn.gaussian_log_prob(jnp.asarray(x), jnp.asarray(mean), jnp.asarray(scale)), want, rtol=1e-5
    )
    cfg = dfn.DiffusionConfig()
    np.testing.assert_allclose(
        dfn.prior_log_prob(jnp.asarray(x, jnp.float32), cfg), stats.norm(0, 2.5).logpdf(x).sum(), rtol=1e-5
    )
    np.testing.assert_allclose(
        dfn.prior_score(jnp.asarray(x), cfg), jax.grad(lambda y: dfn.prior_log_prob(y, cfg))(jnp.asarray(x)), rtol=1e-5
    )


def test_tanh_log_det_vs_autodiff_jacobian():
    x = jnp.array([-2.0, -0.3, 0.0, 1.2])
    jac = jax.jacfwd(jnp.tanh)(x)
    np.testing.assert_allclose(dfn.tanh_log_det(x), jnp.linalg.slogdet(jac)[1], rtol=1e-4)
    far = np.array([-6.0, 4.0, 9.0])  # float64 reference where float32's 1 - tanh^2 loses digits
    np.testing.assert_allclose(
        dfn.tanh_log_det(jnp.asarray(far, jnp.float32)), np.sum(np.log1p(-(np.tanh(far) ** 2))), rtol=1e-5
    )
    # stable far out, where 1 - tanh^2 underflows
    assert np.isfinite(float(dfn.tanh_log_det(jnp.array([40.0]))))


def test_cosine_schedule_and_step_sizes_by_hand():
    cfg = dfn.DiffusionConfig(n_steps=16)
    n = np.arange(16)
    t = (16 - n) / 16
    want = 0.999 * np.cos(0.5 * np.pi * (1.008 - t) / 1.008) ** 2 + 0.001
    np.testing.assert_allclose(dfn.cosine_schedule(jnp.asarray(n, jnp.float32), cfg), want, rtol=1e-5)
    params = dfn.init_sampler_params(cfg, 3)
    np.testing.assert_allclose(dfn.step_sizes(params, cfg), 0.1 * want, rtol=1e-5)  # dt starts at 0.1
    np.testing.assert_allclose(dfn.friction(params), np.ones(3), rtol=1e-6)
    assert want[0] > 0.99 and want[-1] < 0.02  # large steps first, small at the end


@pytest.mark.parametrize("steps", [0, -3, 2.0, True, None])
def test_bad_step_count_one_line(steps):
    with pytest.raises(ValueError, match=r"diffusion steps \(n_steps\) must be an int >= 1") as info:
        dfn.DiffusionConfig(n_steps=steps)
    assert "\n" not in str(info.value)


def linear_chain_reference(cfg, params, b):
    """Exact E[bound] and exact entropy for the drift f(x) = b x, per dimension, by the Gaussian
    moments of the chain (v_{n+1} = a_f^2 v_n + 2 eta, Cov(x_n, x_{n+1}) = a_f v_n)."""
    s2 = cfg.prior_std**2
    etas = np.asarray(dfn.step_sizes(params, cfg))[:, None] / np.asarray(dfn.friction(params))[None, :]
    v = np.full(etas.shape[1], s2)
    bound = (0.5 * np.log(2 * np.pi * s2) + 0.5) * len(v)  # - E log p_0(x_0)
    for eta in etas:
        a_f, a_b = 1 - eta / s2 + eta * b, 1 - eta / s2
        v_next = a_f**2 * v + 2 * eta
        e_log_f = -0.5 * np.log(4 * np.pi * eta) - 0.5
        e_log_b = -0.5 * np.log(4 * np.pi * eta) - (v - 2 * a_b * a_f * v + a_b**2 * v_next) / (4 * eta)
        bound += np.sum(e_log_b - e_log_f)
        v = v_next
    return bound, np.sum(0.5 * np.log(2 * np.pi * np.e * v)), v


def expected_tanh_log_det(v):
    """E[log tanh'(x)], x ~ N(0, v) per dimension, by Gauss-Hermite quadrature (NumPy)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    total = 0.0
    for var in v:
        x = nodes * np.sqrt(var)
        total += np.sum(weights * np.log1p(-(np.tanh(x) ** 2))) / np.sqrt(2 * np.pi)
    return total


@pytest.mark.parametrize("n_steps, b, squash", [(4, -2.0, False), (16, 0.0, False), (8, -4.0, True)])
def test_bound_matches_linear_gaussian_closed_form_and_lies_below_the_entropy(n_steps, b, squash):
    cfg = dfn.DiffusionConfig(n_steps=n_steps, squash=squash, init_step_size=0.3)
    params = dfn.SamplerParams(
        step_size_raw=dfn.init_sampler_params(cfg, 2).step_size_raw,
        friction_raw=jnp.array([dfn.inverse_softplus(1.0), dfn.inverse_softplus(0.5)], jnp.float32),
    )
    keys = jax.random.split(jax.random.PRNGKey(n_steps), 20000)
    out = jax.jit(jax.vmap(lambda k: dfn.sample(lambda x, n: b * x, params, cfg, k)))(keys)
    ref_bound, ref_entropy, v = linear_chain_reference(cfg, params, b)
    if squash:
        e_log_det = expected_tanh_log_det(v)
        ref_bound, ref_entropy = ref_bound + e_log_det, ref_entropy + e_log_det
        assert float(jnp.max(jnp.abs(out.action))) <= 1.0
    mc = np.asarray(out.entropy_bound, np.float64)
    se = mc.std() / np.sqrt(len(mc))
    assert abs(mc.mean() - ref_bound) < 4 * se + 1e-3, (mc.mean(), ref_bound, se)
    assert ref_bound <= ref_entropy + 1e-9  # the bound lies below the exact entropy
    if b == 0.0:  # the prior's own OU chain: the fixed backward kernel nearly reverses it, a tight bound
        assert ref_entropy - ref_bound < 0.05
    else:  # a learned drift the backward kernel does not reverse: a real gap, resolved by the samples
        assert mc.mean() + 4 * se < ref_entropy
    # the endpoint's variance matches the chain's (the sampler follows (D4))
    np.testing.assert_allclose(np.var(np.asarray(out.pre_squash), axis=0), v, rtol=0.05)
    # bookkeeping of the costs (D8)
    np.testing.assert_allclose(out.entropy_bound, -(out.running_cost + out.prior_log_prob), rtol=1e-5, atol=1e-5)


def test_gradients_flow_through_every_step_and_the_net():
    cfg = dfn.DiffusionConfig(n_steps=4)
    net = DiffusionScoreNet(act_dim=2, width=16, n_layers=2, time_width=8)
    obs = jnp.ones((5, 3))
    net_params = net.init(jax.random.PRNGKey(0), jnp.zeros((2,)), obs[0], jnp.float32(0.0))
    # at init the last layer is ~0: the sampler is the prior's Ornstein-Uhlenbeck chain
    out0 = net.apply(net_params, jnp.ones((5, 2)), obs, jnp.float32(3.0))
    assert out0.shape == (5, 2) and float(jnp.max(jnp.abs(out0))) < 1e-4
    sp = dfn.init_sampler_params(cfg, 2)

    def loss(net_params, sp):
        res = dfn.sample_batched(lambda x, o, n: net.apply(net_params, x, o, n), sp, cfg, obs, jax.random.PRNGKey(1))
        q = -jnp.sum((res.action - 0.5) ** 2, axis=-1)
        return jnp.mean(-q - 0.2 * res.entropy_bound)

    g_net, g_sp = jax.grad(loss, argnums=(0, 1))(net_params, sp)
    last = g_net["params"]["out"]["kernel"]
    assert bool(jnp.all(jnp.isfinite(last))) and float(jnp.abs(last).max()) > 0
    assert float(jnp.abs(g_sp.step_size_raw)) > 0 and float(jnp.abs(g_sp.friction_raw).min()) > 0
    res = dfn.sample_batched(lambda x, o, n: net.apply(net_params, x, o, n), sp, cfg, obs, jax.random.PRNGKey(1))
    assert res.action.shape == (5, 2) and res.entropy_bound.shape == (5,)
    traj = dfn.sample(lambda x, n: jnp.zeros_like(x), sp, cfg, jax.random.PRNGKey(2), trajectory=True).trajectory
    assert traj.shape == (5, 2)
    assert math.isclose(dfn.inverse_softplus(0.1), float(jnp.log(jnp.expm1(0.1))), rel_tol=1e-6)


@pytest.mark.slow
def test_diffusion_bound_experiment_tiny(tmp_path):
    """The reproduce command end to end on a tiny budget: files, the exact sandwich, the k-NN check."""
    from s2ac.experiments.diffusion_bound import BoundConfig, gaussian_entropy, run_diffusion_bound

    cfg = BoundConfig(
        steps=(2,),
        iterations=3,
        batch=16,
        width=8,
        n_layers=1,
        eval_samples=2000,
        knn_sets=2,
        knn_set_size=500,
        truth_samples=4000,
    )
    summary = run_diffusion_bound(tmp_path, cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png", "report.md", "summary.json"]
    assert [(r["target"], r["n_steps"]) for r in summary["runs"]] == [("gaussian", 2), ("mixture", 2)]
    # Gibbs: the bound (below H(q)) lies below the cross-entropy (above H(q)), beyond the sampling error
    for r in summary["runs"]:
        assert r["bound"] + 4 * r["bound_se"] < r["cross_entropy"]
    g = summary["targets"]["gaussian"]
    assert (
        abs(g["truth"] - 0.5 * math.log(np.linalg.det(2 * math.pi * math.e * np.array([[1, 0.6], [0.6, 0.8]])))) < 1e-9
    )
    assert abs(g["mc"] - gaussian_entropy()) < 4 * g["mc_se"] + 1e-3  # MC truth agrees with the closed form
    assert "s2ac reproduce diffusion-bound" in (tmp_path / "report.md").read_text()


def test_bench_diffusion_tiny():
    from s2ac.bench_diffusion import BenchDiffusion, run_bench_diffusion

    out = run_bench_diffusion(
        BenchDiffusion(steps=(1, 3), batch=4, width=8, n_layers=1, rounds=1, repeats=1, compare_sac=False)
    )
    assert set(out["steps"]) == {"1", "3"} and out["steps"]["1"]["sample_vs_1_steps"] == 1.0
    assert all(v["sample_ms"] > 0 and v["actor_grad_ms"] > 0 for v in out["steps"].values())
    with pytest.raises(ValueError, match="diffusion steps"):
        run_bench_diffusion(BenchDiffusion(steps=(0,)))


def test_authors_temperature_target_on_the_bound():
    """Their rule (mean running cost -> 4|A|) equals a bound target of 4|A| minus the prior's entropy:
    the terminal cost's mean, checked here by sampling the prior."""
    cfg = dfn.DiffusionConfig()
    x0 = 2.5 * jax.random.normal(jax.random.PRNGKey(0), (200_000, 3))
    mean_terminal = float(jnp.mean(jax.vmap(lambda x: dfn.prior_log_prob(x, cfg))(x0)))
    # bound = -(running + terminal); running at its target 4|A|
    assert abs(dfn.dime_target_entropy(3, cfg) - (-(4.0 * 3 + mean_terminal))) < 0.02
    assert abs(dfn.dime_target_entropy(1, cfg) - (-1.665)) < 1e-3
