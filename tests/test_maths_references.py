"""The agents' maths against independent references (numpy/scipy, hand derivations, autodiff of
re-implementations written here from REFERENCE.md), so that a wrong formula cannot pass by agreeing
with itself. Critics are evaluated by :func:`np_critic`, a numpy re-implementation of the ELU MLP
from the parameter tree (with its exact action gradient), or :func:`jnp_min_q` (the same in jnp, for
autodiff of the references); densities by scipy.

Each test was checked to FAIL on a deliberately broken implementation (then reverted):

=========================================================  ============================================
test                                                       break applied to ``s2ac/`` (assertion that failed)
=========================================================  ============================================
test_actor_loss_and_q0_gradient_match_hand_numpy           ``stop_gradient`` on the SVGD score (gradient);
                                                           tanh correction sign flipped (loss value)
test_s2ac_soft_value_without_svgd_matches_scipy_density    tanh correction sign flipped (log pi)
test_polyak_and_bellman_target_use_the_right_critics       reversed tau (Polyak leaf); S²AC soft value from
                                                           the online critic, S²AC next-state particles
                                                           from the target critic, SAC next Q from the
                                                           online critic, SQL value from the online critic
                                                           (hand target)
test_sac_target_entropy_default_and_alpha_loss             target entropy ``+act_dim`` (default); alpha
                                                           loss with ``H + target`` (hand formula)
test_s2ac_log_prob_with_svgd_steps_matches_per_step_jac..  exact mode without the self term (log pi)
test_adaptive_margin_guard_in_every_log_density_mode       secant self term dropped from the rule (eps)
test_init_density_field_gives_the_named_q0_density         ``init_density`` branches swapped (log q0)
test_sampler_alpha_sets_the_drift_temperature              sampler ignores ``sampler_alpha`` (drift)
test_sql_energy_matches_hand_formula                       sign of the tanh term of the u-space energy
test_sql_soft_value_and_critic_target                      log-volume dropped (value)
test_sac_nf_log_prob_is_the_change_of_variables            radial log-det with ``d`` for ``d - 1``
test_amortizer_loss_is_numpy_mmd_and_its_gradient          MMD bandwidths not multiplied by sigma (value)
=========================================================  ============================================
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from s2ac import stein
from s2ac.agents import make_agent, make_agent_config
from s2ac.types import Batch, EnvSpec

LINE_1D = EnvSpec(3, 1, (-2.0,), (1.0,))
BOX_2D = EnvSpec(3, 2, (-2.0, 0.0), (1.0, 3.0))
HOPPER = EnvSpec(11, 3, (-1.0,) * 3, (1.0,) * 3)
TRUNC = 3.0  # S²AC's default truncation of q0 (mean +- 3 std)


# -- independent re-implementations ------------------------------------------------------------


def _dense_layers(params):
    """``[(kernel, bias), ...]`` of an MLP parameter tree, in layer order, as float64 numpy."""

    def find(tree):
        if isinstance(tree, dict):
            if any(k.startswith("Dense_") for k in tree):
                return tree
            for v in tree.values():
                found = find(v)
                if found is not None:
                    return found
        return None

    mlp = find(dict(params))
    names = sorted((k for k in mlp if k.startswith("Dense_")), key=lambda n: int(n.split("_")[1]))
    return [(np.asarray(mlp[n]["kernel"], np.float64), np.asarray(mlp[n]["bias"], np.float64)) for n in names]


def _elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def np_critic(params, obs, act):
    """Twin ELU critics on ``[obs, act]`` in numpy: ``q (K, N)`` and ``dq/da (K, N, d)``."""
    obs, act = np.asarray(obs, np.float64), np.asarray(act, np.float64)
    n, o, d = act.shape[0], obs.shape[-1], act.shape[-1]
    layers = _dense_layers(params)
    qs, dqs = [], []
    for k in range(layers[0][0].shape[0]):
        x = np.concatenate([np.broadcast_to(obs, (n, o)), act], axis=-1)
        dx = np.zeros((n, d, o + d))
        dx[:, :, o:] = np.eye(d)
        for w, b in layers[:-1]:
            pre = x @ w[k] + b[k]
            slope = np.where(pre > 0, 1.0, np.exp(np.minimum(pre, 0.0)))
            x, dx = _elu(pre), (dx @ w[k]) * slope[:, None, :]
        w, b = layers[-1]
        qs.append((x @ w[k] + b[k])[:, 0])
        dqs.append((dx @ w[k])[:, :, 0])
    return np.stack(qs), np.stack(dqs)


def np_min_q(params, obs, act):
    """``min_k Q_k`` and its action gradient (the minimising critic's), numpy."""
    q, dq = np_critic(params, obs, act)
    idx = np.argmin(q, axis=0)
    return q[idx, np.arange(q.shape[1])], dq[idx, np.arange(q.shape[1])]


def jnp_min_q(params, obs, a):
    """``min_k Q_k(obs, a)`` for one state and one action, written in jnp from the parameter tree."""
    layers = _dense_layers(params)
    values = []
    for k in range(layers[0][0].shape[0]):
        x = jnp.concatenate([jnp.asarray(obs, jnp.float64), a])
        for w, b in layers[:-1]:
            x = jax.nn.elu(x @ w[k] + b[k])
        w, b = layers[-1]
        values.append((x @ w[k] + b[k])[0])
    return jnp.min(jnp.stack(values))


def np_log_tanh_jac(u, low, high):
    """``sum_k log(scale_k (1 - tanh(u_k)^2))`` in float64, the log-Jacobian of the box squash."""
    scale = (np.asarray(high) - np.asarray(low)) / 2.0
    return np.sum(np.log(scale * (1.0 - np.tanh(np.asarray(u, np.float64)) ** 2)), axis=-1)


def np_squash(u, low, high):
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    return (high + low) / 2.0 + (high - low) / 2.0 * np.tanh(np.asarray(u, np.float64))


# -- helpers -------------------------------------------------------------------------------------


def small(algo, preset="corrected", env="Hopper-v5", **fields):
    cfg = make_agent_config(algo, preset, env)
    return dataclasses.replace(cfg, critic_hidden=(8, 8), actor_hidden=(8,), batch_size=8, **fields)


_STATES: dict = {}


def base_state(algo, spec, seed=0):
    """A cached initial state of ``small(algo)`` on ``spec`` (the networks' shapes do not depend on the
    sampler settings, so every S²AC config of these tests can share it)."""
    if (algo, spec, seed) not in _STATES:
        _STATES[algo, spec, seed] = jax.jit(make_agent(small(algo), spec).init)(jax.random.PRNGKey(seed))
    return _STATES[algo, spec, seed]


def init_params(state):
    """S²AC's q0 parameters."""
    return state.init_params


def with_init_params(state, params):
    return state.replace(init_params=params)


def to64(tree):
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), tree)


def scale_last_layer(params, factor, bias_shift=0.0):
    """The critic(s) with the output layer's kernel scaled by ``factor`` and ``bias_shift`` added to its bias."""
    names = lambda path: [str(getattr(p, "key", "")) for p in path]  # noqa: E731
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    last = max((n for path, _ in flat for n in names(path) if n.startswith("Dense_")), key=lambda n: int(n[6:]))

    def edit(path, x):
        if last not in names(path):
            return x
        return x * factor if names(path)[-1] == "kernel" else x + bias_shift

    return jax.tree_util.tree_map_with_path(edit, params)


def gaussian_head_params(params, mean, log_std):
    """q0 network whose output is the constant ``(mean, log_std)`` (last kernel zero, bias set)."""
    layers = sorted(params["params"]["MLP_0"], key=lambda n: int(n[6:]))
    last = layers[-1]
    new = jax.tree_util.tree_map(lambda x: x, params)
    new["params"]["MLP_0"][last] = {
        "kernel": jnp.zeros_like(params["params"]["MLP_0"][last]["kernel"]),
        "bias": jnp.concatenate([jnp.asarray(mean, jnp.float32), jnp.asarray(log_std, jnp.float32)]),
    }
    return new


def batch_of(spec, n=8, seed=0, terminated=None):
    rng = np.random.default_rng(seed)
    low, high = np.asarray(spec.action_low), np.asarray(spec.action_high)
    term = rng.integers(0, 2, n) if terminated is None else terminated
    return Batch(
        jnp.asarray(rng.normal(size=(n, spec.obs_dim)), jnp.float32),
        jnp.asarray(rng.uniform(low, high, (n, spec.act_dim)), jnp.float32),
        jnp.asarray(rng.normal(size=n), jnp.float32),
        jnp.asarray(rng.normal(size=(n, spec.obs_dim)), jnp.float32),
        jnp.asarray(term, jnp.float32),
    )


# -- 1. the actor's loss and its gradient through one SVGD step, by hand ----------------------------


def test_actor_loss_and_q0_gradient_match_hand_numpy():
    """1-D action, m = 2 particles, one SVGD step, fixed bandwidth: the actor loss written out by hand
    (REFERENCE.md §1: drift, closed-form density, tanh correction) in numpy, with the score of the
    u-space target from the numpy critic's exact action gradient. Its gradient in q0's (mu, log sigma)
    by central differences of that numpy loss includes the second-order path through grad_a Q; the
    same gradient with the scores frozen differs by far more than the tolerance."""
    eps, sigma, alpha, alpha_s = 0.3, 0.6, 0.2, 0.5
    cfg = small(
        "s2ac",
        n_particles=2,
        svgd_steps=1,
        svgd_step_size=eps,
        svgd_step_control="fixed",
        bandwidth=sigma,
        log_density="closed_form",
        normalizer="m",
        alpha=alpha,
        sampler_alpha=alpha_s,
        score_space="squashed",
        init_density="truncated",
    )
    mu0, log_std0 = 0.3, math.log(0.5)
    low, high = np.array(LINE_1D.action_low), np.array(LINE_1D.action_high)
    center, scale = (high + low) / 2, (high - low) / 2
    with jax.enable_x64(True):
        agent = make_agent(cfg, LINE_1D)
        state = base_state("s2ac", LINE_1D)
        critic = to64(scale_last_layer(state.critic_params, 6.0))  # a curved critic: grad^2 Q matters
        actor = to64(gaussian_head_params(init_params(state), [mu0], [log_std0]))
        obs = jax.random.normal(jax.random.PRNGKey(1), (2, 3), jnp.float64)
        key = jax.random.PRNGKey(2)
        loss, grads = jax.jit(jax.value_and_grad(lambda p: agent.actor_loss(p, critic, obs, key)[0]))(actor)
        last = sorted(grads["params"]["MLP_0"], key=lambda n: int(n[6:]))[-1]
        code_grad = np.asarray(grads["params"]["MLP_0"][last]["bias"])  # d loss / d (mu, log sigma)
        u0, _ = agent.initial_particles(actor, obs, key)
    z = (np.asarray(u0)[..., 0] - mu0) / math.exp(log_std0)  # (B, 2) standard truncated-normal draws
    obs_np = np.asarray(obs)

    def scores_at(u):
        out = np.empty_like(u)
        for b in range(u.shape[0]):
            _, dq = np_min_q(critic, obs_np[b], center + scale * np.tanh(u[b])[:, None])
            # d/du [Q(c + s tanh u) + alpha_s log(s (1 - tanh^2 u))]
            out[b] = dq[:, 0] * scale[0] * (1 - np.tanh(u[b]) ** 2) - 2 * alpha_s * np.tanh(u[b])
        return out

    frozen = scores_at(mu0 + math.exp(log_std0) * z)

    def ref_loss(mu, log_std, freeze=False):
        std = math.exp(log_std)
        u = mu + std * z
        s = frozen if freeze else scores_at(u)
        r = u[:, 0] - u[:, 1]
        k = np.exp(-(r**2) / (2 * sigma**2))
        # phi(u_i) = (1/2) [s_i + k s_j + alpha_s k (u_i - u_j) / sigma^2]  (the j = i repulsion is 0)
        phi = 0.5 * np.stack(
            [s[:, 0] + k * s[:, 1] + alpha_s * k * r / sigma**2, s[:, 1] + k * s[:, 0] - alpha_s * k * r / sigma**2],
            axis=1,
        )
        u1 = u + eps * phi
        # closed form, j != i only: eps/(m sigma^2) k [(u_i - u_j) s_j + alpha_s/sigma^2 (u_i - u_j)^2 - alpha_s]
        dlogq = (
            eps
            / (2 * sigma**2)
            * k[:, None]
            * (np.stack([r * s[:, 1], -r * s[:, 0]], axis=1) + alpha_s * (r**2 / sigma**2)[:, None] - alpha_s)
        )
        log_q0 = -0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi) - math.log(math.erf(TRUNC / math.sqrt(2)))
        log_pi = log_q0 + dlogq - np.log(scale[0] * (1 - np.tanh(u1) ** 2))
        q1 = np.stack([np_min_q(critic, obs_np[b], center + scale * np.tanh(u1[b])[:, None])[0] for b in range(2)])
        return float(np.mean(alpha * log_pi - q1))

    h = 1e-6

    def fd(freeze):
        return np.array(
            [
                (ref_loss(mu0 + h, log_std0, freeze) - ref_loss(mu0 - h, log_std0, freeze)) / (2 * h),
                (ref_loss(mu0, log_std0 + h, freeze) - ref_loss(mu0, log_std0 - h, freeze)) / (2 * h),
            ]
        )

    full, first_order_only = fd(False), fd(True)
    np.testing.assert_allclose(float(loss), ref_loss(mu0, log_std0), rtol=1e-7)  # float32 box constants
    np.testing.assert_allclose(code_grad, full, rtol=1e-6, atol=1e-8)
    # The test has power: dropping the second-order path moves the gradient by >> the tolerance.
    assert np.max(np.abs(full - first_order_only)) > 1e-3 * np.max(np.abs(full))


# -- 4. the soft value with L = 0 against scipy densities ----------------------------------------


@pytest.mark.parametrize("init", ["fixed", "learned"])
def test_s2ac_soft_value_without_svgd_matches_scipy_density(init):
    """L = 0: pi is q0 pushed through the box squash, so
    V(s') = mean_j min Qbar(s', a_j) - alpha mean_j [log q0(u_j) - log|d squash/du(u_j)|]
    with q0 = N(0, init_std^2) (fixed) or N(mu, sigma^2) truncated to mu +- 3 sigma (learned), by scipy."""
    cfg = small("s2ac", init=init, svgd_steps=0, alpha=0.3)
    agent = make_agent(cfg, BOX_2D)
    state = base_state("s2ac", BOX_2D)
    target = base_state("s2ac", BOX_2D, seed=5).critic_params  # a target critic unlike the online one
    obs = jax.random.normal(jax.random.PRNGKey(1), (3, 3))
    parts = agent.sample(
        init_params(state) if init == "learned" else None, state.critic_params, obs, jax.random.PRNGKey(2)
    )
    value = np.asarray(jax.jit(agent.soft_value)(target, obs, parts))
    u = np.asarray(parts.u, np.float64)
    if init == "fixed":
        log_q0 = stats.norm(0.0, cfg.init_std).logpdf(u).sum(-1)
    else:
        mean, log_std = (np.asarray(x, np.float64)[:, None] for x in agent.init_net.apply(init_params(state), obs))
        log_q0 = stats.truncnorm(-TRUNC, TRUNC, loc=mean, scale=np.exp(log_std)).logpdf(u).sum(-1)
    log_pi = log_q0 - np_log_tanh_jac(u, BOX_2D.action_low, BOX_2D.action_high)
    np.testing.assert_allclose(parts.log_prob, log_pi, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(parts.action, np_squash(u, BOX_2D.action_low, BOX_2D.action_high), atol=1e-6)
    for b in range(3):
        q, _ = np_min_q(target, np.asarray(obs[b]), np.asarray(parts.action[b]))
        np.testing.assert_allclose(value[b], np.mean(q) - 0.3 * np.mean(log_pi[b]), rtol=1e-4, atol=1e-4)


# -- 6. what the preset fields do -------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["paper", "corrected"])
def test_init_density_field_gives_the_named_q0_density(preset):
    """``paper`` (init_density="untruncated") scores the truncated draws with the plain normal density;
    ``corrected`` ("truncated") with the truncated normal's, i.e. minus d log(Phi(3) - Phi(-3))."""
    cfg = small("s2ac", preset)
    assert cfg.init_density == {"paper": "untruncated", "corrected": "truncated"}[preset]
    agent = make_agent(cfg, HOPPER)
    state = base_state("s2ac", HOPPER)
    obs = jax.random.normal(jax.random.PRNGKey(1), (4, 11))
    u0, log_q0 = agent.initial_particles(init_params(state), obs, jax.random.PRNGKey(2))
    mean, log_std = (np.asarray(x, np.float64)[:, None] for x in agent.init_net.apply(init_params(state), obs))
    std = np.exp(log_std)
    assert np.all(np.abs((np.asarray(u0) - mean) / std) <= TRUNC * (1 + 1e-5))  # draws are always truncated
    if preset == "paper":
        ref = stats.norm(mean, std).logpdf(np.asarray(u0, np.float64)).sum(-1)
    else:
        ref = stats.truncnorm(-TRUNC, TRUNC, loc=mean, scale=std).logpdf(np.asarray(u0, np.float64)).sum(-1)
    np.testing.assert_allclose(log_q0, ref, rtol=1e-5, atol=1e-5)
    normaliser = 3 * math.log(stats.norm.cdf(TRUNC) - stats.norm.cdf(-TRUNC))  # d = 3
    gap = np.asarray(log_q0) - stats.norm(mean, std).logpdf(np.asarray(u0, np.float64)).sum(-1)
    np.testing.assert_allclose(gap, 0.0 if preset == "paper" else -normaliser, atol=1e-5)


@pytest.mark.parametrize("sampler_alpha", [None, 1.0])
def test_sampler_alpha_sets_the_drift_temperature(sampler_alpha):
    """One SVGD step with the raw-u score (energy Q): the displacement is eps * phi with
    phi_i = (1/m) sum_j [k_ij grad Q_j + alpha_s (u_i - u_j)/sigma^2 k_ij], alpha_s = sampler_alpha (paper: 1)
    or alpha. Equivalently phi / alpha_s is the textbook SVGD direction for the target exp(Q / alpha_s),
    and the closed-form density terms carry the same alpha_s."""
    eps, sigma, m = 0.2, 0.8, 4
    cfg = small(
        "s2ac",
        n_particles=m,
        svgd_steps=1,
        svgd_step_size=eps,
        svgd_step_control="fixed",
        bandwidth=sigma,
        score_space="unsquashed",
        normalizer="m",
        log_density="closed_form",
        sampler_alpha=sampler_alpha,
    )
    alpha_s = cfg.alpha if sampler_alpha is None else sampler_alpha
    assert alpha_s == {None: 0.2, 1.0: 1.0}[sampler_alpha]
    agent = make_agent(cfg, BOX_2D)
    state = base_state("s2ac", BOX_2D)
    critic = scale_last_layer(state.critic_params, 4.0)
    obs = jax.random.normal(jax.random.PRNGKey(1), (2, 3))
    key = jax.random.PRNGKey(3)
    u0, log_q0 = agent.initial_particles(init_params(state), obs, key)
    parts = agent.sample(init_params(state), critic, obs, key)
    for b in range(2):
        x = np.asarray(u0[b], np.float64)
        _, grad_q = np_min_q(critic, np.asarray(obs[b]), x)  # energy Q(s, u) at the raw u
        diff = x[:, None, :] - x[None, :, :]
        sq = np.sum(diff**2, -1)
        k = np.exp(-sq / (2 * sigma**2))
        textbook = (k @ (grad_q / alpha_s) + np.einsum("ij,ijd->id", k, diff) / sigma**2) / m  # target exp(Q/alpha_s)
        np.testing.assert_allclose(parts.u[b] - u0[b], eps * alpha_s * textbook, rtol=2e-4, atol=2e-6)
        koff = k * (1 - np.eye(m))
        bracket = np.einsum("ijd,jd->ij", diff, grad_q) + alpha_s * sq / sigma**2 - 2 * alpha_s
        log_q1 = np.asarray(log_q0[b]) + eps / (m * sigma**2) * np.sum(koff * bracket, axis=1)
        u1 = np.asarray(parts.u[b], np.float64)
        np.testing.assert_allclose(
            parts.log_prob[b], log_q1 - np_log_tanh_jac(u1, BOX_2D.action_low, BOX_2D.action_high), rtol=1e-4, atol=1e-4
        )


# -- 5. log pi after L > 0 steps against per-step Jacobians of a re-implemented sampler --------------


def _reference_sampler(critic, obs, u0, log_q0, alpha_s, eps, steps, low, high):
    """SVGD written from REFERENCE.md §1 in jnp, with the 'mean/2' bandwidth: per step, each particle's
    Jacobian d a_i^{l+1} / d a_i^l (others and sigma fixed) by ``jax.jacfwd`` of the re-implemented drift,
    and its self part (1/m) Hessian of the energy. Returns the final u and log pi for every density mode."""
    m, d = u0.shape
    low, high = jnp.asarray(low, jnp.float64), jnp.asarray(high, jnp.float64)
    center, scale = (high + low) / 2, (high - low) / 2

    def energy(u):
        t = jnp.tanh(u)
        return jnp_min_q(critic, obs, center + scale * t) + alpha_s * jnp.sum(jnp.log(scale * (1 - t**2)))

    score = jax.grad(energy)

    def phi_i(x, a, i, sig):
        a = a.at[i].set(x)
        k = jnp.exp(-jnp.sum((a - x) ** 2, -1) / (2 * sig**2))
        return (k @ jax.vmap(score)(a) + alpha_s * jnp.sum(k[:, None] * (x - a), 0) / sig**2) / m

    @jax.jit
    def step(a):
        sq = jnp.sum((a[:, None] - a[None]) ** 2, -1)
        sig = jnp.sqrt(jnp.mean(sq) / (4 * math.log(m + 1)))
        idx = jnp.arange(m)
        phi = jax.vmap(lambda i: phi_i(a[i], a, i, sig))(idx)
        j_full = jax.vmap(lambda i: jax.jacfwd(phi_i)(a[i], a, i, sig))(idx)
        j_self = jax.vmap(jax.hessian(energy))(a) / m
        return a + eps * phi, j_full, j_self

    eye = jnp.eye(d)
    a, log_q = (
        jnp.asarray(u0),
        {mode: jnp.asarray(log_q0) for mode in ("exact", "exact_noself", "closed_form_self", "closed_form")},
    )
    for _ in range(steps):
        a_next, j_full, j_self = step(a)
        log_q["exact"] = log_q["exact"] - jnp.linalg.slogdet(eye + eps * j_full)[1]
        log_q["exact_noself"] = log_q["exact_noself"] - jnp.linalg.slogdet(eye + eps * (j_full - j_self))[1]
        log_q["closed_form_self"] = log_q["closed_form_self"] - eps * jnp.trace(j_full, axis1=-2, axis2=-1)
        log_q["closed_form"] = log_q["closed_form"] - eps * jnp.trace(j_full - j_self, axis1=-2, axis2=-1)
        a = a_next
    jac = np_log_tanh_jac(np.asarray(a), np.asarray(low), np.asarray(high))
    return np.asarray(a), {mode: np.asarray(v) - jac for mode, v in log_q.items()}


def test_s2ac_log_prob_with_svgd_steps_matches_per_step_jacobians():
    """L = 2 steps, m = 3, 2-D box, S²AC(phi): the agent's particles and log pi in every density mode
    equal the re-implemented sampler's: q0 = N(0, 0.5^2) by scipy, minus log|det(I + eps J)| (exact
    modes) or eps tr J (closed forms) per step, minus the box squash's log-Jacobian."""
    eps, alpha_s, steps = 0.15, 0.5, 2
    with jax.enable_x64(True):
        results = {}
        for mode in ("exact", "closed_form"):  # the others are tested against jacfwd in test_stein.py
            cfg = small(
                "s2ac-phi",
                n_particles=3,
                svgd_steps=steps,
                svgd_step_size=eps,
                svgd_step_control="fixed",
                bandwidth="mean/2",
                log_density=mode,
                sampler_alpha=alpha_s,
                normalizer="m",
            )
            agent = make_agent(cfg, BOX_2D)
            critic = to64(scale_last_layer(base_state("s2ac", BOX_2D).critic_params, 3.0))
            obs = jax.random.normal(jax.random.PRNGKey(1), (2, 3), jnp.float64)
            results[mode] = agent.sample(None, critic, obs, jax.random.PRNGKey(2))
        u0 = 0.5 * jax.random.normal(jax.random.PRNGKey(2), (2, 3, 2), jnp.float64)  # S²AC(phi)'s draw
        for b in range(2):
            log_q0 = stats.norm(0.0, 0.5).logpdf(np.asarray(u0[b])).sum(-1)
            u_ref, log_pi_ref = _reference_sampler(
                critic, obs[b], u0[b], log_q0, alpha_s, eps, steps, BOX_2D.action_low, BOX_2D.action_high
            )
            for mode, parts in results.items():
                np.testing.assert_allclose(parts.u[b], u_ref, rtol=1e-9, atol=1e-10, err_msg=mode)
                # float32 box constants (log scale) limit the match to ~1e-8 nats
                np.testing.assert_allclose(parts.log_prob[b], log_pi_ref[mode], rtol=1e-7, atol=1e-7, err_msg=mode)
        # The test has power: the modes differ from each other by far more than its tolerance.
        assert np.min(np.abs(log_pi_ref["exact"] - log_pi_ref["exact_noself"])) > 1e-4
        assert np.min(np.abs(log_pi_ref["exact"] - log_pi_ref["closed_form_self"])) > 1e-6


# -- 7. the adaptive margin guard in every density mode ------------------------------------------------


def _own_drift(energy, alpha, sigma):
    score = jax.grad(energy)

    def phi_i(x, a, i):
        a = a.at[i].set(x)
        k = jnp.exp(-jnp.sum((a - x) ** 2, -1) / (2 * sigma**2))
        return (k @ jax.vmap(score)(a) + alpha * jnp.sum(k[:, None] * (x - a), 0) / sigma**2) / a.shape[0]

    @jax.jit
    def step_parts(a):
        idx = jnp.arange(a.shape[0])
        phi = jax.vmap(lambda i: phi_i(a[i], a, i))(idx)
        jac = jax.vmap(lambda i: jax.jacfwd(phi_i)(a[i], a, i))(idx)
        mean_field = jac - jax.vmap(jax.hessian(energy))(a) / a.shape[0]  # drop the self term
        return phi, jnp.max(jnp.linalg.norm(mean_field, ord="fro", axis=(-2, -1))), jax.vmap(score)(a)

    return step_parts


@pytest.mark.parametrize(
    ("mode", "d"),
    [(mode, 2) for mode in stein.LOG_DENSITY_MODES] + [("closed_form", 10), ("exact_noself", 10), ("none", 10)],
)
def test_adaptive_margin_guard_in_every_log_density_mode(mode, d):
    """On a steep energy the fixed step eps = 0.1 is not invertible; the adaptive rule must take
    eps_l = min(0.1, 0.5 / (max_i ||J_i||_F + c_l)) in every density mode, J_i the mean-field block
    (the full jacfwd Jacobian of a re-implemented drift minus Hessian / m) and c_l the secant
    max_i |s_i^l - s_i^{l-1}| / (m |a_i^l - a_i^{l-1}|) (0 at l = 0). Replaying the chosen steps as
    a fixed schedule reproduces the run."""
    energy = lambda x: 40.0 * (-0.5 * jnp.sum(x**2) - 0.8 * (x[1] - 0.5 * x[0] ** 2) ** 2)  # noqa: E731
    sigma, alpha, cap, target, m = 0.5, 1.0, 0.1, stein.DEFAULT_TARGET_MARGIN, 6
    a0 = 0.3 * jax.random.normal(jax.random.PRNGKey(8), (m, d))
    score = jax.vmap(jax.grad(energy))
    kw = dict(steps=3, bandwidth=sigma, alpha=alpha, log_density=mode, trajectory=True, key=jax.random.PRNGKey(9))
    res = stein.svgd_sample(score, a0, jnp.zeros(m), step_size=cap, step_control="adaptive", **kw)
    step_parts = _own_drift(energy, alpha, sigma)
    prev = None
    for step in range(3):
        a = res.trajectory[step]
        phi, norm, scores = step_parts(a)
        secant = 0.0
        if prev is not None:
            da = np.linalg.norm(np.asarray(a - prev[0]), axis=1)
            secant = float(np.max(np.linalg.norm(np.asarray(scores - prev[1]), axis=1) / da)) / m
        eps = float(res.step_size[step])
        np.testing.assert_allclose(eps, min(cap, target / (float(norm) + secant)), rtol=1e-4)
        np.testing.assert_allclose(res.invertibility_margin[step], eps * (float(norm) + secant), rtol=1e-4)
        assert float(res.invertibility_margin[step]) <= target * (1 + 1e-4)
        np.testing.assert_allclose(res.trajectory[step + 1], a + eps * phi, rtol=1e-4, atol=1e-5)
        prev = (a, scores)
    assert float(np.min(np.asarray(res.step_size))) < 0.5 * cap  # the rule bound: the fixed step was too large
    replay = stein.svgd_sample(score, a0, jnp.zeros(m), step_size=res.step_size, **kw)
    np.testing.assert_allclose(replay.particles, res.particles, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(replay.log_q, res.log_q, rtol=1e-5, atol=1e-5)


# -- 2, 3, 8. targets: Polyak, which critic the Bellman target uses, auto-alpha, SQL's soft value -------


_UPDATE_FIELDS = {  # reward_scale != 1: the target must scale the reward (and nothing else)
    "sac": dict(auto_alpha=True, tau=0.3, gamma=0.9, reward_scale=0.5),
    "s2ac": dict(
        n_particles=3,
        svgd_steps=1,
        tau=0.3,
        gamma=0.9,
        reward_scale=0.5,
        svgd_step_control="fixed",
        log_margin=False,
        remat_score=False,
    ),
    "sql": dict(n_value_particles=8, n_svgd_particles=4, n_fixed_particles=4, tau=0.3, gamma=0.9, reward_scale=0.5),
}
_AGENTS: dict = {}


def update_case(algo):
    """A cached agent, a state whose target critic differs from the online one, a batch, and one update."""
    if algo not in _AGENTS:
        agent = make_agent(small(algo, **_UPDATE_FIELDS[algo]), BOX_2D)
        init = jax.jit(agent.init)
        state = init(jax.random.PRNGKey(0))
        state = state.replace(critic_target=init(jax.random.PRNGKey(1)).critic_params)
        batch = batch_of(BOX_2D, n=8, seed=3)
        new_state, metrics = agent.update(state, batch)
        _AGENTS[algo] = (agent, state, batch, new_state, metrics)
    return _AGENTS[algo]


def _uniform_soft_value(target, next_obs, actions, alpha, low, high):
    """SQL's V(s') = alpha log mean_j exp(min Qbar(s', a_j)/alpha) + alpha log vol(box), numpy."""
    log_vol = float(np.sum(np.log(np.asarray(high) - np.asarray(low))))
    values = []
    for b in range(next_obs.shape[0]):
        q, _ = np_min_q(target, np.asarray(next_obs[b]), np.asarray(actions[b]))
        values.append(alpha * (logsumexp(q / alpha) - math.log(q.shape[0])) + alpha * log_vol)
    return np.array(values)


def _hand_target(algo, agent, state, batch):
    """``y = reward_scale r + gamma (1 - done) V(s')`` with V from the TARGET critic at next-state actions
    drawn as the update draws them (its key split: new key, next-state key, actor key)."""
    cfg = agent.config
    k_next = jax.random.split(state.key, 3)[1]
    next_obs = np.asarray(batch.next_obs)
    if algo == "sql":
        low, high = BOX_2D.action_low, BOX_2D.action_high
        actions = jax.random.uniform(
            k_next, (8, cfg.n_value_particles, 2), minval=jnp.asarray(low), maxval=jnp.asarray(high)
        )
        value = _uniform_soft_value(state.critic_target, next_obs, actions, cfg.alpha, low, high)
    else:
        if algo == "s2ac":  # particles driven by the ONLINE critic
            parts = agent.sample(init_params(state), state.critic_params, batch.next_obs, k_next)
            actions, log_pi = np.asarray(parts.action), np.asarray(parts.log_prob)
        else:
            action, log_pi = agent.sample_action(state.actor_params, batch.next_obs, k_next)
            actions, log_pi = np.asarray(action)[:, None], np.asarray(log_pi)[:, None]
        q = np.stack([np_min_q(state.critic_target, next_obs[b], actions[b])[0] for b in range(8)])
        alpha = math.exp(float(state.log_alpha)) if algo == "sac" else cfg.alpha
        value = np.mean(q, -1) - alpha * np.mean(log_pi, -1)
    reward, done = np.asarray(batch.reward, np.float64), np.asarray(batch.terminated, np.float64)
    return cfg.reward_scale * reward + cfg.gamma * (1 - done) * value, value


@pytest.mark.xdist_group("maths-updates")  # update_case: one compiled update per algorithm
@pytest.mark.parametrize("algo", ["sac", "s2ac", "sql"])
def test_polyak_and_bellman_target_use_the_right_critics(algo):
    """After one update: every target leaf is exactly (1 - tau) old_target + tau new_online; the critic
    target is reward_scale r + gamma (1 - done) V(s') with V from the target critic (hand value at
    reward_scale 0.5, and shifting the target critic's output by c shifts the target by gamma c (1 - done));
    the critic loss is the twin MSE of the pre-update online critic to it; S²AC's next-state particles
    follow the online critic."""
    agent, state, batch, new_state, metrics = update_case(algo)
    tau = agent.config.tau
    for old, online, new in zip(
        jax.tree_util.tree_leaves(state.critic_target),
        jax.tree_util.tree_leaves(new_state.critic_params),
        jax.tree_util.tree_leaves(new_state.critic_target),
        strict=True,
    ):
        np.testing.assert_allclose(new, (1 - tau) * np.asarray(old) + tau * np.asarray(online), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(new_state.key, jax.random.split(state.key, 3)[0])  # the update's key split

    y, value = _hand_target(algo, agent, state, batch)
    np.testing.assert_allclose(float(metrics["target_mean"]), np.mean(y), rtol=1e-4, atol=1e-4)
    q_online, _ = np_critic(state.critic_params, np.asarray(batch.obs), np.asarray(batch.action))
    np.testing.assert_allclose(
        float(metrics["critic_loss"]), np.sum(0.5 * np.mean((q_online - y) ** 2, -1)), rtol=1e-4, atol=1e-5
    )
    if algo == "sql":
        np.testing.assert_allclose(float(metrics["value_mean"]), np.mean(value), rtol=1e-4, atol=1e-4)

    c, not_done = 1.5, np.mean(1 - np.asarray(batch.terminated))
    shifted = agent.update(state.replace(critic_target=scale_last_layer(state.critic_target, 1.0, c)), batch)[1]
    np.testing.assert_allclose(
        float(shifted["target_mean"]) - float(metrics["target_mean"]),
        agent.config.gamma * c * not_done,
        rtol=1e-4,
        atol=1e-5,
    )
    # A constant shift of the ONLINE critic leaves the target alone (its score is unchanged, and V uses Qbar).
    online_shift = agent.update(state.replace(critic_params=scale_last_layer(state.critic_params, 1.0, c)), batch)[1]
    np.testing.assert_allclose(float(online_shift["target_mean"]), float(metrics["target_mean"]), rtol=1e-5, atol=1e-6)
    if algo == "s2ac":  # reshaping the online critic moves the next-state particles, hence the target
        steep = agent.update(state.replace(critic_params=scale_last_layer(state.critic_params, 5.0)), batch)[1]
        assert abs(float(steep["target_mean"]) - float(metrics["target_mean"])) > 1e-3


@pytest.mark.xdist_group("maths-updates")  # update_case: one compiled update per algorithm
def test_sac_target_entropy_default_and_alpha_loss():
    """SAC v2: target entropy defaults to exactly -act_dim; J(log alpha) = -log alpha (mean log pi + H_target),
    so dJ/dlog alpha = -(mean log pi + H_target); the update's first Adam step moves log alpha by
    -alpha_lr * sign of that gradient."""
    for spec in (BOX_2D, HOPPER):
        assert make_agent(small("sac", auto_alpha=True), spec).target_entropy == -float(spec.act_dim)
    assert make_agent(small("sac", auto_alpha=True, target_entropy=0.7), BOX_2D).target_entropy == 0.7
    agent, state, _, new_state, metrics = update_case("sac")
    log_pi = jnp.array([-1.5, 0.25, 2.0, -4.0])
    for log_alpha in (math.log(0.2), 0.4):
        loss, grad = jax.value_and_grad(agent.alpha_loss)(jnp.asarray(log_alpha), -jnp.mean(log_pi))
        np.testing.assert_allclose(loss, -log_alpha * (np.mean(log_pi) + -2.0), rtol=1e-6)
        np.testing.assert_allclose(grad, -(np.mean(log_pi) - 2.0), rtol=1e-6)
    entropy, log_alpha = float(metrics["entropy"]), float(state.log_alpha)
    np.testing.assert_allclose(float(metrics["alpha_loss"]), -log_alpha * (-entropy - 2.0), rtol=1e-5)
    step = -agent.config.alpha_lr * np.sign(-(-entropy - 2.0))
    np.testing.assert_allclose(float(new_state.log_alpha), log_alpha + step, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(float(metrics["alpha"]), math.exp(log_alpha + step), rtol=1e-5)


@pytest.mark.xdist_group("maths-updates")  # update_case: one compiled update per algorithm
def test_sql_energy_matches_hand_formula():
    """u space: E(u) = min Q(s, c + s tanh u) + alpha_s sum log(s (1 - tanh^2 u)); action space: min Q(s, a)."""
    state = update_case("sql")[1]
    for space in ("u", "action"):
        agent = make_agent(small("sql", svgd_space=space, sampler_alpha=0.7), BOX_2D)
        obs = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (3,)))
        x = np.array([[0.3, -1.2], [2.0, 0.1], [-0.4, 0.9]])
        energy = np.asarray(agent.energy(state.critic_params, jnp.asarray(obs), jnp.asarray(x, jnp.float32)))
        if space == "u":
            a = np_squash(x, BOX_2D.action_low, BOX_2D.action_high)
            ref = np_min_q(state.critic_params, obs, a)[0] + 0.7 * np_log_tanh_jac(
                x, BOX_2D.action_low, BOX_2D.action_high
            )
        else:
            ref = np_min_q(state.critic_params, obs, x)[0]
        np.testing.assert_allclose(energy, ref, rtol=1e-5, atol=1e-5, err_msg=space)


@pytest.mark.xdist_group("maths-updates")  # update_case: one compiled update per algorithm
def test_sql_soft_value_and_critic_target():
    """V(s') = alpha log mean_j exp(min Qbar(s', a_j)/alpha) + alpha log vol(box), a_j ~ U(box), in numpy,
    against the agent's soft value (the critic target of one update is checked in
    test_polyak_and_bellman_target_use_the_right_critics[sql])."""
    agent, state, batch, _, _ = update_case("sql")
    key = jax.random.PRNGKey(9)
    value = agent.soft_value(state.critic_target, state.actor_params, batch.next_obs, key)
    low, high = BOX_2D.action_low, BOX_2D.action_high
    actions = jax.random.uniform(
        key, (8, agent.config.n_value_particles, 2), minval=jnp.asarray(low), maxval=jnp.asarray(high)
    )
    assert np.all((np.asarray(actions) >= low) & (np.asarray(actions) <= high))
    ref = _uniform_soft_value(state.critic_target, batch.next_obs, actions, agent.config.alpha, low, high)
    np.testing.assert_allclose(value, ref, rtol=1e-5, atol=1e-5)


# -- 9. SAC-NF's log pi and the amortizer's loss ------------------------------------------------------


@pytest.mark.parametrize("flow", ["radial", "affine_coupling"])  # planar layers: tests/test_sac_nf.py
def test_sac_nf_log_prob_is_the_change_of_variables(flow):
    """log pi(a|s) = log N(z; mu, sigma) (scipy) - log|det dT/dz| (jacfwd of the flow's forward map)
    - log|det d squash/du|, for the agent's reparameterised draws z = mu + sigma xi, u = T(z)."""
    from s2ac.agents.sac_nf import FlowLayers
    from s2ac.nets import GaussianHead

    cfg = small("sac-nf", flow=flow, flow_hidden=(8,), n_flow_layers=2)
    agent = make_agent(cfg, BOX_2D)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    rng = np.random.default_rng(4)  # move every flow layer far from the identity (numpy: no per-shape compiles)
    params = jax.tree_util.tree_map(lambda x: x + 0.4 * rng.normal(size=x.shape).astype(np.float32), state.actor_params)
    obs = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    key = jax.random.PRNGKey(2)
    action, log_pi = jax.jit(agent.sample_action)(params, obs, key)
    head = GaussianHead(cfg.actor_hidden, 2, cfg.activation, cfg.log_std_min, cfg.log_std_max)
    mean, log_std = head.apply({"params": params["params"]["base"]}, obs)
    z = mean + jnp.exp(log_std) * jax.random.normal(key, (5, 2))
    flows = FlowLayers(flow, 2, 2, (8,), cfg.activation, cfg.condition_flow_on_obs, cfg.coupling_log_scale_bound)
    forward = lambda zz, o: flows.apply({"params": params["params"]["flows"]}, zz, o)[0]  # noqa: E731
    u, jac = jax.jit(lambda zz, o: (jax.vmap(forward)(zz, o), jax.vmap(jax.jacfwd(forward))(zz, o)))(z, obs)
    log_det_t = np.linalg.slogdet(np.asarray(jac, np.float64))[1]
    log_n = (
        stats.norm(np.asarray(mean, np.float64), np.exp(np.asarray(log_std, np.float64)))
        .logpdf(np.asarray(z, np.float64))
        .sum(-1)
    )
    ref = log_n - log_det_t - np_log_tanh_jac(u, BOX_2D.action_low, BOX_2D.action_high)
    np.testing.assert_allclose(action, np_squash(u, BOX_2D.action_low, BOX_2D.action_high), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_pi, ref, rtol=1e-4, atol=1e-4)
    assert np.max(np.abs(log_det_t)) > 0.05  # the flows are far from the identity


def _np_mean_kernel(x, y, sigma2, scales):
    """``mean_{i,j} sum_s exp(-||x_i - y_j||^2 / (2 sigma2 scale_s^2))``."""
    sq = np.sum((x[:, None] - y[None]) ** 2, -1)
    return np.mean(np.exp(-sq[..., None] / (2 * sigma2 * scales**2)), (0, 1)).sum()


def test_amortizer_loss_is_numpy_mmd_and_its_gradient():
    """The imitation loss is the mean over states of the biased squared MMD (Gretton et al. Eq. 5) with
    the kernel sum_s exp(-||x - y||^2 / (2 (c_s sigma)^2)), sigma from the 'mean/2' rule on the particles,
    written in numpy; its gradient along a random direction matches central differences of that loss."""
    cfg = small("s2ac-amortized", n_particles=4, amortizer_hidden=(8,))
    scales = np.asarray(cfg.mmd_bandwidth_scales)
    with jax.enable_x64(True):
        agent = make_agent(cfg, BOX_2D)
        params = to64(agent.amortizer.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)), jnp.zeros((1, 2))))
        obs = jax.random.normal(jax.random.PRNGKey(1), (3, 3), jnp.float64)
        anchors = jax.random.normal(jax.random.PRNGKey(2), (3, 4, 2), jnp.float64) + 0.5
        key = jax.random.PRNGKey(3)
        loss_fn = jax.jit(lambda p: agent.amortizer_loss(p, obs, anchors, key)[0])
        samples_fn = jax.jit(lambda p: agent.amortized_u(p, obs, key, 4))
        y = np.asarray(anchors)

        def np_mmd(p):
            x = np.asarray(samples_fn(p))
            total = 0.0
            for b in range(3):
                d_yy = np.sum((y[b][:, None] - y[b][None]) ** 2, -1)
                sigma2 = np.mean(d_yy) / (4 * math.log(4 + 1))
                kern = lambda p_, q_, s2=sigma2: _np_mean_kernel(p_, q_, s2, scales)  # noqa: E731
                total += kern(x[b], x[b]) - 2 * kern(x[b], y[b]) + kern(y[b], y[b])
            return total / 3

        np.testing.assert_allclose(float(loss_fn(params)), np_mmd(params), rtol=1e-10)
        grad = jax.grad(loss_fn)(params)
        rng = np.random.default_rng(4)
        direction = jax.tree_util.tree_map(lambda x: jnp.asarray(rng.normal(size=x.shape)), params)
        along = lambda t: jax.tree_util.tree_map(lambda p, d: p + t * d, params, direction)  # noqa: E731
        analytic = sum(
            float(jnp.vdot(g, d)) for g, d in zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(direction))
        )
        h = 1e-5
        numeric = (np_mmd(along(h)) - np_mmd(along(-h))) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)
    assert abs(analytic) > 1e-4
