"""Learning-rate schedules: constant, or linear to 0 (SB3's ``get_linear_fn`` / RL Zoo's ``lin_3e-4``).

``AgentConfig.lr_schedule`` names the schedule of every optimiser of an agent; the rates are the
config's ``critic_lr``, ``actor_lr`` (and SAC's ``alpha_lr``). ``linear`` is
``lr(k) = lr0 * max(0, 1 - k / K)`` at optimiser step ``k`` over ``K = lr_schedule_updates`` updates,
i.e. SB3's ``lr0 * progress_remaining`` with progress counted in updates; when ``K`` is 0 it is
filled from the run's schedule (:func:`run_updates`). The step count lives in the optimiser state
(optax's ``scale_by_schedule``), which every checkpoint holds, so a resumed run continues exactly.

The agents build their optimisers with :func:`s2ac.parts.base.adam`, which asks
:func:`learning_rate` for the rate while :func:`building` names the agent's config.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

_BUILDING: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar("lr_schedule", default=None)


@contextlib.contextmanager
def building(config: Any) -> Iterator[None]:
    """While an agent of ``config`` is built, :func:`learning_rate` follows its ``lr_schedule``."""
    token = _BUILDING.set((getattr(config, "lr_schedule", "constant"), getattr(config, "lr_schedule_updates", 0)))
    try:
        yield
    finally:
        _BUILDING.reset(token)


def learning_rate(value: float) -> float | Callable[[Any], Any]:
    """``value`` as a constant, or as the optax schedule of the agent being built."""
    kind, updates = _BUILDING.get() or ("constant", 0)
    if kind == "constant" or not updates:
        return value
    import optax

    return optax.linear_schedule(init_value=value, end_value=0.0, transition_steps=updates)


def run_updates(train_config: Any) -> int:
    """Gradient steps of a run: ``gradient_steps`` at every env step ``n <= total_steps`` with
    ``n >= learning_starts`` and ``n % train_freq == 0`` (at least 1)."""
    c = train_config
    first = max(c.learning_starts, 1)
    rounds = c.total_steps // c.train_freq - (first - 1) // c.train_freq
    return max(rounds, 0) * c.gradient_steps or 1


def with_horizon(agent_config: Any, train_config: Any) -> Any:
    """``agent_config`` with a ``linear`` schedule's ``lr_schedule_updates`` filled from the run."""
    if getattr(agent_config, "lr_schedule", "constant") == "linear" and not agent_config.lr_schedule_updates:
        return dataclasses.replace(agent_config, lr_schedule_updates=run_updates(train_config))
    return agent_config


def parse_learning_rate(value: Any) -> tuple[float, str]:
    """``(rate, schedule)`` of SB3's / RL Zoo's ``learning_rate``: a number, ``"lin_3e-4"`` or
    ``"linear_3e-4"``, ``"constant_3e-4"``, or an SB3 callable of ``progress_remaining`` that is
    constant or linear (``lambda p: p * 3e-4``; probed at p = 1, 0.5, 0.25, 0)."""
    if isinstance(value, str):
        kind, _, number = value.partition("_")
        kinds = {"lin": "linear", "linear": "linear", "constant": "constant"}
        if kind not in kinds or not number:
            raise ValueError(f"learning_rate {value!r}: expected a number, 'lin_<rate>' or 'constant_<rate>'")
        return _rate(number, value), kinds[kind]
    if callable(value):
        points = {p: float(value(p)) for p in (1.0, 0.5, 0.25, 0.0)}
        lr0 = points[1.0]
        if all(math.isclose(v, lr0, rel_tol=1e-6) for v in points.values()):
            return _rate(lr0, value), "constant"
        if all(math.isclose(v, p * lr0, rel_tol=1e-6, abs_tol=1e-12) for p, v in points.items()):
            return _rate(lr0, value), "linear"
        raise ValueError(
            "learning_rate callables must be constant or linear in progress_remaining (lambda p: p * 3e-4): a run "
            f"stores its schedule by name; got values {points}"
        )
    return _rate(value, value), "constant"


def _rate(number: Any, given: Any) -> float:
    try:
        return float(number)  # its range is the config's to check (critic_lr, actor_lr ...)
    except (TypeError, ValueError):
        raise ValueError(f"learning_rate {given!r} is not a number") from None


__all__ = ["building", "learning_rate", "parse_learning_rate", "run_updates", "with_horizon"]
