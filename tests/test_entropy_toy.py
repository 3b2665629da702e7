"""Entropy toy: ground truths against closed forms and numpy, the acceptance number, and a quick run's outputs."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from s2ac.experiments import entropy_toy as et

MIX = dict(mean_scale=2.0, var_range=(0.5, 2.0))


def np_mvn_log_prob(x, mean, cov):
    """Reference multivariate normal log-density (float64 numpy, d-dimensional normaliser)."""
    d = len(mean)
    diff = x - mean
    maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
    return -0.5 * maha - 0.5 * np.linalg.slogdet(cov)[1] - 0.5 * d * np.log(2 * np.pi)


def test_true_entropy_of_the_poster_target():
    cfg = et.EntropyToyConfig()
    cov = np.asarray(cfg.target_cov)
    assert et.gaussian_entropy(cov) == pytest.approx(3.4112, abs=1e-4)
    # Independent form: 1/2 d (1 + log 2 pi) + 1/2 log det Sigma.
    assert et.gaussian_entropy(cov) == pytest.approx(1 + math.log(2 * math.pi) + 0.5 * math.log(np.linalg.det(cov)))


def test_mixture_log_prob_matches_numpy():
    mix = et.make_mixture(np.random.default_rng(0), d=4, n_components=3, cov_type="random", **MIX)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (50, 4)), np.float64) * 2.0
    covs = np.einsum("kij,klj->kil", np.asarray(mix.chols, np.float64), np.asarray(mix.chols, np.float64))
    comps = np.stack([np_mvn_log_prob(x, np.asarray(mix.means[k], np.float64), covs[k]) for k in range(3)], 1)
    expected = np.log(np.mean(np.exp(comps), axis=1))  # equal weights
    np.testing.assert_allclose(et.mixture_log_prob(mix, jnp.asarray(x, jnp.float32)), expected, rtol=1e-4, atol=1e-4)
    # Score: row-wise gradient of the log-density.
    score = et.mixture_score_fn(mix)(jnp.asarray(x[:3], jnp.float32))
    direct = jax.vmap(jax.grad(lambda xi: et.mixture_log_prob(mix, xi)))(jnp.asarray(x[:3], jnp.float32))
    np.testing.assert_allclose(score, direct, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cov_type", ["isotropic", "random"])
def test_mc_entropy_equals_closed_form_for_one_component_in_d10(cov_type):
    mix = et.make_mixture(np.random.default_rng(3), d=10, n_components=1, cov_type=cov_type, **MIX)
    cov = np.asarray(mix.chols[0], np.float64) @ np.asarray(mix.chols[0], np.float64).T
    h, se = et.mc_entropy(mix, jax.random.PRNGKey(4), 200_000)
    exact = et.gaussian_entropy(cov)
    assert float(se) == pytest.approx(math.sqrt(10 / 2 / 200_000), rel=0.05)  # Var[-log p] = d/2 for a Gaussian
    assert abs(float(h) - exact) < 5 * float(se)
    # A 1-D normaliser would be off by (d - 1)/2 log(2 pi) = 8.27 nats: the error the sweep guards against.
    assert abs(float(h) - 4.5 * math.log(2 * math.pi) - exact) > 8.0


def test_mixture_sample_has_the_mixture_mean():
    mix = et.make_mixture(np.random.default_rng(5), d=3, n_components=4, cov_type="random", **MIX)
    x = np.asarray(et.mixture_sample(mix, jax.random.PRNGKey(6), 100_000), np.float64)
    np.testing.assert_allclose(x.mean(0), np.asarray(mix.means).mean(0), atol=0.03)


def test_knn_entropy_recovers_the_target_entropy():
    cfg = et.EntropyToyConfig()
    cov = np.asarray(cfg.target_cov)
    x = (
        np.asarray(cfg.target_mean)
        + np.asarray(jax.random.normal(jax.random.PRNGKey(0), (2000, 2))) @ np.linalg.cholesky(cov).T
    )
    assert float(et.knn_entropy(jnp.asarray(x, jnp.float32), 3)) == pytest.approx(et.gaussian_entropy(cov), abs=0.08)


def test_langevin_gaussian_entropy_recursion():
    cfg = et.EntropyToyConfig()
    cov = np.asarray(cfg.target_cov)
    noisy = et.langevin_gaussian_entropy(6.0 * np.eye(2), cov, 0.1, 2000, noise=True)
    assert noisy[0] == pytest.approx(et.gaussian_entropy(6.0 * np.eye(2)))
    assert noisy[-1] == pytest.approx(et.ula_stationary_entropy(cov, 0.1), abs=1e-6)
    assert noisy[-1] == pytest.approx(et.gaussian_entropy(cov) + 0.037, abs=0.002)  # ULA's step-size bias
    det = et.langevin_gaussian_entropy(6.0 * np.eye(2), cov, 0.1, 5, noise=False)
    np.testing.assert_allclose(np.diff(det), np.linalg.slogdet(np.eye(2) - 0.1 * np.linalg.inv(cov))[1])


def test_acceptance_number_200_particles_200_steps_sigma5():
    cfg = et.EntropyToyConfig()
    res = et.svgd_toy_entropies(
        cfg, n_particles=200, steps=200, bandwidths=(5.0,), mode="closed_form", init_indices=[0], seeds=[0, 1, 2]
    )
    h, margin = res["sigma=5"]
    truth = et.gaussian_entropy(np.asarray(cfg.target_cov))
    assert abs(float(np.mean(h)) - truth) < 0.1
    assert float(np.max(margin)) < 1.0  # every step map provably invertible


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("entropy_toy")
    return out, et.run_entropy_toy(out, quick=True, seed=0)


@pytest.mark.slow  # the experiment end to end; its maths is tested above
def test_quick_run_writes_its_files(quick_run):
    out, summary = quick_run
    for name in summary["files"]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert {"snapshots_wide.png", "snapshots_offset.png", "entropy_vs_steps.png", "bandwidth_sweep.png"} <= set(
        summary["files"]
    )
    # Strict JSON (no NaN/Infinity) and identical to the returned dict.
    on_disk = json.loads((out / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert on_disk == json.loads(json.dumps(summary))
    md = (out / "summary.md").read_text()
    assert "s2ac reproduce entropy-toy" in md and "Wall time" in md


@pytest.mark.slow  # the experiment end to end; its maths is tested above
def test_quick_run_numbers(quick_run):
    _, summary = quick_run
    truth = summary["true_entropy"]
    svgd = [
        r for r in summary["sampler_comparison"]["rows"] if r["sampler"].startswith("SVGD") and "closed" in r["sampler"]
    ]
    wide = next(r for r in svgd if r["init"] == "N(0, 6I)")
    assert math.isfinite(wide["logdet_estimate_mean"]) and abs(wide["logdet_estimate_mean"] - truth) < 0.3
    hmc = next(r for r in summary["sampler_comparison"]["rows"] if r["sampler"].startswith("HMC"))
    assert abs(hmc["knn_entropy_of_particles"] - truth) < 0.3  # HMC's particles are right ...
    assert hmc["logdet_estimate_mean"] < truth - 5.0  # ... its log-det accounting is not
    assert summary["headline"]["acceptance"]["passed"]
    for row in summary["mixture_sweep"]:
        if row["n_components"] == 1:  # MC truth of a single Gaussian: d/2 log(2 pi e) + 1/2 log det in [0.5, 2]^d
            d = row["d"]
            lo, hi = (0.5 * d * math.log(2 * math.pi * math.e * v) for v in (0.5, 2.0))
            assert lo < row["true_entropy_mc"] < hi
