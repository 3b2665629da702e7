"""The state-conditioned score network ``f_theta(x, s, n)`` of the DIME sampler (Flax linen).

Architecture read from the DIME paper version (``diffusion/common/models/pisgrad_net.py`` and
``configs/sampler/score_model/cond_pisgradnet.yaml`` at commit 9f6a044), written anew:

* Fourier time features ``[sin(k n + phi), cos(k n + phi)]`` with fixed frequencies
  ``k = linspace(0.1, 100, width)`` and a learnable phase ``phi`` (zero at init), of the raw step
  index ``n``; then ``Dense(width) -> GELU -> Dense(time_width)``.
* ``[x, s, time embedding]`` -> ``n_layers`` x (``Dense(width)`` -> GELU) -> ``Dense(d)``, the last
  layer's weights initialised to the constant ``last_layer_init`` (1e-8) and its bias to 0, so the
  sampler starts as the prior's Ornstein-Uhlenbeck process (``f_theta ~ 0``); the output is clipped
  to ``+-output_clip`` (1e4).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class DiffusionScoreNet(nn.Module):
    """``f_theta(x, s, n) -> (..., d)`` for ``x (..., d)``, ``obs (..., o)``, ``step`` scalar or ``(..., 1)``."""

    act_dim: int
    width: int = 256
    """Hidden width (``num_hid: 256``)."""
    n_layers: int = 3
    """Hidden layers of the state-time trunk (``num_layers: 3``)."""
    time_width: int = 256
    """Width of the time embedding fed to the trunk (``time_coder_out: num_hid``)."""
    last_layer_init: float = 1e-8
    """Constant initial weight of the output layer (``weight_init: 1e-8``)."""
    output_clip: float = 1e4
    """Clip of the output (``outer_clip: 1e4``)."""

    @nn.compact
    def __call__(self, x: jax.Array, obs: jax.Array, step: jax.Array) -> jax.Array:
        phase = self.param("time_phase", nn.initializers.zeros_init(), (self.width,))
        freqs = jnp.linspace(0.1, 100.0, self.width)
        step = jnp.asarray(step, x.dtype)
        if step.ndim == 0 or step.shape[-1] != 1:
            step = step[..., None]
        angle = step * freqs + phase
        features = jnp.concatenate([jnp.sin(angle), jnp.cos(angle)], axis=-1)
        t = nn.gelu(nn.Dense(self.width, name="time_hidden")(features))
        t = nn.Dense(self.time_width, name="time_out")(t)
        t = jnp.broadcast_to(t, x.shape[:-1] + t.shape[-1:])
        h = jnp.concatenate([x, jnp.broadcast_to(obs, x.shape[:-1] + obs.shape[-1:]), t], axis=-1)
        for i in range(self.n_layers):
            h = nn.gelu(nn.Dense(self.width, name=f"hidden_{i}")(h))
        out = nn.Dense(
            self.act_dim,
            name="out",
            kernel_init=nn.initializers.constant(self.last_layer_init),
            bias_init=nn.initializers.zeros_init(),
        )(h)
        return jnp.clip(out, -self.output_clip, self.output_clip)


__all__ = ["DiffusionScoreNet"]
