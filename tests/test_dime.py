"""The distributional critic part and DIME: references are hand computations and NumPy, never the code."""

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from agent_helpers import HOPPER, random_batch
from tiny import BATCH, WIDTH, tiny_config

from s2ac.agents import make_agent
from s2ac.distributional import SupportWarning
from s2ac.parts.critics import CriticSettings, DistributionalCritic, density_next
from s2ac.types import Batch


def np_project(probs, atoms, shift, scale):
    """Bellemare et al. (2017) Algorithm 1, written as a plain loop (floor / ceil scatter)."""
    v_min, v_max = atoms[0], atoms[-1]
    dz = (v_max - v_min) / (len(atoms) - 1)
    out = np.zeros(len(atoms))
    for p, z in zip(probs, atoms):
        tz = min(max(shift + scale * z, v_min), v_max)
        b = (tz - v_min) / dz
        lo, hi = int(np.floor(b)), int(np.ceil(b))
        if lo == hi:
            out[lo] += p
        else:
            out[lo] += p * (hi - b)
            out[hi] += p * (b - lo)
    return out


def np_gauss(v, mean, sd):
    """``log N(v; mean, sd^2 I)`` in float64."""
    return np.sum(-0.5 * ((v - mean) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi))


def tiny_dist_config(algo="sac", **fields):
    return tiny_config(algo, env_id="Pendulum-v1", critic="distributional", **fields)


def small_part(v_min=-10.0, v_max=10.0, n_atoms=5, gamma=0.5, reward_scale=1.0):
    cfg = tiny_dist_config(v_min=v_min, v_max=v_max, n_atoms=n_atoms, gamma=gamma, reward_scale=reward_scale)
    return DistributionalCritic(CriticSettings.from_config(cfg))


# -- the critic part --------------------------------------------------------------------------------


def test_target_projection_hand_computation():
    # Atoms -10, -5, 0, 5, 10; gamma 0.5; one transition with r = 1, not terminal, no bonus.
    # Critic 1 puts all its mass on z = 10: 1 + 0.5 * 10 = 6 -> 0.8 on 5, 0.2 on 10.
    # Critic 2 puts all its mass on z = -10: 1 - 5 = -4 -> 0.8 on -5 (1 from it), 0.2 on 0 (4 from it).
    # Their average: [0, 0.4, 0.1, 0.4, 0.1].
    part = small_part()
    p1 = jnp.array([[0.0, 0, 0, 0, 1]])
    p2 = jnp.array([[1.0, 0, 0, 0, 0]])
    batch = Batch(jnp.zeros((1, 1)), jnp.zeros((1, 1)), jnp.array([1.0]), jnp.zeros((1, 1)), jnp.array([0.0]))
    target, outside = part.target_distribution(jnp.stack([p1, p2]), batch, jnp.zeros(1))
    np.testing.assert_allclose(np.asarray(target[0]), [0.0, 0.4, 0.1, 0.4, 0.1], atol=1e-6)
    assert float(outside[0]) == 0.0
    # Terminal with r = 30: all mass at 30, clipped to 10; the whole mass lies outside.
    batch = batch._replace(reward=jnp.array([30.0]), terminated=jnp.array([1.0]))
    target, outside = part.target_distribution(jnp.stack([p1, p2]), batch, jnp.zeros(1))
    np.testing.assert_allclose(np.asarray(target[0]), [0, 0, 0, 0, 1.0], atol=1e-6)
    assert float(outside[0]) == pytest.approx(1.0)


def test_target_averages_the_two_critics_projections_numpy():
    """The part's loss against a NumPy computation from the same network outputs: the target is the
    mean of each critic's projected next distribution, shifted by ``r + gamma (1 - d) (-alpha log pi)``."""
    cfg = tiny_dist_config(v_min=-3.0, v_max=3.0, n_atoms=11, gamma=0.9, reward_scale=2.0)
    part = DistributionalCritic(CriticSettings.from_config(cfg))
    params, target_net, opt = part.init(jax.random.PRNGKey(0), HOPPER.obs_dim, HOPPER.act_dim)
    assert target_net is None
    batch = random_batch(HOPPER, 8)
    k = jax.random.split(jax.random.PRNGKey(1), 2)
    next_action = jax.random.uniform(k[0], (8, HOPPER.act_dim), minval=-1, maxval=1)
    log_prob = 0.3 * jax.random.normal(k[1], (8,))
    alpha = 0.7
    loss, (info, _) = part.joint_loss(
        params["params"], params["batch_stats"], batch, density_next(next_action, log_prob, alpha)
    )
    # The same training-mode pass, read directly.
    obs = jnp.concatenate([batch.obs, batch.next_obs])
    act = jnp.concatenate([batch.action, next_action])
    logits = np.asarray(part.net.apply(params, obs, act, train=True, mutable=["batch_stats"])[0], np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    atoms = np.linspace(-3, 3, 11)
    total, targets = 0.0, []
    for b in range(8):
        disc = 0.9 * (1 - float(batch.terminated[b]))
        shift = 2.0 * float(batch.reward[b]) + disc * (-alpha * float(log_prob[b]))
        t = 0.5 * (np_project(probs[0, 8 + b], atoms, shift, disc) + np_project(probs[1, 8 + b], atoms, shift, disc))
        targets.append(t)
        for c in range(2):
            p = probs[c, b]
            total += (-(t * np.log(p)).sum() + 0.005 * (p * np.log(p)).sum()) / 8
    assert float(loss) == pytest.approx(total, rel=1e-4)
    assert float(info["target_mean"]) == pytest.approx(float(np.mean(np.asarray(targets) @ atoms)), abs=1e-4)
    # q() is the expected value under the running statistics.
    q = part.q(params, batch.obs, batch.action)
    ev = np.asarray(part.net.apply(params, batch.obs, batch.action, train=False), np.float64)
    ev = np.exp(ev - ev.max(-1, keepdims=True))
    ev /= ev.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(q), ev @ atoms, rtol=1e-4, atol=1e-5)


def test_agent_state_holds_no_target_network():
    agent = make_agent(tiny_dist_config(), HOPPER)
    state = agent.init(jax.random.PRNGKey(0))
    assert state.critic_target is None
    state, metrics = agent.update(state, random_batch(HOPPER, BATCH))
    assert state.critic_target is None
    assert "outside_mass" in metrics and np.isfinite(float(metrics["critic_loss"]))
    logits = agent.critic.apply(state.critic_params, jnp.zeros((3, HOPPER.obs_dim)), jnp.zeros((3, HOPPER.act_dim)))
    assert logits.shape == (2, 3, 101)


@pytest.mark.parametrize(
    "fields, words",
    [
        (dict(v_min=5.0, v_max=5.0), "v_min must be < v_max"),
        (dict(v_min=1.0, v_max=-1.0), "v_min must be < v_max"),
        (dict(n_atoms=1), "n_atoms must be an int >= 2"),
    ],
)
def test_bad_support_one_line(fields, words):
    with pytest.raises(ValueError, match=words) as info:
        tiny_dist_config(**fields).validate()
    assert "\n" not in str(info.value)


def test_sql_refuses_the_distributional_critic():
    with pytest.raises(ValueError, match="no log-density") as info:
        tiny_config("sql", critic="distributional").validate()
    assert "\n" not in str(info.value)


def test_loop_warns_once_when_targets_leave_the_support():
    from s2ac.loop import TrainingLoop

    loop = TrainingLoop.__new__(TrainingLoop)
    loop.agent_config = tiny_dist_config()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        loop._check_support(np.array([0.5]))
        loop._check_support(np.array([0.9]))
    hits = [w for w in seen if issubclass(w.category, SupportWarning)]
    assert len(hits) == 1
    text = str(hits[0].message)
    assert "v_min" in text and "v_max" in text and "1600" in text and "-200" in text


def test_every_density_actor_runs_on_the_distributional_critic():
    for algo in ("sac", "s2ac"):
        agent = make_agent(tiny_dist_config(algo), HOPPER)
        state, metrics = agent.update(agent.init(jax.random.PRNGKey(0)), random_batch(HOPPER, BATCH))
        assert np.isfinite(float(metrics["critic_loss"])), algo
        assert dataclasses.asdict(agent.config)["critic"] == "distributional"
    assert WIDTH == agent.config.critic_hidden


# -- DIME -------------------------------------------------------------------------------------------


def tiny_dime(**fields):
    return tiny_config("dime", env_id="Pendulum-v1", **{"diffusion_steps": 2, **fields})


@pytest.mark.parametrize("steps", [0, -3])
def test_zero_or_negative_diffusion_steps_refused_in_one_line(steps):
    with pytest.raises(ValueError, match="diffusion steps") as info:
        tiny_dime(diffusion_steps=steps).validate()
    assert "\n" not in str(info.value) and str(steps) in str(info.value)


def test_paper_preset_holds_the_authors_settings():
    from s2ac.agents import algo_train_fields, make_agent_config

    cfg = make_agent_config("dime", "paper", "Hopper-v5")
    expected = dict(
        diffusion_steps=16, prior_std=2.5, init_step_size=0.1, init_friction=1.0, critic="distributional",
        critic_hidden=(2048, 2048), actor_hidden=(256, 256, 256), n_atoms=101, v_min=-200.0, v_max=200.0,
        batch_size=256, critic_lr=3e-4, actor_lr=3e-4, adam_beta1=0.5, actor_grad_clip=1.0, gamma=0.99,
        policy_delay=3, auto_alpha=True, alpha=1.0, alpha_lr=1e-3, activation="relu",
    )  # fmt: skip
    assert {k: getattr(cfg, k) for k in expected} == expected
    train = algo_train_fields("dime", "paper", "Hopper-v5")
    assert train["gradient_steps"] == 2 * train["train_freq"]  # UTD 2
    assert train["learning_starts"] == 5000
    quick = make_agent_config("dime", "quick", "Pendulum-v1")
    assert quick.diffusion_steps < 16 and (quick.v_min, quick.v_max) == (-1600.0, 1600.0)


def test_s2ac_dist_is_s2ac_on_the_distributional_critic():
    from s2ac.agents import algo_of_config, make_agent_config

    cfg = make_agent_config("s2ac-dist", "quick", "Pendulum-v1")
    assert (cfg.critic, cfg.init, type(cfg).__name__) == ("distributional", "learned", "S2ACConfig")
    assert algo_of_config(cfg) == "s2ac-dist"


def test_dime_labels_its_entropy_a_lower_bound_and_targets_the_authors_rule():
    from s2ac.experiments.multigoal.metrics import entropy_estimators
    from s2ac.experiments.multigoal.report import ESTIMATOR_LABELS

    agent = make_agent(tiny_dime(), HOPPER)
    assert agent.log_density_kind == "lower_bound"
    assert entropy_estimators(agent) == ["lower_bound"]
    assert "lower bound" in ESTIMATOR_LABELS["lower_bound"]
    # Authors: E[running cost] -> 4 |A|; E[terminal] = -|A| * 0.5 * log(2 pi e 2.5^2) (by hand: 2.3350 per dim).
    assert agent.target_entropy == pytest.approx(-(4.0 - 2.3350) * 3, abs=1e-3)
    state = agent.init(jax.random.PRNGKey(0))
    assert state.critic_target is None
    state, metrics = agent.update(state, random_batch(HOPPER, BATCH))  # step 0: the actor updates
    assert "entropy_bound" in metrics and "entropy" not in metrics
    assert all(np.isfinite(float(v)) for v in metrics.values())


def test_dime_actions_stay_in_an_odd_box_and_the_deterministic_mode_is_noise_free():
    from agent_helpers import assert_acts_in_box
    from tiny import ODD_BOX

    agent = make_agent(tiny_dime(), ODD_BOX)
    assert_acts_in_box(agent, ODD_BOX, modes=("random", "max"))
    state = agent.init(jax.random.PRNGKey(0))
    obs = jnp.zeros((2, ODD_BOX.obs_dim))
    a1 = agent.act(state, obs, jax.random.PRNGKey(1), mode="max")
    a2 = agent.act(state, obs, jax.random.PRNGKey(2), mode="max")
    np.testing.assert_array_equal(np.asarray(a1), np.asarray(a2))


def test_dime_sample_bound_matches_a_numpy_replay_of_the_chain():
    """``-log_prob`` of ``sample_action`` against a float64 NumPy replay of (D1)-(D8) with the same draws:
    at initialisation the score net is ~0 (last layer 1e-8), so the chain is the prior's OU chain."""
    agent = make_agent(tiny_dime(), HOPPER)
    state = agent.init(jax.random.PRNGKey(0))
    obs = jnp.zeros((1, HOPPER.obs_dim))
    key = jax.random.PRNGKey(5)
    action, log_prob = agent.sample_action(state.actor_params, obs, key)
    # The same noise as the sampler draws: one key per state, then (prior, steps).
    k0, ks = jax.random.split(jax.random.split(key, 1)[0])
    x = 2.5 * np.asarray(jax.random.normal(k0, (3,)), np.float64)
    eps = np.asarray(jax.random.normal(ks, (2, 3)), np.float64)
    n, c_min, s = 2, 0.001, 0.008
    logp0 = np.sum(-0.5 * (x / 2.5) ** 2 - np.log(2.5) - 0.5 * np.log(2 * np.pi))
    ratio = 0.0
    for i in range(n):
        t = (n - i) / n
        dt = 0.1 * ((1 - c_min) * np.cos(0.5 * np.pi * (1 + s - t) / (1 + s)) ** 2 + c_min)
        eta = dt / 1.0
        sd = np.sqrt(2 * eta)
        fwd = x - eta * x / 6.25
        x_new = fwd + sd * eps[i]
        bwd = x_new - eta * x_new / 6.25
        ratio += np_gauss(x, bwd, sd) - np_gauss(x_new, fwd, sd)
        x = x_new
    log_det = np.sum(np.log(1 - np.tanh(x) ** 2))
    bound = ratio + log_det - logp0
    assert float(-log_prob[0]) == pytest.approx(bound, abs=1e-3)
    np.testing.assert_allclose(np.asarray(action[0]), np.tanh(x), atol=1e-4)


def test_cli_trains_dime_for_a_few_updates(tmp_path):
    from s2ac.cli import main

    argv = [
        "train", "--algo", "dime", "--preset", "quick", "--env", "Pendulum-v1", "--total-steps", "120",
        "--no-progress", "--no-plots", "--train.learning-starts", "80", "--train.random-steps", "80",
        "--train.train-freq", "20", "--train.gradient-steps", "2", "--train.eval-freq", "120",
        "--train.eval-episodes", "1", "--train.checkpoint-freq", "0", "--agent.critic-hidden", "16", "16",
        "--agent.actor-hidden", "16", "16", "--agent.batch-size", "16", "--agent.diffusion-steps", "2",
        "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    assert main(argv) == 0
    rows = [line for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if "entropy_bound" in line]
    assert rows


@pytest.mark.slow  # trains DIME in the vectorised multigoal loop
def test_multigoal_runs_dime_and_labels_its_entropy(tmp_path):
    from test_multigoal_experiment import MG3, TINY

    import s2ac.experiments.multigoal as mg

    summary = mg.run_multigoal(tmp_path, False, 2, ["dime"], [MG3], budget=TINY, progress=False)
    ent = summary["results"][MG3]["dime"]["entropy"]
    assert "lower_bound" in ent and "log_prob" not in ent
    assert np.isfinite(np.asarray(ent["knn"], float)).all() and np.isfinite(np.asarray(ent["lower_bound"], float)).all()
    assert "entropy lower bound" in (tmp_path / "report.md").read_text()


def test_class_api_builds_dime_and_s2ac_dist():
    import s2ac

    model = s2ac.DIME(
        "Pendulum-v1", preset="quick", diffusion_steps=2, critic_hidden=WIDTH, actor_hidden=WIDTH, batch_size=BATCH
    )
    assert model.config.critic == "distributional" and model.agent.log_density_kind == "lower_bound"
    action, _ = model.predict(np.zeros(3, np.float32), deterministic=True)
    assert action.shape == (1,) and -2.0 <= float(action[0]) <= 2.0
    dist = s2ac.S2ACDist("Pendulum-v1", preset="quick")
    assert (dist.config.critic, dist.config.init) == ("distributional", "learned")


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--algo", "dime", "--diffusion-steps", "0"], "diffusion steps"),
        (["--algo", "sac", "--diffusion-steps", "4"], "applies to a diffusion policy"),
    ],
)
def test_bench_diffusion_steps_bad_input_one_line(argv, words):
    import tyro

    from s2ac.bench import BenchUpdate, run_bench_update

    with pytest.raises(ValueError, match=words) as info:
        run_bench_update(tyro.cli(BenchUpdate, args=argv))
    assert "\n" not in str(info.value)
