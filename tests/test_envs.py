"""Multigoal envs (REFERENCE.md §3): hand-computed rewards, wall geometry, Gymnasium vs JAX."""

from __future__ import annotations

import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from s2ac.envs import (
    FOUR_GOALS,
    FOUR_GOALS_OBSTACLE,
    MULTIGOAL_IDS,
    THREE_GOALS,
    THREE_GOALS_OBSTACLE,
    MultiGoalEnv,
    MultiGoalSpec,
    draw_multigoal,
    is_multigoal,
    jax_env_for,
    make_env,
    multigoal_spec,
)
from s2ac.envs import multigoal_jax as mj
from s2ac.envs.geometry import segments_intersect


def gym_step_from(spec, start, action):
    """One Gymnasium step of ``spec`` from ``start``."""
    env = MultiGoalEnv(spec)
    env.reset(options={"start": start})
    return env.step(np.asarray(action, dtype=np.float32))


# ----------------------------------------------------------------------------- spec


def test_specs_match_reference():
    assert FOUR_GOALS.goals == ((5.0, 0.0), (-5.0, 0.0), (0.0, 5.0), (0.0, -5.0))
    assert THREE_GOALS.goals == ((5.0, 0.0), (-4.0, 3.0), (-4.0, -3.0))
    assert FOUR_GOALS.probe_states == ((0, 0), (1, 0), (2, 0), (2.5, 2.5), (4, 0), (2.5, -2.5))
    assert THREE_GOALS.probe_states == ((-3.5, -2.5), (-2.5, 0.5), (-1, 0), (0, 0), (1, 0), (4, 0))
    assert FOUR_GOALS.wall is None and THREE_GOALS.wall is None
    assert FOUR_GOALS_OBSTACLE.wall == ((-1.5, 3.0), (1.5, 3.0))
    assert THREE_GOALS_OBSTACLE.wall == ((-2.0, 0.0), (0.0, 2.0))
    for spec in (FOUR_GOALS, THREE_GOALS):
        assert (spec.bound, spec.max_action, spec.action_cost) == (7.0, 1.0, 30.0)
        assert (spec.goal_reward, spec.goal_radius, spec.horizon, spec.start) == (10.0, 0.5, 30, (0.0, 0.0))
    # The 3 goals are all at distance 5 from the start (§3).
    np.testing.assert_allclose(np.linalg.norm(THREE_GOALS.goals, axis=1), 5.0)


def test_spec_is_hashable_and_normalised():
    spec = MultiGoalSpec(name="x", goals=[[1, 2], np.array([3.0, 4.0])], wall=[[0, 0], [1, 1]])
    assert spec.goals == ((1.0, 2.0), (3.0, 4.0)) and spec.wall == ((0.0, 0.0), (1.0, 1.0))
    assert hash(spec) == hash(MultiGoalSpec(name="x", goals=((1, 2), (3, 4)), wall=((0, 0), (1, 1))))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"goals": ()}, "goals"),
        ({"goals": ((1.0, float("nan")),)}, "goals[0]"),
        ({"goals": ((1.0, 2.0, 3.0),)}, "goals[0]"),
        ({"goals": ((1.0, 0.0),), "bound": -1.0}, "bound"),
        ({"goals": ((1.0, 0.0),), "horizon": 0}, "horizon"),
        ({"goals": ((1.0, 0.0),), "wall": ((0, 0), (1, 1), (2, 2))}, "wall"),
    ],
)
def test_spec_rejects_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        MultiGoalSpec(name="bad", **kwargs)


# ----------------------------------------------------------------------------- reward and dynamics


def test_reward_first_step_by_hand():
    # s' = (1, 0): cost 30 * 1, nearest goal (5, 0) at squared distance 16.
    obs, reward, terminated, truncated, info = gym_step_from(FOUR_GOALS, (0, 0), (1, 0))
    np.testing.assert_array_equal(obs, [1.0, 0.0])
    assert obs.dtype == np.float32 and obs.shape == (2,)
    assert reward == pytest.approx(-46.0)
    assert (terminated, truncated, info) == (False, False, {"goal_index": -1, "hit_wall": False})


def test_reward_three_goals_by_hand():
    # s' = (-1, 0.8): cost 30 * (0.25 + 0.16) = 12.3; nearest G2 (-4, 3): 9 + 4.84 = 13.84.
    _, reward, *_ = gym_step_from(THREE_GOALS, (-0.5, 0.4), (-0.5, 0.4))
    assert reward == pytest.approx(-26.14, abs=1e-4)


def test_action_is_clipped_to_box():
    # (3, -2) -> (1, -1): cost 30 * 2 = 60; goals (5, 0) and (0, -5) both at squared distance 17.
    obs, reward, *_ = gym_step_from(FOUR_GOALS, (0, 0), (3, -2))
    np.testing.assert_array_equal(obs, [1.0, -1.0])
    assert reward == pytest.approx(-77.0)


def test_position_is_clipped_to_arena():
    # (6.5, 6.5) + (1, 1) -> clipped to (7, 7): cost 60; nearest goals at squared distance 4 + 49.
    obs, reward, *_ = gym_step_from(FOUR_GOALS, (6.5, 6.5), (1, 1))
    np.testing.assert_array_equal(obs, [7.0, 7.0])
    assert reward == pytest.approx(-113.0)


def test_goal_bonus_and_termination():
    # s' = (4.6, 0) is 0.4 < 0.5 from goal 0: -30 * 0.36 - 0.16 + 10.
    obs, reward, terminated, truncated, info = gym_step_from(FOUR_GOALS, (4, 0), (0.6, 0))
    assert reward == pytest.approx(-0.96, abs=1e-5)
    assert terminated and not truncated and info["goal_index"] == 0
    # Just outside the radius: no bonus, no termination.
    _, reward, terminated, _, info = gym_step_from(FOUR_GOALS, (4, 0), (0.4, 0))
    assert reward == pytest.approx(-30 * 0.16 - 0.36, abs=1e-5)
    assert not terminated and info["goal_index"] == -1
    # Goal index of a non-first goal: G3 of the 3-goal env.
    _, _, terminated, _, info = gym_step_from(THREE_GOALS, (-3.5, -2.5), (-0.5, -0.5))
    assert terminated and info["goal_index"] == 2


def test_walking_to_a_goal_terminates_on_arrival():
    env = make_env("s2ac/MultiGoal4-v0")
    env.reset(seed=0)
    rewards = []
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0], np.float32))
        rewards.append(reward)
    np.testing.assert_allclose(rewards, [-30 - 16, -30 - 9, -30 - 4, -30 - 1, -30 - 0 + 10])
    assert terminated and not truncated and info["goal_index"] == 0


def test_truncation_after_30_steps():
    env = make_env("s2ac/MultiGoal4-v0")
    env.reset(seed=0)
    for t in range(1, 31):
        obs, reward, terminated, truncated, _ = env.step(np.zeros(2, np.float32))
        assert reward == pytest.approx(-25.0)
        assert terminated is False
        assert truncated is (t == 30)


# ----------------------------------------------------------------------------- geometry and wall

WALL = ((-1.0, 0.0), (1.0, 0.0))


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        (((0, -1), (0, 1)), True),  # proper crossing
        (((-1, 1), (1, 1)), False),  # parallel, apart
        (((2, 0), (3, 0)), False),  # collinear, disjoint
        (((0.5, 0), (3, 0)), True),  # collinear, overlapping
        (((-3, 0), (3, 0)), True),  # collinear, containing
        (((1, 0), (2, 1)), True),  # touching endpoints
        (((0, 1), (0, 0)), True),  # T-junction: endpoint on the interior
        (((1.5, -1), (1.5, 1)), False),  # crosses the wall's line beyond its end
        (((5, 5), (6, 7)), False),  # clearly apart
        (((0, 0), (0, 0)), True),  # a point on the segment
        (((0, 0.5), (0, 0.5)), False),  # a point off the segment
    ],
)
def test_segments_intersect_cases(segment, expected):
    for xp in (np, jnp):
        pts = [xp.asarray(x, dtype=xp.float32) for x in (*segment, *WALL)]
        assert bool(segments_intersect(*pts)) is expected
        # Symmetric in the two segments and in each segment's direction.
        assert bool(segments_intersect(pts[2], pts[3], pts[1], pts[0])) is expected


def test_segments_intersect_batched_under_jit():
    rng = np.random.default_rng(0)
    p, p2 = rng.uniform(-2, 2, (2, 500, 2)).astype(np.float32)
    q, q2 = np.float32(WALL)
    expected = segments_intersect(p, p2, q, q2)
    got = jax.jit(segments_intersect)(jnp.asarray(p), jnp.asarray(p2), jnp.asarray(q), jnp.asarray(q2))
    np.testing.assert_array_equal(np.asarray(got), expected)
    assert 0 < expected.sum() < expected.size


def test_wall_cancels_crossing_step():
    # (0, 2.5) -> (0, 3.5) crosses y = 3 within x in [-1.5, 1.5]: stay, pay the action cost.
    obs, reward, terminated, _, info = gym_step_from(FOUR_GOALS_OBSTACLE, (0, 2.5), (0, 1))
    np.testing.assert_array_equal(obs, [0.0, 2.5])
    assert info["hit_wall"] is True and not terminated
    assert reward == pytest.approx(-30.0 - 2.5**2)
    # Landing exactly on the wall touches it: cancelled too.
    obs, _, _, _, info = gym_step_from(FOUR_GOALS_OBSTACLE, (0, 2.5), (0, 0.5))
    np.testing.assert_array_equal(obs, [0.0, 2.5])
    assert info["hit_wall"]
    # The same move without the wall goes through.
    obs, reward, _, _, info = gym_step_from(FOUR_GOALS, (0, 2.5), (0, 1))
    np.testing.assert_array_equal(obs, [0.0, 3.5])
    assert not info["hit_wall"] and reward == pytest.approx(-30.0 - 1.5**2)


def test_wall_lets_non_crossing_step_pass():
    # x = 2 is beyond the wall's end at 1.5.
    obs, reward, _, _, info = gym_step_from(FOUR_GOALS_OBSTACLE, (2, 2.5), (0, 1))
    np.testing.assert_array_equal(obs, [2.0, 3.5])
    assert not info["hit_wall"]
    assert reward == pytest.approx(-30.0 - (2.0**2 + 1.5**2))
    # 3-goal wall (-2, 0)-(0, 2): a step across it is cancelled, one away from it is not.
    obs, _, _, _, info = gym_step_from(THREE_GOALS_OBSTACLE, (-0.5, 1.0), (-0.5, 0.5))
    assert info["hit_wall"] and np.array_equal(obs, np.float32([-0.5, 1.0]))
    obs, _, _, _, info = gym_step_from(THREE_GOALS_OBSTACLE, (0, 0), (-1, -1))
    assert not info["hit_wall"] and np.array_equal(obs, np.float32([-1.0, -1.0]))


# ----------------------------------------------------------------------------- Gymnasium vs JAX


@pytest.mark.parametrize("env_id", MULTIGOAL_IDS)
def test_gymnasium_and_jax_agree_step_by_step(env_id):
    spec = jax_env_for(env_id)
    rng = np.random.default_rng(1)
    env = make_env(env_id)
    n_steps, n_episodes, hits, goals = 0, 0, 0, 0
    for episode in range(12):
        obs, _ = env.reset(seed=episode)
        state, jobs = mj.reset(spec)
        np.testing.assert_array_equal(obs, np.asarray(jobs))
        # A drift towards a random goal makes episodes reach goals and hit walls, not just wander.
        drift = np.float32(spec.goals[episode % len(spec.goals)]) / 5.0
        done = False
        while not done:
            action = (drift + rng.normal(0, 0.7, 2)).astype(np.float32) * 1.3
            obs, reward, terminated, truncated, info = env.step(action)
            state, jobs, jrew, jterm, jtrunc, jinfo = mj.step(spec, state, jnp.asarray(action))
            np.testing.assert_allclose(obs, np.asarray(jobs), rtol=0, atol=1e-6)
            assert reward == pytest.approx(float(jrew), rel=1e-6, abs=1e-5)
            assert (terminated, truncated) == (bool(jterm), bool(jtrunc))
            assert info == {"goal_index": int(jinfo["goal_index"]), "hit_wall": bool(jinfo["hit_wall"])}
            done = terminated or truncated
            n_steps, hits, goals = n_steps + 1, hits + info["hit_wall"], goals + terminated
        n_episodes += 1
    assert goals > 0 and n_steps > 3 * n_episodes
    if spec.wall is not None:
        assert hits > 0


def test_jit_vmap_step_equals_python_loop():
    spec = FOUR_GOALS_OBSTACLE
    rng = np.random.default_rng(2)
    n = 256
    pos = rng.uniform(-6, 6, (n, 2)).astype(np.float32)
    pos[:64] = rng.uniform([-1.5, 2.0], [1.5, 3.0], (64, 2))  # near the wall, so some steps hit it
    pos[64:96] = np.float32(spec.goals[0]) + rng.uniform(-0.6, 0.6, (32, 2))  # near a goal
    actions = rng.uniform(-1.5, 1.5, (n, 2)).astype(np.float32)
    t = rng.integers(0, spec.horizon, n).astype(np.int32)
    state = mj.EnvState(jnp.asarray(pos), jnp.asarray(t))
    batched = jax.jit(jax.vmap(mj.step, in_axes=(None, 0, 0)), static_argnums=0)(spec, state, jnp.asarray(actions))
    for i in range(n):
        single = mj.step(spec, mj.EnvState(jnp.asarray(pos[i]), jnp.asarray(t[i])), jnp.asarray(actions[i]))
        for got, want in zip(jax.tree_util.tree_leaves(batched), jax.tree_util.tree_leaves(single), strict=True):
            np.testing.assert_array_equal(np.asarray(got)[i], np.asarray(want))
    _, _, _, terminated, truncated, info = batched
    assert np.asarray(info["hit_wall"]).any() and np.asarray(terminated).any() and np.asarray(truncated).any()


def test_step_autoreset_resets_finished_envs_only():
    spec = FOUR_GOALS
    state = mj.EnvState(
        pos=jnp.asarray([[4.0, 0.0], [0.0, 0.0], [1.0, 1.0]], jnp.float32),
        t=jnp.asarray([3, 29, 5], jnp.int32),
    )
    actions = jnp.asarray([[1.0, 0.0], [0.5, 0.0], [0.5, 0.0]], jnp.float32)
    step_fn = jax.vmap(mj.step_autoreset, in_axes=(None, 0, 0))
    new_state, next_obs, _, terminated, truncated, _ = step_fn(spec, state, actions)
    np.testing.assert_array_equal(np.asarray(terminated), [True, False, False])
    np.testing.assert_array_equal(np.asarray(truncated), [False, True, False])
    # next_obs is the true s'; the state is back at the start where the episode ended.
    np.testing.assert_array_equal(np.asarray(next_obs), [[5.0, 0.0], [0.5, 0.0], [1.5, 1.0]])
    np.testing.assert_array_equal(np.asarray(new_state.pos), [[0.0, 0.0], [0.0, 0.0], [1.5, 1.0]])
    np.testing.assert_array_equal(np.asarray(new_state.t), [0, 0, 6])
    batch, obs = mj.reset_batch(spec, 4)
    assert batch.pos.shape == (4, 2) and batch.t.shape == (4,) and obs.shape == (4, 2)


# ----------------------------------------------------------------------------- registry and errors


@pytest.mark.parametrize("env_id", MULTIGOAL_IDS)
def test_check_env_passes(env_id):
    env = make_env(env_id)
    assert isinstance(env, gymnasium.wrappers.TimeLimit) and env.spec.max_episode_steps == 30
    assert env.observation_space == gymnasium.spaces.Box(-7.0, 7.0, (2,), np.float32)
    assert env.action_space == gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        check_env(env.unwrapped, skip_render_check=True)


def test_lookups():
    assert is_multigoal("s2ac/MultiGoal3Obstacle-v0") and not is_multigoal("Hopper-v5")
    assert multigoal_spec("s2ac/MultiGoal4Obstacle-v0") is FOUR_GOALS_OBSTACLE
    assert jax_env_for("s2ac/MultiGoal3-v0") is THREE_GOALS
    with pytest.raises(ValueError, match="'Hopper-v5' is not a multigoal env.*s2ac/MultiGoal4-v0"):
        jax_env_for("Hopper-v5")


def test_unknown_id_is_named_with_suggestions():
    with pytest.raises(ValueError, match=r"unknown environment id 's2ac/MultiGoal5-v0'.*s2ac/MultiGoal4-v0"):
        make_env("s2ac/MultiGoal5-v0")
    with pytest.raises(ValueError, match=r"unknown environment id 'Hoper-v5'.*Did you mean: Hopper-v5"):
        make_env("Hoper-v5")


def test_discrete_action_space_is_rejected():
    with pytest.raises(ValueError, match=r"'CartPole-v1'.*discrete action space not supported"):
        make_env("CartPole-v1")


def test_render_and_draw():
    env = make_env("s2ac/MultiGoal3Obstacle-v0", render_mode="rgb_array")
    env.reset(seed=0)
    env.step(np.float32([-0.5, 0.5]))
    frame = env.render()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8 and frame.std() > 0
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    assert draw_multigoal(ax, FOUR_GOALS_OBSTACLE, probe_states=True) is ax
    assert ax.get_xlim() == pytest.approx((-7.35, 7.35))
