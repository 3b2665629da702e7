"""Validators for configs and arguments: each raises ``ValueError`` naming the field and the value."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def require(condition: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition``."""
    if not condition:
        raise ValueError(message)


def is_number(value: Any) -> bool:
    """A real int or float (``bool`` excluded)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite_positive(name: str, value: Any) -> None:
    """``value`` is a finite number > 0."""
    require(is_number(value) and math.isfinite(value) and value > 0, f"{name} must be finite and > 0; got {value!r}")


def positive_int(name: str, value: Any) -> None:
    """``value`` is an int > 0."""
    require(
        isinstance(value, int) and not isinstance(value, bool) and value > 0,
        f"{name} must be a positive int; got {value!r}",
    )


def non_negative_int(name: str, value: Any) -> None:
    """``value`` is an int >= 0."""
    require(
        isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        f"{name} must be an int >= 0; got {value!r}",
    )


def one_of(name: str, value: Any, choices: Iterable[Any]) -> None:
    """``value`` is one of ``choices``."""
    choices = tuple(choices)
    require(value in choices, f"unknown {name} {value!r}; expected one of {choices}")


def boolean(name: str, value: Any) -> None:
    """``value`` is a bool."""
    require(isinstance(value, bool), f"{name} must be true or false; got {value!r}")


__all__ = ["require", "is_number", "finite_positive", "positive_int", "non_negative_int", "one_of", "boolean"]
