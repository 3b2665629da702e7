"""Categorical (C51-style) distributional critic maths, as DIME's critic uses it.

Written for ONE transition (one distribution over ``n_atoms`` atoms); callers ``jax.vmap`` over the
batch. The network side (logits from a critic ensemble) lives elsewhere; here only the maths.

Equations (numbered as in ``docs/algorithms/dime.md``; Bellemare et al. 2017, "A Distributional
Perspective on RL", Algorithm 1; DIME's critic loss, ``diffusion/dime.py`` at commit 9f6a044):

* (C1) support ``z_j = v_min + j dz``, ``dz = (v_max - v_min) / (n_atoms - 1)``, ``j = 0 .. n_atoms-1``.
* (C2) projection of the distribution of ``shift + scale * Z`` (``Z ~ p`` on the support) back onto
  the support: each shifted atom ``clip(shift + scale z_i, v_min, v_max)`` gives its mass to its
  two neighbours linearly, ``(Phi p)_j = sum_i p_i max(0, 1 - |clip(shift + scale z_i) - z_j| / dz)``.
* (C3) soft bootstrap target for a transition ``(r, d)``: ``shift = r + gamma (1 - d) alpha H_next``,
  ``scale = gamma (1 - d)``, where ``H_next`` is the next action's entropy term (DIME: its bound
  ``-(running + terminal)``); the target is the AVERAGE of the two critics' projected next-state
  distributions ``(Phi p_1 + Phi p_2) / 2``, no gradient.
* (C4) loss per critic: cross-entropy to the target minus ``entropy_coef`` (0.005) times the
  entropy of the predicted distribution, ``-sum_j t_j log p_j + c sum_j p_j log p_j``; DIME sums
  it over the two critics.
* (C5) ``Q(s, a) = sum_j p_j z_j``.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from s2ac.checks import require

Array = jax.Array

DIME_ENTROPY_COEF = 0.005
"""Weight of the predicted distribution's entropy in (C4) (``alg.critic.entr_coeff``)."""
DEFAULT_WARN_FRACTION = 0.01
"""Share of probability mass / values outside the support above which :class:`SupportMonitor` warns."""


def check_support(v_min: float, v_max: float, n_atoms: int) -> None:
    """One line for a support that cannot work: ``v_min >= v_max``, fewer than 2 atoms, non-finite ends."""
    require(
        isinstance(n_atoms, int) and not isinstance(n_atoms, bool) and n_atoms >= 2,
        f"n_atoms must be an int >= 2 (DIME uses 101); got {n_atoms!r}",
    )
    require(
        all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (v_min, v_max)),
        f"v_min and v_max must be finite numbers; got v_min={v_min!r}, v_max={v_max!r}",
    )
    require(v_min < v_max, f"v_min must be < v_max; got v_min={v_min!r}, v_max={v_max!r}")


def support(v_min: float, v_max: float, n_atoms: int) -> Array:
    """``(n_atoms,)`` atoms ``z_j`` of (C1)."""
    check_support(v_min, v_max, n_atoms)
    return jnp.linspace(v_min, v_max, n_atoms, dtype=jnp.float32)


def project(probs: Array, atoms: Array, shift: Array, scale: Array) -> Array:
    """(C2): the distribution of ``shift + scale * Z`` projected onto ``atoms``; mass is conserved.

    The triangular-kernel form needs no scatter and no special case for a shifted atom that lands
    exactly on an atom (the scatter form's ``l == u`` fix); it equals Bellemare et al.'s Algorithm 1 (tested).
    """
    v_min, v_max = atoms[0], atoms[-1]
    dz = (v_max - v_min) / (atoms.shape[0] - 1)
    moved = jnp.clip(shift + scale * atoms, v_min, v_max)
    weights = jnp.clip(1.0 - jnp.abs(moved[:, None] - atoms[None, :]) / dz, 0.0, 1.0)  # (i, j)
    return probs @ weights


def outside_mass(probs: Array, atoms: Array, shift: Array, scale: Array) -> Array:
    """Probability mass of ``shift + scale * Z`` outside ``[v_min, v_max]`` (clipped by (C2)).

    Returned as a metric by an update so that the host can warn (:class:`SupportMonitor`).
    """
    moved = shift + scale * atoms
    return jnp.sum(jnp.where((moved < atoms[0]) | (moved > atoms[-1]), probs, 0.0))


def bootstrap_target(
    next_probs_1: Array,
    next_probs_2: Array,
    atoms: Array,
    reward: Array,
    discount: Array,
    entropy_bonus: Array,
) -> Array:
    """(C3) for one transition: the mean of both critics' projected next distributions.

    Args:
        next_probs_1, next_probs_2: ``(n_atoms,)`` the two critics' distributions at ``(s', a')``.
        reward: ``r``.
        discount: ``gamma (1 - terminated)``.
        entropy_bonus: ``alpha`` times the next action's entropy term (DIME: ``alpha`` times its bound).
    """
    shift = reward + discount * entropy_bonus
    target = 0.5 * (project(next_probs_1, atoms, shift, discount) + project(next_probs_2, atoms, shift, discount))
    return jax.lax.stop_gradient(target)


def cross_entropy_loss(logits: Array, target: Array, entropy_coef: float = DIME_ENTROPY_COEF) -> Array:
    """(C4) for one critic and one transition: ``-sum t log p - entropy_coef * H(p)``.

    Computed from logits with ``log_softmax`` (the authors take ``log(softmax + 1e-15)``; the same
    value where ``p`` is not tiny, and finite gradients where it is).
    """
    log_p = jax.nn.log_softmax(logits)
    neg_entropy = jnp.sum(jnp.exp(log_p) * log_p)
    return -jnp.sum(target * log_p) + entropy_coef * neg_entropy


def expected_q(logits: Array, atoms: Array) -> Array:
    """(C5): ``sum_j softmax(logits)_j z_j`` over the last axis."""
    return jnp.sum(jax.nn.softmax(logits, axis=-1) * atoms, axis=-1)


class SupportMonitor:
    """Host-side check that returns / targets fit the support; warns ONCE per monitor.

    Call it with a chunk's values (returns, targets, or the :func:`outside_mass` metric as
    ``mass=``) after the device sync; it returns the share outside and warns the first time that
    share exceeds ``threshold``, naming ``v_min``/``v_max`` and how to set them.
    """

    def __init__(self, v_min: float, v_max: float, threshold: float = DEFAULT_WARN_FRACTION) -> None:
        check_support(v_min, v_max, 2)
        self.v_min, self.v_max, self.threshold = float(v_min), float(v_max), float(threshold)
        self.warned = False

    def __call__(self, values: object = None, mass: object = None, what: str = "bootstrap targets") -> float:
        lo = hi = None
        if mass is not None:
            share = float(np.mean(np.asarray(mass)))
        else:
            v = np.asarray(values, dtype=np.float64).ravel()
            if v.size == 0:
                return 0.0
            share = float(np.mean((v < self.v_min) | (v > self.v_max)))
            lo, hi = float(v.min()), float(v.max())
        if share > self.threshold and not self.warned:
            self.warned = True
            seen = f" (seen {lo:.4g} .. {hi:.4g})" if lo is not None else ""
            warnings.warn(
                f"{share:.1%} of the {what} fall outside the critic's support "
                f"[v_min, v_max] = [{self.v_min:g}, {self.v_max:g}]{seen} and are clipped to its ends; "
                "set v_min and v_max to cover the discounted returns, about +-max|r| / (1 - gamma) "
                "(the DIME authors use +-1600 for Gym MuJoCo)",
                SupportWarning,
                stacklevel=2,
            )
        return share


class SupportWarning(UserWarning):
    """Values outside a distributional critic's support (they are clipped, which biases Q)."""


__all__ = [
    "DEFAULT_WARN_FRACTION",
    "DIME_ENTROPY_COEF",
    "SupportMonitor",
    "SupportWarning",
    "bootstrap_target",
    "check_support",
    "cross_entropy_loss",
    "expected_q",
    "outside_mass",
    "project",
    "support",
]
