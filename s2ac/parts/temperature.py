"""Temperature parts: a fixed ``alpha``, or ``alpha`` tuned toward a target entropy (SAC v2,
Haarnoja et al. 2018b, Eq. 18): minimise ``J(log alpha) = log alpha * (H - H_target)`` with the
policy entropy ``H = -E[log pi(a|s)]`` held fixed, so ``alpha`` rises while ``H < H_target``.

Usable by every actor with a log-density (SAC's exact one, SAC-NF's flow, S²AC's closed form);
SQL's sampler has none and refuses ``auto_alpha``. Config fields: ``auto_alpha`` (tuned or fixed),
``alpha`` (the fixed value and the tuned one's start), ``target_entropy`` (None: ``-|A|``),
``alpha_lr``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from s2ac.parts.base import adam, apply_gradients
from s2ac.types import Array


class Temperature:
    """``alpha = exp(log_alpha)``: fixed (``tuned=False``) or tuned toward ``target_entropy``."""

    def __init__(self, tuned: bool, alpha: float, target_entropy: float, lr: float, adam_beta1: float = 0.9):
        self.tuned, self.alpha, self.target_entropy = tuned, alpha, target_entropy
        self.tx = adam(lr, adam_beta1)

    @classmethod
    def from_config(cls, config: Any, act_dim: int) -> Temperature:
        target = -float(act_dim) if config.target_entropy is None else config.target_entropy
        return cls(config.auto_alpha, config.alpha, target, config.alpha_lr, config.adam_beta1)

    def init(self) -> tuple[Array, Any]:
        """``(log_alpha, optimiser state)``, ``log_alpha = log(alpha)``."""
        log_alpha = jnp.asarray(jnp.log(self.alpha), jnp.float32)
        return log_alpha, self.tx.init(log_alpha)

    def loss(self, log_alpha: Array, entropy: Array) -> Array:
        """``log_alpha * (H - H_target)`` with ``H`` held fixed."""
        return log_alpha * jax.lax.stop_gradient(entropy - self.target_entropy)

    def step(self, log_alpha: Array, opt: Any, entropy: Array) -> tuple[Array, Any, Array]:
        """One Adam step on :meth:`loss` when tuned; unchanged (loss 0) when fixed."""
        if not self.tuned:
            return log_alpha, opt, jnp.zeros(())
        loss, grad = jax.value_and_grad(self.loss)(log_alpha, entropy)
        log_alpha, opt = apply_gradients(self.tx, log_alpha, opt, grad)
        return log_alpha, opt, loss


__all__ = ["Temperature"]
