"""The soft-optimal policy of a multigoal task, by soft value iteration on a grid: the ground truth for
the goal shares, success rate and per-state entropy that a maximum-entropy method is trained towards.

The agents maximise ``E[sum_t gamma^t (c r_t + alpha H(pi(.|s_t)))]`` (``c`` the reward scale; a time
limit is a truncation, so the target is the stationary, discounted problem). Its optimum is
``pi*(a|s) = exp((Q*(s, a) - V*(s)) / alpha)`` with the soft Bellman equations (REFERENCE.md §1)

    Q*(s, a) = c r(s, a) + gamma (1 - done(s, a)) V*(s'(s, a)),
    V*(s)    = alpha log  integral over the action box of exp(Q*(s, a) / alpha) da.

Here the position box is a grid of spacing ``h`` (V* bilinear between nodes), the action box a grid of
the same spacing, and the integral the trapezoid rule on it. Dynamics, reward and termination are the
env's own :func:`s2ac.envs.multigoal.transition`. The backup is a gamma-contraction, iterated until the
largest change is below ``tol``. Test episodes sample a grid action from pi* and spread it uniformly over
its cell (the piecewise-constant density whose entropy :func:`policy_entropy` reports).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from s2ac.envs.multigoal import MultiGoalSpec, transition

Array = jax.Array


def trapezoid_grid(low: float, high: float, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and trapezoid weights of ``[low, high]``; ``spacing`` must divide the interval."""
    n = round((high - low) / spacing)
    if n < 1 or abs(n * spacing - (high - low)) > 1e-6 * max(1.0, high - low):
        raise ValueError(f"spacing {spacing} does not divide [{low}, {high}]")
    nodes = np.linspace(low, high, n + 1)
    weights = np.full(n + 1, spacing)
    weights[[0, -1]] = spacing / 2
    return nodes, weights


def action_grid(task: MultiGoalSpec, spacing: float) -> tuple[Array, Array]:
    """``(actions (K, 2), log trapezoid weights (K,))`` of the action box ``[-max_action, max_action]^2``."""
    nodes, weights = trapezoid_grid(-task.max_action, task.max_action, spacing)
    actions = np.stack(np.meshgrid(nodes, nodes, indexing="ij"), -1).reshape(-1, 2)
    log_w = np.log(np.outer(weights, weights).reshape(-1))
    return jnp.asarray(actions, jnp.float32), jnp.asarray(log_w, jnp.float32)


def bilinear(values: Array, pos: Array, bound: float, spacing: float) -> Array:
    """Bilinear interpolation at positions ``(..., 2)`` in ``[-bound, bound]^2`` of ``values (n, n)`` given
    on the grid of that spacing (``values[i, j]`` at ``(-bound + i h, -bound + j h)``)."""
    n = values.shape[0]
    g = (pos + bound) / spacing
    i = jnp.clip(jnp.floor(g).astype(jnp.int32), 0, n - 2)
    f = g - i
    ix, iy, fx, fy = i[..., 0], i[..., 1], f[..., 0], f[..., 1]
    return (
        values[ix, iy] * (1 - fx) * (1 - fy)
        + values[ix + 1, iy] * fx * (1 - fy)
        + values[ix, iy + 1] * (1 - fx) * fy
        + values[ix + 1, iy + 1] * fx * fy
    )


@dataclass(frozen=True)
class SoftValue:
    """V* on the position grid of one task, and what acting on it needs."""

    task: MultiGoalSpec
    spacing: float
    values: Array  # (n, n): V*(x_i, y_j)
    reward_scale: float
    alpha: float
    gamma: float
    iterations: int
    residual: float

    def interpolate(self, pos: Array) -> Array:
        """Bilinear V* at positions ``(..., 2)`` inside the box."""
        return bilinear(self.values, pos, self.task.bound, self.spacing)

    def q_values(self, pos: Array, actions: Array) -> Array:
        """``Q*(s, a)`` for positions ``(B, 2)`` and every grid action ``(K, 2)``: ``(B, K)``."""
        step = transition(jnp, self.task, pos[:, None, :], actions[None])
        future = jnp.where(step.terminated, 0.0, self.interpolate(step.next_pos))
        return self.reward_scale * step.reward + self.gamma * future


def soft_value_iteration(
    task: MultiGoalSpec,
    reward_scale: float,
    alpha: float,
    gamma: float,
    spacing: float = 0.1,
    tol: float = 1e-4,
    max_iterations: int = 5_000,
) -> SoftValue:
    """Iterate the soft Bellman backup on the grid until ``max |V_new - V| < tol`` (module docstring).

    The task's wall is ignored: the policies are trained without it (it is a test-time obstacle)."""
    if task.wall is not None:
        task = task.with_wall(None)
    nodes, _ = trapezoid_grid(-task.bound, task.bound, spacing)
    n = nodes.size
    positions = jnp.asarray(np.stack(np.meshgrid(nodes, nodes, indexing="ij"), -1).reshape(-1, 2), jnp.float32)
    actions, log_w = action_grid(task, spacing)
    step = transition(jnp, task, positions[:, None, :], actions[None])  # fixed over iterations
    reward = reward_scale * step.reward
    live = ~step.terminated

    @jax.jit
    def backup(v: Array) -> Array:
        future = bilinear(v, step.next_pos, task.bound, spacing)
        q = reward + gamma * jnp.where(live, future, 0.0)
        return (alpha * jax.scipy.special.logsumexp(q / alpha + log_w[None], axis=1)).reshape(n, n)

    v, iterations, residual = jnp.zeros((n, n)), 0, float("inf")
    while residual >= tol and iterations < max_iterations:
        new = backup(v)
        residual = float(jnp.max(jnp.abs(new - v)))
        v, iterations = new, iterations + 1
    return SoftValue(task, spacing, v, reward_scale, alpha, gamma, iterations, residual)


def policy_logits(value: SoftValue, pos: Array) -> tuple[Array, Array]:
    """``(grid actions (K, 2), log pi*(a_k|s) + log w_k (B, K))`` up to a constant per row."""
    actions, log_w = action_grid(value.task, value.spacing)
    return actions, value.q_values(pos, actions) / value.alpha + log_w[None]


def policy_entropy(value: SoftValue, pos: Array) -> Array:
    """``H(pi*(.|s)) = log Z - E_pi*[Q*/alpha]`` (nats) of the piecewise-constant density on the action
    grid, ``Z = sum_k w_k exp(Q*_k / alpha)``; positions ``(B, 2)`` -> ``(B,)``."""
    _, log_w = action_grid(value.task, value.spacing)
    _, logits = policy_logits(value, pos)  # Q*/alpha + log w
    log_z = jax.scipy.special.logsumexp(logits, axis=1)
    probs = jnp.exp(logits - log_z[:, None])
    return log_z - jnp.sum(probs * (logits - log_w[None]), axis=1)


def goal_outcomes(value: SoftValue, task: MultiGoalSpec, episodes: int, key: Array) -> tuple[np.ndarray, float]:
    """``(share of episodes ending at each goal, success rate)`` of pi* over ``episodes`` test episodes of
    ``task`` (its wall, if any, applies) from its start."""
    half = value.spacing / 2
    pos = jnp.broadcast_to(jnp.asarray(task.start, jnp.float32), (episodes, 2))
    goal = jnp.full((episodes,), -1, jnp.int32)

    @jax.jit
    def one_step(pos: Array, goal: Array, key: Array) -> tuple[Array, Array]:
        k_pick, k_jitter = jax.random.split(key)
        actions, logits = policy_logits(value, pos)
        action = actions[jax.random.categorical(k_pick, logits)]
        action = action + jax.random.uniform(k_jitter, action.shape, minval=-half, maxval=half)
        step = transition(jnp, task, pos, jnp.clip(action, -task.max_action, task.max_action))
        active = goal < 0
        goal = jnp.where(active & step.terminated, step.goal_index, goal)
        return jnp.where(active[:, None], step.next_pos, pos), goal

    for t in range(task.horizon):
        pos, goal = one_step(pos, goal, jax.random.fold_in(key, t))
    goal = np.asarray(goal)
    shares = np.array([np.mean(goal == g) for g in range(len(task.goals))])
    return shares, float(np.mean(goal >= 0))


def soft_optimal_reference(
    task: MultiGoalSpec, reward_scale: float, alpha: float, gamma: float, spacing: float, episodes: int, key: Array
) -> dict:
    """The summary entry: pi*'s goal shares and success over ``episodes`` test episodes from the start,
    its entropy at the task's probe states, and the grid and convergence it came from."""
    value = soft_value_iteration(task, reward_scale, alpha, gamma, spacing)
    shares, success = goal_outcomes(value, task, episodes, key)
    entropy = policy_entropy(value, jnp.asarray(task.probe_states, jnp.float32))
    return {
        "goal_shares": shares.tolist(),
        "success": success,
        "probe_entropy": np.asarray(entropy).tolist(),
        "spacing": spacing,
        "episodes": episodes,
        "iterations": value.iterations,
        "residual": value.residual,
        "reward_scale": reward_scale,
        "alpha": alpha,
        "gamma": gamma,
    }
