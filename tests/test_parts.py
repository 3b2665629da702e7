"""The parts: batch renormalisation against NumPy, the ``crossq`` critic's joint pass against a
separate NumPy computation, evaluation-mode Q inside S²AC's sampler, the temperature part under
S²AC, the policy delay, and the one-line refusals."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tyro
from agent_helpers import HOPPER, random_batch

from s2ac.agents import algo_of_config, make_agent, make_agent_config
from s2ac.checkpoint import upgrade_state_dict
from s2ac.cli_options import train_command, train_configs
from s2ac.config import make_train_config
from s2ac.nets import BatchRenorm, BatchRenormSettings
from s2ac.parts.critics import CriticSettings, CrossQCritic, NextActions, density_next

TINY = dict(critic_hidden=(8, 8), actor_hidden=(8, 8), batch_size=6)


def tiny(algo, **fields):
    cfg = make_agent_config(algo, "quick", "Hopper-v5")
    extra = dict(n_particles=3, svgd_steps=1) if algo.startswith("s2ac") else {}
    return dataclasses.replace(cfg, **{**TINY, **extra, **fields})


# -- batch renormalisation ------------------------------------------------------------------------


def np_renorm(x, mean, var, scale, bias, eps, r_max, d_max, warm, r=None, d=None):
    """Ioffe (2017) Algorithm 1 in float64; ``r``/``d`` given: use them (as constants)."""
    mu_b, var_b = x.mean(0), x.var(0)
    sigma_b, sigma = np.sqrt(var_b + eps), np.sqrt(var + eps)
    if r is None:
        r = np.clip(sigma_b / sigma, 1 / r_max, r_max) if warm else np.ones_like(mu_b)
        d = np.clip((mu_b - mean) / sigma, -d_max, d_max) if warm else np.zeros_like(mu_b)
    return ((x - mu_b) / sigma_b * r + d) * scale + bias, r, d, mu_b, var_b


@pytest.mark.parametrize("warm", [False, True])
def test_batch_renorm_matches_numpy_in_train_and_eval_modes(warm):
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(16, 4)).astype(np.float32)
    layer = BatchRenorm(momentum=0.9, epsilon=1e-3, r_max=1.5, d_max=0.4, warmup_steps=5)
    variables = layer.init(jax.random.PRNGKey(0), jnp.asarray(x))
    mean = np.array([0.5, -1.0, 2.0, 0.0], np.float32)
    var = np.array([0.2, 40.0, 9.0, 1.0], np.float32)  # scale ratios both above r_max and below 1/r_max
    scale, bias = rng.normal(size=4).astype(np.float32), rng.normal(size=4).astype(np.float32)
    variables = {
        "params": {"scale": jnp.asarray(scale), "bias": jnp.asarray(bias)},
        "batch_stats": {"mean": jnp.asarray(mean), "var": jnp.asarray(var), "steps": jnp.asarray(5 if warm else 4)},
    }
    y, upd = layer.apply(variables, jnp.asarray(x), train=True, mutable=["batch_stats"])
    ref, r, d, mu_b, var_b = np_renorm(x.astype(np.float64), mean, var, scale, bias, 1e-3, 1.5, 0.4, warm)
    if warm:  # the clips are active: the test would not see a missing clip otherwise
        assert np.any(r == 1.5) and np.any(r == 1 / 1.5) and np.any(np.abs(d) == 0.4)
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-4, atol=1e-4)
    stats = upd["batch_stats"]
    np.testing.assert_allclose(stats["mean"], 0.9 * mean + 0.1 * mu_b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats["var"], 0.9 * var + 0.1 * var_b, rtol=1e-5, atol=1e-5)
    assert int(stats["steps"]) == (6 if warm else 5)
    # Evaluation: running statistics, nothing moves.
    y_eval = layer.apply(variables, jnp.asarray(x[:1]), train=False)
    np.testing.assert_allclose(np.asarray(y_eval), (x[:1] - mean) / np.sqrt(var + 1e-3) * scale + bias, rtol=1e-5)
    # Gradient: r and d are constants (finite differences of the NumPy map with r, d held fixed).
    w = rng.normal(size=x.shape)
    grad = jax.grad(lambda z: jnp.sum(layer.apply(variables, z, train=True, mutable=["batch_stats"])[0] * w))(
        jnp.asarray(x)
    )
    x64, h, fd = x.astype(np.float64), 1e-6, np.zeros_like(w)
    for i, j in [(0, 0), (3, 1), (7, 2), (15, 3)]:
        xp, xm = x64.copy(), x64.copy()
        xp[i, j] += h
        xm[i, j] -= h
        f = lambda z: np.sum(np_renorm(z, mean, var, scale, bias, 1e-3, 1.5, 0.4, warm, r, d)[0] * w)  # noqa: E731
        fd[i, j] = (f(xp) - f(xm)) / (2 * h)
        np.testing.assert_allclose(float(grad[i, j]), fd[i, j], rtol=2e-3, atol=2e-3)


# -- the crossq critic ------------------------------------------------------------------------------


def np_critic(params, stats, x):
    """One critic of ``RenormMLP`` in training mode during warm-up (plain batch norm), float64."""

    def bn(h, p):
        return (h - h.mean(0)) / np.sqrt(h.var(0) + 1e-3) * p["scale"] + p["bias"]

    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)["VmapRenormCritic_0"]["RenormMLP_0"]
    h = bn(x, p["BatchRenorm_0"])
    for i in range(2):
        h = bn(np.maximum(h @ p[f"Dense_{i}"]["kernel"] + p[f"Dense_{i}"]["bias"], 0), p[f"BatchRenorm_{i + 1}"])
    return (h @ p["Dense_2"]["kernel"] + p["Dense_2"]["bias"])[:, 0]


def test_crossq_joint_pass_target_equals_the_separate_numpy_computation():
    settings = CriticSettings((8, 8), "relu", 1e-3, 0.5, 0.9, 2.0, 0.005, BatchRenormSettings())
    critic = CrossQCritic(settings)
    params, target, _ = critic.init(jax.random.PRNGKey(0), HOPPER.obs_dim, HOPPER.act_dim)
    assert target is None and critic.after_step(target, params) is None  # no target network
    batch = random_batch(HOPPER, 6)
    rng = np.random.default_rng(1)
    next_action = rng.uniform(-1, 1, size=(6, 3, HOPPER.act_dim)).astype(np.float32)
    log_prob = rng.normal(size=(6, 3)).astype(np.float32)
    loss, info = critic.loss(params, None, batch, density_next(jnp.asarray(next_action), jnp.asarray(log_prob), 0.3))

    obs, nobs = np.asarray(batch.obs, np.float64), np.repeat(np.asarray(batch.next_obs, np.float64), 3, axis=0)
    x_joint = np.concatenate(
        [np.concatenate([obs, batch.action], 1), np.concatenate([nobs, next_action.reshape(-1, 3)], 1)]
    )
    per_critic = [jax.tree_util.tree_map(lambda a, k=k: a[k], params["params"]) for k in range(2)]

    def np_loss(q_now, q_next):
        v = np.min(q_next, 0).reshape(6, 3).mean(-1) - 0.3 * log_prob.mean(-1)
        y = 2.0 * np.asarray(batch.reward) + 0.9 * (1 - np.asarray(batch.terminated)) * v
        return sum(0.5 * np.mean((q - y) ** 2) for q in q_now)

    q_joint = np.stack([np_critic(p, None, x_joint) for p in per_critic])
    np.testing.assert_allclose(float(loss), np_loss(q_joint[:, :6], q_joint[:, 6:]), rtol=1e-4)
    # Two separate passes normalise by other statistics and give another loss: the test can tell.
    q_now = np.stack([np_critic(p, None, x_joint[:6]) for p in per_critic])
    q_next = np.stack([np_critic(p, None, x_joint[6:]) for p in per_critic])
    assert abs(np_loss(q_now, q_next) - float(loss)) > 1e-3


def test_crossq_state_holds_no_target_and_its_statistics_move():
    agent = make_agent(tiny("sac", critic="crossq"), HOPPER)
    state = agent.init(jax.random.PRNGKey(0))
    assert state.critic_target is None and set(state.critic_params) == {"params", "batch_stats"}
    new, metrics = agent.update(state, random_batch(HOPPER, 6))
    assert new.critic_target is None and np.isfinite(float(metrics["critic_loss"]))
    steps = jax.tree_util.tree_leaves(new.critic_params["batch_stats"])
    assert any(int(np.max(s)) == 1 for s in steps if np.asarray(s).dtype == np.int32)


def test_s2ac_score_on_crossq_uses_running_statistics():
    """Each particle's energy depends on that particle alone and equals the NumPy critic with the
    running statistics (evaluation mode)."""
    agent = make_agent(tiny("s2ac", critic="crossq", score_space="unsquashed"), HOPPER)
    state = agent.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(2)
    stats = jax.tree_util.tree_map(
        lambda s: jnp.asarray(rng.uniform(0.5, 2.0, size=np.shape(s)), jnp.float32) if s.dtype == jnp.float32 else s,
        state.critic_params["batch_stats"],
    )
    critic_params = {"params": state.critic_params["params"], "batch_stats": stats}
    obs = jnp.asarray(rng.normal(size=(HOPPER.obs_dim,)), jnp.float32)
    u = jnp.asarray(rng.uniform(-1, 1, size=(4, HOPPER.act_dim)), jnp.float32)
    energy = np.asarray(agent.energy(critic_params, obs, u))
    alone = np.asarray(agent.energy(critic_params, obs, u[:1]))
    np.testing.assert_allclose(alone[0], energy[0], rtol=1e-6)

    def np_eval(k):
        p = jax.tree_util.tree_map(lambda a: np.asarray(a[k], np.float64), critic_params)
        w, s = (p[c]["VmapRenormCritic_0"]["RenormMLP_0"] for c in ("params", "batch_stats"))

        def bn(h, i):
            n = f"BatchRenorm_{i}"
            return (h - s[n]["mean"]) / np.sqrt(s[n]["var"] + 1e-3) * w[n]["scale"] + w[n]["bias"]

        h = bn(np.concatenate([np.repeat(np.asarray(obs)[None], 4, 0), np.asarray(u)], 1), 0)
        for i in range(2):
            h = bn(agent_act(h @ w[f"Dense_{i}"]["kernel"] + w[f"Dense_{i}"]["bias"]), i + 1)
        return (h @ w["Dense_2"]["kernel"] + w["Dense_2"]["bias"])[:, 0]

    agent_act = lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0)))  # noqa: E731  (ELU)
    np.testing.assert_allclose(energy, np.minimum(np_eval(0), np_eval(1)), rtol=1e-4, atol=1e-5)


# -- temperature, policy delay ---------------------------------------------------------------------


def test_s2ac_tuned_alpha_takes_one_adam_step_toward_the_target_entropy():
    agent = make_agent(tiny("s2ac", auto_alpha=True, alpha_lr=0.01, target_entropy=5.0), HOPPER)
    state = agent.init(jax.random.PRNGKey(0))
    new, metrics = agent.update(state, random_batch(HOPPER, 6))
    entropy = float(metrics["entropy"])
    expected = float(state.log_alpha) - 0.01 * np.sign(entropy - 5.0)  # Adam's first step is lr * sign
    np.testing.assert_allclose(float(new.log_alpha), expected, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["alpha"]), np.exp(expected), rtol=1e-5)


@pytest.mark.parametrize("algo", ["sac", "s2ac"])
def test_policy_delay_updates_the_actor_every_second_step(algo):
    agent = make_agent(tiny(algo, policy_delay=2), HOPPER)
    field = "actor_params" if algo == "sac" else "init_params"
    s0 = agent.init(jax.random.PRNGKey(0))
    s1, _ = agent.update(s0, random_batch(HOPPER, 6, seed=1))
    s2, m2 = agent.update(s1, random_batch(HOPPER, 6, seed=2))

    def moved(a, b):
        return any(not np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))

    assert moved(getattr(s0, field), getattr(s1, field)) and not moved(getattr(s1, field), getattr(s2, field))
    assert moved(s1.critic_params, s2.critic_params) and float(m2["actor_loss"]) == 0.0


# -- registry, CLI, refusals, old checkpoints -------------------------------------------------------


def test_crossq_and_s2ac_crossq_are_registry_entries():
    paper = make_agent_config("crossq", "paper", "Hopper-v5")
    assert (paper.critic, paper.actor_renorm, paper.policy_delay, paper.adam_beta1) == ("crossq", True, 3, 0.5)
    assert (paper.critic_hidden, paper.actor_hidden, paper.auto_alpha) == ((2048, 2048), (256, 256), True)
    assert algo_of_config(paper) == "crossq" and algo_of_config(make_agent_config("sac", "paper", "Hopper-v5")) == "sac"
    s2c = make_agent_config("s2ac-crossq", "quick", "Hopper-v5")
    assert s2c.critic == "crossq" and algo_of_config(s2c) == "s2ac-crossq"
    # CrossQ's update habits are the entry's defaults, not part of its name: a user may change them
    # (here through the CLI) and the config still runs as s2ac-crossq.
    assert (s2c.adam_beta1, s2c.policy_delay, s2c.renorm_warmup_steps) == (0.5, 3, 5000)
    assert make_agent_config("s2ac-crossq", "corrected", "Hopper-v5").renorm_warmup_steps == 100_000
    default = train_command("s2ac-crossq", "quick", "Hopper-v5", s2c, make_train_config("quick", "Hopper-v5"))
    args = tyro.cli(type(default), default=default, args=["--agent.policy-delay", "1", "--agent.adam-beta1", "0.9"])
    changed = train_configs(args, s2c, make_train_config("quick", "Hopper-v5"))[0]
    assert (changed.policy_delay, changed.adam_beta1) == (1, 0.9) and algo_of_config(changed) == "s2ac-crossq"
    assert algo_of_config(make_agent_config("s2ac", "quick", "Hopper-v5")) == "s2ac"
    from s2ac.agents import algo_train_fields

    assert algo_train_fields("crossq", "paper", "Hopper-v5")["learning_starts"] == 5000


@pytest.mark.parametrize("algo", ["s2ac", "sac", "sql", "sac-nf", "s2ac-phi", "s2ac-amortized"])
def test_critic_flag_reaches_every_actor_critic(algo):
    agent, train = make_agent_config(algo, "quick", "Pendulum-v1"), make_train_config("quick", "Pendulum-v1")
    default = train_command(algo, "quick", "Pendulum-v1", agent, train)
    args = tyro.cli(type(default), default=default, args=["--agent.critic", "crossq"])
    assert train_configs(args, agent, train)[0].critic == "crossq"


@pytest.mark.parametrize(
    "algo, fields, message",
    [
        ("sac", dict(critic="crosq"), "did you mean 'crossq'"),
        ("sac", dict(critic="crossq", batch_size=1), "batch_size >= 2"),
        ("s2ac", dict(critic="crossq", activation="relu"), "critic='crossq' with activation='relu'"),
        ("sql", dict(auto_alpha=True), "SQL's amortized sampler has none"),
        ("sac", dict(policy_delay=0), "policy_delay"),
    ],
)
def test_bad_parts_are_refused_in_one_line(algo, fields, message):
    with pytest.raises(ValueError, match=message) as info:
        tiny(algo, **fields).validate()
    assert "\n" not in str(info.value)


def test_checkpoint_without_temperature_fields_loads_into_s2ac():
    agent = make_agent(tiny("s2ac"), HOPPER)
    state = agent.init(jax.random.PRNGKey(0))
    from flax import serialization

    old = {k: v for k, v in serialization.to_state_dict(state).items() if k not in ("log_alpha", "alpha_opt")}
    restored = serialization.from_state_dict(state, upgrade_state_dict(old, state))
    np.testing.assert_allclose(float(restored.log_alpha), np.log(agent.config.alpha), rtol=1e-6)


def test_next_record_carries_importance_samples():
    """SQL's ``next``: uniform box draws whose value is the importance-sampled log-mean-exp."""
    agent = make_agent(tiny("sql"), HOPPER)
    state = agent.init(jax.random.PRNGKey(0))
    nxt = agent.next_actions(state.actor_params, random_batch(HOPPER, 6).next_obs, jax.random.PRNGKey(1))
    assert isinstance(nxt, NextActions) and nxt.action.shape == (6, agent.config.n_value_particles, 3)
    q = jnp.zeros(nxt.action.shape[:-1])
    np.testing.assert_allclose(np.asarray(nxt.soft_value(q)), agent.config.alpha * 3 * np.log(2.0), rtol=1e-5)
