"""The multigoal point-mass environments (REFERENCE.md §3, "Multigoal" paragraphs).

A point starts at ``(0, 0)`` in the square ``[-7, 7]^2``; the action is a velocity in
``[-1, 1]^2`` (clipped to the box), ``s' = clip(s + a)``, deterministic. The reward is

    r = -30 ||a||^2 - min_g ||s' - g||^2  (+ 10 and termination when min_g ||s' - g|| < 0.5)

and episodes are truncated after 30 steps (by Gymnasium's ``TimeLimit`` for the
registered ids, by ``t`` in :mod:`s2ac.envs.multigoal_jax`).

Obstacle variants (evaluation only): a step whose segment ``s -> s'`` crosses or touches
the wall is cancelled. Choice made here: the agent stays at ``s``, the reward is computed
with ``s' = s`` and the action cost is still paid (the agent spent the effort).

:func:`transition` holds the dynamics, reward, termination and wall maths once, for any
array module ``xp`` (``numpy`` for :class:`MultiGoalEnv`, ``jax.numpy`` for the pure-JAX
env), so the two implementations cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NamedTuple

import gymnasium
import numpy as np
from gymnasium import spaces

from s2ac.envs.geometry import segments_intersect

Point = tuple[float, float]


def _point(value, name: str) -> Point:
    pt = tuple(float(v) for v in value)
    if len(pt) != 2 or not all(math.isfinite(v) for v in pt):
        raise ValueError(f"{name} must be a finite 2-D point, got {value!r}")
    return pt


def _points(values, name: str) -> tuple[Point, ...]:
    pts = tuple(_point(v, f"{name}[{i}]") for i, v in enumerate(values))
    if not pts:
        raise ValueError(f"{name} must hold at least one point")
    return pts


@dataclass(frozen=True)
class MultiGoalSpec:
    """Everything that defines one multigoal task (REFERENCE.md §3).

    Frozen and made of tuples, hence hashable: it can be a static ``jax.jit`` argument.
    """

    name: str
    """Short label for plots and logs."""
    goals: tuple[Point, ...]
    """Goal positions; the reward uses the nearest one (§3)."""
    probe_states: tuple[Point, ...] = ()
    """States at which the per-state policy entropy is measured (§3)."""
    wall: tuple[Point, Point] | None = None
    """Obstacle segment (evaluation-only variants, §3), or ``None``."""
    bound: float = 7.0
    """Positions are clipped to ``[-bound, bound]^2`` (§3)."""
    max_action: float = 1.0
    """Actions are clipped to ``[-max_action, max_action]^2`` (§3)."""
    action_cost: float = 30.0
    """Coefficient of ``||a||^2`` in the cost (§3)."""
    goal_reward: float = 10.0
    """Bonus on reaching a goal (§3)."""
    goal_radius: float = 0.5
    """A goal is reached when ``min_g ||s' - g|| < goal_radius`` (§3)."""
    horizon: int = 30
    """Time limit in steps; a truncation, not a termination (§3)."""
    start: Point = (0.0, 0.0)
    """Start position (§3)."""

    def __post_init__(self) -> None:
        # Normalise lists/arrays to tuples of floats so the spec stays hashable.
        set_ = object.__setattr__
        set_(self, "goals", _points(self.goals, "goals"))
        set_(self, "probe_states", tuple(_point(v, f"probe_states[{i}]") for i, v in enumerate(self.probe_states)))
        set_(self, "start", _point(self.start, "start"))
        if self.wall is not None:
            wall = _points(self.wall, "wall")
            if len(wall) != 2:
                raise ValueError(f"wall must be two end points, got {self.wall!r}")
            set_(self, "wall", wall)
        for field in ("bound", "max_action", "goal_radius"):
            value = float(getattr(self, field))
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{field} must be a positive finite number, got {getattr(self, field)!r}")
            set_(self, field, value)
        for field in ("action_cost", "goal_reward"):
            value = float(getattr(self, field))
            if not math.isfinite(value):
                raise ValueError(f"{field} must be finite, got {getattr(self, field)!r}")
            set_(self, field, value)
        if int(self.horizon) != self.horizon or self.horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {self.horizon!r}")
        set_(self, "horizon", int(self.horizon))
        if any(abs(v) > self.bound for v in self.start):
            raise ValueError(f"start {self.start} lies outside [-{self.bound}, {self.bound}]^2")

    def with_wall(self, wall: tuple[Point, Point] | None, name: str | None = None) -> MultiGoalSpec:
        """A copy with another obstacle (``None`` removes it)."""
        return dataclasses.replace(self, wall=wall, name=name or self.name)

    @classmethod
    def four_goals(cls, obstacle: bool = False) -> MultiGoalSpec:
        """The 4-goal env (§3), optionally with its evaluation wall ``(-1.5, 3)-(1.5, 3)``."""
        spec = cls(
            name="multigoal4",
            goals=((5.0, 0.0), (-5.0, 0.0), (0.0, 5.0), (0.0, -5.0)),
            probe_states=((0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (2.5, 2.5), (4.0, 0.0), (2.5, -2.5)),
        )
        return spec.with_wall(((-1.5, 3.0), (1.5, 3.0)), "multigoal4-obstacle") if obstacle else spec

    @classmethod
    def three_goals(cls, obstacle: bool = False) -> MultiGoalSpec:
        """The 3-goal max-entropy env (§3): G1 ``(5, 0)``, G2 ``(-4, 3)``, G3 ``(-4, -3)``.

        Optionally with its evaluation wall ``(-2, 0)-(0, 2)``.
        """
        spec = cls(
            name="multigoal3",
            goals=((5.0, 0.0), (-4.0, 3.0), (-4.0, -3.0)),
            probe_states=((-3.5, -2.5), (-2.5, 0.5), (-1.0, 0.0), (0.0, 0.0), (1.0, 0.0), (4.0, 0.0)),
        )
        return spec.with_wall(((-2.0, 0.0), (0.0, 2.0)), "multigoal3-obstacle") if obstacle else spec


FOUR_GOALS = MultiGoalSpec.four_goals()
THREE_GOALS = MultiGoalSpec.three_goals()
FOUR_GOALS_OBSTACLE = MultiGoalSpec.four_goals(obstacle=True)
THREE_GOALS_OBSTACLE = MultiGoalSpec.three_goals(obstacle=True)


# ----------------------------------------------------------------------------- shared maths


class Transition(NamedTuple):
    """Result of one step from ``pos`` (leading batch axes allowed)."""

    next_pos: Any
    """``s'``, float32 ``(..., 2)``."""
    reward: Any
    """float32 ``(...)``."""
    terminated: Any
    """bool ``(...)``: a goal was reached."""
    goal_index: Any
    """int ``(...)``: index of the reached goal, -1 if none."""
    hit_wall: Any
    """bool ``(...)``: the step was cancelled by the wall."""


def goal_sq_distances(xp: ModuleType, spec: MultiGoalSpec, pos):
    """``||pos - g||^2`` for every goal: shape ``(..., n_goals)``."""
    goals = xp.asarray(spec.goals, dtype=xp.float32)
    return xp.sum((pos[..., None, :] - goals) ** 2, axis=-1)


def state_reward(xp: ModuleType, spec: MultiGoalSpec, pos):
    """The position part of the reward, ``-min_g ||pos - g||^2`` (no action cost, no bonus)."""
    return -xp.min(goal_sq_distances(xp, spec, pos), axis=-1)


def transition(xp: ModuleType, spec: MultiGoalSpec, pos, action) -> Transition:
    """One deterministic step of the multigoal dynamics (REFERENCE.md §3).

    ``xp`` is ``numpy`` or ``jax.numpy``; ``pos`` and ``action`` are ``(..., 2)`` arrays.
    Computed in float32 in both cases so the Gymnasium and JAX envs agree.
    """
    pos = xp.asarray(pos, dtype=xp.float32)
    action = xp.clip(xp.asarray(action, dtype=xp.float32), -spec.max_action, spec.max_action)
    proposed = xp.clip(pos + action, -spec.bound, spec.bound)
    if spec.wall is None:
        hit_wall = xp.zeros(proposed.shape[:-1], dtype=bool)
        next_pos = proposed
    else:
        # The wall is tested against the move actually made (after the position clip).
        w0, w1 = (xp.asarray(w, dtype=xp.float32) for w in spec.wall)
        hit_wall = segments_intersect(pos, proposed, w0, w1, xp)
        next_pos = xp.where(hit_wall[..., None], pos, proposed)
    sq_dist = goal_sq_distances(xp, spec, next_pos)
    min_sq_dist = xp.min(sq_dist, axis=-1)
    # ||s' - g|| < r  <=>  ||s' - g||^2 < r^2: no square root needed.
    terminated = min_sq_dist < spec.goal_radius**2
    goal_index = xp.where(terminated, xp.argmin(sq_dist, axis=-1), -1)
    reward = -spec.action_cost * xp.sum(action**2, axis=-1) - min_sq_dist + spec.goal_reward * terminated
    return Transition(next_pos, reward.astype(xp.float32), terminated, goal_index, hit_wall)


# ----------------------------------------------------------------------------- Gymnasium env


class MultiGoalEnv(gymnasium.Env):
    """Gymnasium version of the multigoal env (REFERENCE.md §3).

    The time limit is not applied here: the registered ids (``s2ac/MultiGoal4-v0`` and
    friends, see :mod:`s2ac.envs`) wrap the env in Gymnasium's ``TimeLimit`` with
    ``max_episode_steps = task.horizon``, which reports ``truncated=True``.

    The task is passed as ``task`` (not ``spec``, which ``gymnasium.Env`` reserves for its
    registration record). ``reset(options={"start": (x, y)})`` starts from another position,
    e.g. a probe state.

    ``info`` holds ``goal_index`` (index of the goal reached this step, -1 if none) and
    ``hit_wall`` (whether this step was cancelled by the wall).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, task: MultiGoalSpec = FOUR_GOALS, render_mode: str | None = None):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.task = task
        self.render_mode = render_mode
        high = np.full(2, task.bound, dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.action_space = spaces.Box(-task.max_action, task.max_action, shape=(2,), dtype=np.float32)
        self._pos = np.asarray(task.start, dtype=np.float32)
        self._path = [self._pos.copy()]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)  # the dynamics are deterministic; this only seeds the spaces
        start = (options or {}).get("start", self.task.start)
        self._pos = np.clip(np.asarray(start, dtype=np.float32).reshape(2), -self.task.bound, self.task.bound)
        self._path = [self._pos.copy()]
        return self._pos.copy(), {}

    def step(self, action):
        tr = transition(np, self.task, self._pos, np.asarray(action).reshape(2))
        self._pos = tr.next_pos
        self._path.append(self._pos.copy())
        info = {"goal_index": int(tr.goal_index), "hit_wall": bool(tr.hit_wall)}
        return self._pos.copy(), float(tr.reward), bool(tr.terminated), False, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return render_rgb(self.task, np.stack(self._path))


# ----------------------------------------------------------------------------- plotting


def draw_multigoal(
    ax,
    spec: MultiGoalSpec,
    *,
    reward_contours: bool = True,
    probe_states: bool = False,
    resolution: int = 121,
    contour_levels: int = 20,
):
    """Draw the arena of ``spec`` on a matplotlib ``ax``: bounds, goals, wall, and optionally
    contours of the position reward ``-min_g ||s - g||^2`` and the probe states.

    Trajectories, particles or Q contours can be drawn on top by the caller. Returns ``ax``.
    """
    b = spec.bound
    if reward_contours:
        grid = np.linspace(-b, b, resolution, dtype=np.float32)
        xx, yy = np.meshgrid(grid, grid)
        values = state_reward(np, spec, np.stack([xx, yy], axis=-1))
        ax.contour(xx, yy, values, levels=contour_levels, colors="0.75", linewidths=0.6, zorder=0)
    ax.plot([-b, b, b, -b, -b], [-b, -b, b, b, -b], color="0.3", linewidth=1.0)
    goals = np.asarray(spec.goals)
    ax.scatter(goals[:, 0], goals[:, 1], marker="*", s=120, color="tab:red", zorder=3)
    for i, (gx, gy) in enumerate(spec.goals):
        ax.add_patch(_circle((gx, gy), spec.goal_radius))
        ax.annotate(f"G{i + 1}", (gx, gy), textcoords="offset points", xytext=(6, 6), fontsize=8)
    if spec.wall is not None:
        (x0, y0), (x1, y1) = spec.wall
        ax.plot([x0, x1], [y0, y1], color="black", linewidth=3.0, solid_capstyle="round", zorder=3)
    if probe_states and spec.probe_states:
        probes = np.asarray(spec.probe_states)
        ax.scatter(probes[:, 0], probes[:, 1], marker="x", s=30, color="tab:blue", zorder=3)
    ax.scatter(*spec.start, marker="o", s=20, color="black", zorder=3)
    margin = 0.05 * b
    ax.set_xlim(-b - margin, b + margin)
    ax.set_ylim(-b - margin, b + margin)
    ax.set_aspect("equal")
    return ax


def _circle(center: Point, radius: float):
    from matplotlib.patches import Circle

    return Circle(center, radius, fill=False, color="tab:red", linewidth=0.8, zorder=3)


def render_rgb(spec: MultiGoalSpec, path: np.ndarray, size_px: int = 256) -> np.ndarray:
    """An ``(size_px, size_px, 3)`` uint8 image of the arena and a path ``(T, 2)``."""
    # Figure + Agg canvas directly: no pyplot state, works headless.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 64
    fig = Figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    draw_multigoal(ax, spec, resolution=61)
    ax.plot(path[:, 0], path[:, 1], color="tab:blue", linewidth=1.5, zorder=4)
    ax.scatter(path[-1:, 0], path[-1:, 1], color="tab:blue", s=25, zorder=5)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
