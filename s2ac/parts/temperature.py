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

from s2ac.parts.base import adam, gradient_step
from s2ac.types import Array


class Temperature:
    """``alpha = exp(log_alpha)``: fixed (``tuned=False``) or tuned toward ``target_entropy``.

    Where a fixed ``alpha`` comes from is the agent's: ``fixed_in_state`` (the default; SAC, SAC-NF,
    CrossQ) reads ``exp(log_alpha)`` from the state, so a checkpoint's value rules, and reports
    ``alpha_loss = 0``; otherwise (S²AC, SQL) a fixed ``alpha`` is the config's float and no
    ``alpha_loss`` is reported.
    ``stateless`` (SQL, whose sampler has no density to tune against) keeps no state fields at all.
    """

    def __init__(
        self,
        tuned: bool,
        alpha: float,
        target_entropy: float,
        lr: float,
        adam_beta1: float = 0.9,
        fixed_in_state: bool = True,
        stateless: bool = False,
    ):
        self.tuned, self.alpha, self.target_entropy = tuned, alpha, target_entropy
        self.tx = adam(lr, adam_beta1)
        self.fixed_in_state, self.stateless = fixed_in_state, stateless
        self.fields: tuple[str, ...] = () if stateless else ("log_alpha", "alpha_opt")
        """The state fields this temperature keeps."""

    @classmethod
    def from_config(
        cls, config: Any, act_dim: int, fixed_in_state: bool = True, stateless: bool = False
    ) -> Temperature:
        target = -float(act_dim) if config.target_entropy is None else config.target_entropy
        return cls(
            config.auto_alpha, config.alpha, target, config.alpha_lr, config.adam_beta1, fixed_in_state, stateless
        )

    @property
    def name(self) -> str:
        """``"tuned"`` or ``"fixed"``."""
        return "tuned" if self.tuned else "fixed"

    @property
    def steps(self) -> bool:
        """Whether the composed update takes a temperature step (and reports ``alpha_loss``)."""
        return self.tuned or self.fixed_in_state

    def value(self, log_alpha: Any) -> Any:
        """``alpha`` as the losses read it: ``exp(log_alpha)`` held fixed in every gradient, or the
        config's float for a fixed ``alpha`` outside the state."""
        if self.tuned:
            return jax.lax.stop_gradient(jnp.exp(log_alpha))
        return jnp.exp(log_alpha) if self.fixed_in_state else self.alpha

    def report(self, log_alpha: Any) -> Array:
        """The ``alpha`` metric."""
        return jnp.exp(log_alpha) if self.tuned or self.fixed_in_state else jnp.asarray(self.alpha)

    def init(self) -> tuple[Array, Any]:
        """``(log_alpha, optimiser state)``, ``log_alpha = log(alpha)``."""
        log_alpha = jnp.asarray(jnp.log(self.alpha), jnp.float32)
        return log_alpha, self.tx.init(log_alpha)

    def init_fields(self) -> dict:
        """The state fields (:attr:`fields`) at the start."""
        return dict(zip(self.fields, self.init(), strict=False)) if self.fields else {}

    def loss(self, log_alpha: Array, entropy: Array) -> Array:
        """``log_alpha * (H - H_target)`` with ``H`` held fixed."""
        return log_alpha * jax.lax.stop_gradient(entropy - self.target_entropy)

    def step(self, log_alpha: Array, opt: Any, entropy: Array) -> tuple[Array, Any, Array]:
        """One Adam step on :meth:`loss` when tuned; unchanged (loss 0) when fixed."""
        if not self.tuned:
            return log_alpha, opt, jnp.zeros(())
        log_alpha, opt, loss, _ = gradient_step(
            self.tx, lambda la, h: (self.loss(la, h), None), log_alpha, opt, entropy
        )
        return log_alpha, opt, loss


__all__ = ["Temperature"]
