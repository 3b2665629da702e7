"""Networks: MLPs, the twin-critic ensemble, Gaussian heads, the amortized sampler and their
batch-renormalised versions (Flax linen)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

Activation = Literal["relu", "elu", "tanh", "silu"]


@jax.custom_jvp
def elu(x: jax.Array) -> jax.Array:
    """ELU, ``x`` for ``x > 0`` else ``exp(x) - 1``, with a derivative that reuses the output.

    ``elu'(x) = 1`` for ``x > 0`` else ``elu(x) + 1``: no second ``exp`` in the backward pass,
    which matters because S²AC differentiates the critic twice per SVGD step. Values and
    derivatives of every order equal ``jax.nn.elu``'s (tested).
    """
    # exp(x) - 1 rather than expm1: same value to float32 rounding here, and a faster XLA kernel.
    return jnp.where(x > 0, x, jnp.exp(jnp.minimum(x, 0.0)) - 1.0)


@elu.defjvp
def _elu_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    y = elu(x)
    return y, jnp.where(x > 0, 1.0, y + 1.0) * dx


ACTIVATIONS = {"relu": nn.relu, "elu": elu, "tanh": jnp.tanh, "silu": nn.silu}


class MLP(nn.Module):
    """Fully connected network: ``hidden_sizes`` layers with ``activation``, then a linear output."""

    hidden_sizes: Sequence[int]
    out_dim: int
    activation: Activation = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for width in self.hidden_sizes:
            x = act(nn.Dense(width)(x))
        return nn.Dense(self.out_dim)(x)


class Critic(nn.Module):
    """``Q(s, a)`` on the concatenation ``[s, a]``; returns shape ``batch``."""

    hidden_sizes: Sequence[int]
    activation: Activation = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, action], axis=-1)
        return MLP(self.hidden_sizes, 1, self.activation)(x)[..., 0]


def _critic_axis(critic: type[nn.Module], collections: tuple[str, ...], n_critics: int) -> type[nn.Module]:
    """``critic`` lifted over a leading critic axis: its own ``collections`` (parameters, statistics) per
    critic, independent initialisations."""
    return nn.vmap(
        critic,
        variable_axes={name: 0 for name in collections},
        split_rngs={"params": True},
        in_axes=0,
        out_axes=0,
        axis_size=n_critics,
    )


def _per_critic(obs: jax.Array, action: jax.Array, n_critics: int) -> tuple[jax.Array, jax.Array]:
    """The inputs broadcast over the critic axis (see :class:`CriticEnsemble` for why)."""
    return jnp.broadcast_to(obs, (n_critics, *obs.shape)), jnp.broadcast_to(action, (n_critics, *action.shape))


class CriticEnsemble(nn.Module):
    """``n_critics`` independent critics as one vmapped module: output ``(n_critics, *batch)``.

    One module keeps the twin critics' matmuls batched (one XLA dot per layer). The inputs are
    broadcast over the critic axis on purpose: with a shared (unbatched) input, the first layer's
    dot puts the critic axis inside the feature axis, and every later layer then pays a
    transpose of its ``(n_critics, batch, width)`` activations (measured: about 14% of an S²AC
    update on a CPU).
    """

    hidden_sizes: Sequence[int]
    activation: Activation = "relu"
    n_critics: int = 2

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        ensemble = _critic_axis(Critic, ("params",), self.n_critics)
        return ensemble(self.hidden_sizes, self.activation)(*_per_critic(obs, action, self.n_critics))


class GaussianHead(nn.Module):
    """State-conditioned diagonal Gaussian: returns ``(mean, log_std)``.

    ``log_std`` is clipped to ``[log_std_min, log_std_max]`` (S²AC: sigma in [0.1, 1];
    SAC: the usual [-20, 2] / [-5, 2]).
    """

    hidden_sizes: Sequence[int]
    act_dim: int
    activation: Activation = "relu"
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = MLP(self.hidden_sizes, 2 * self.act_dim, self.activation)(obs)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)


class AmortizedSampler(nn.Module):
    """``u = f(s, xi)``: an MLP on ``[s, xi]`` (SQL's StochasticNNPolicy before its tanh;
    also the amortizer g of amortized S²AC).

    ``obs`` is broadcast against ``noise``'s leading axes: ``obs (B, o)``, ``noise (B, n, e)`` gives ``(B, n, d)``.
    """

    hidden_sizes: Sequence[int]
    act_dim: int
    activation: Activation = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array, noise: jax.Array) -> jax.Array:
        if noise.ndim == obs.ndim + 1:  # several samples per state
            obs = jnp.broadcast_to(obs[..., None, :], noise.shape[:-1] + obs.shape[-1:])
        return MLP(self.hidden_sizes, self.act_dim, self.activation)(jnp.concatenate([obs, noise], axis=-1))


class BatchRenorm(nn.Module):
    """Batch renormalisation (Ioffe 2017, "Batch Renormalization", Algorithm 1) over every axis but the last.

    Training (``train=True``), with the batch's mean ``mu_B``, biased variance ``var_B``,
    ``sigma_B = sqrt(var_B + epsilon)`` and the running ``mu``, ``sigma = sqrt(var + epsilon)``::

        r = clip(sigma_B / sigma, 1 / r_max, r_max)      d = clip((mu_B - mu) / sigma, -d_max, d_max)
        y = scale * ((x - mu_B) / sigma_B * r + d) + bias

    with ``r`` and ``d`` held fixed in the gradient, then ``mu <- momentum mu + (1 - momentum) mu_B``
    (likewise ``var``) and ``steps <- steps + 1``. During the first ``warmup_steps`` training calls
    ``r = 1, d = 0``: plain batch normalisation. Evaluation (``train=False``) normalises by the running
    statistics: ``y = scale * (x - mu) / sigma + bias``, so a single state can be evaluated.
    (CrossQ, Bhatt et al. 2024: momentum 0.99, warm-up 100k, r_max 3, d_max 5, epsilon 1e-3.)
    Initialisation runs no statistics update.
    """

    momentum: float = 0.99
    epsilon: float = 1e-3
    r_max: float = 3.0
    d_max: float = 5.0
    warmup_steps: int = 100_000

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        features = x.shape[-1]
        axes = tuple(range(x.ndim - 1))
        mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32))
        var = self.variable("batch_stats", "var", lambda: jnp.ones((features,), jnp.float32))
        steps = self.variable("batch_stats", "steps", lambda: jnp.zeros((), jnp.int32))
        scale = self.param("scale", nn.initializers.ones, (features,))
        bias = self.param("bias", nn.initializers.zeros, (features,))
        if not train:
            return (x - mean.value) / jnp.sqrt(var.value + self.epsilon) * scale + bias
        batch_mean = jnp.mean(x, axis=axes)
        batch_var = jnp.mean(jnp.square(x - batch_mean), axis=axes)
        batch_std = jnp.sqrt(batch_var + self.epsilon)
        x_hat = (x - batch_mean) / batch_std
        if not self.is_initializing():
            sg = jax.lax.stop_gradient
            std = jnp.sqrt(var.value + self.epsilon)
            r = jnp.clip(sg(batch_std) / std, 1.0 / self.r_max, self.r_max)
            d = jnp.clip((sg(batch_mean) - mean.value) / std, -self.d_max, self.d_max)
            warm = steps.value >= self.warmup_steps
            x_hat = x_hat * jnp.where(warm, r, 1.0) + jnp.where(warm, d, 0.0)
            mean.value = self.momentum * mean.value + (1.0 - self.momentum) * sg(batch_mean)
            var.value = self.momentum * var.value + (1.0 - self.momentum) * sg(batch_var)
            steps.value = steps.value + 1
        return x_hat * scale + bias


class BatchRenormSettings(NamedTuple):
    """The :class:`BatchRenorm` hyper-parameters every layer of a network shares."""

    momentum: float = 0.99
    epsilon: float = 1e-3
    r_max: float = 3.0
    d_max: float = 5.0
    warmup_steps: int = 100_000

    def layer(self) -> BatchRenorm:
        return BatchRenorm(self.momentum, self.epsilon, self.r_max, self.d_max, self.warmup_steps)


class RenormMLP(nn.Module):
    """CrossQ's MLP: batch renorm of the input, then ``Dense -> activation -> BatchRenorm`` per hidden
    layer, then a linear output (the layer order of SBX's ``crossq`` networks)."""

    hidden_sizes: Sequence[int]
    out_dim: int
    activation: Activation = "relu"
    renorm: BatchRenormSettings = BatchRenormSettings()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        x = self.renorm.layer()(x, train)
        for width in self.hidden_sizes:
            x = self.renorm.layer()(act(nn.Dense(width)(x)), train)
        return nn.Dense(self.out_dim)(x)


def _renorm_mlp_on_pair(
    obs: jax.Array, action: jax.Array, hidden_sizes: Sequence[int], out_dim: int, activation, renorm, train: bool
) -> jax.Array:
    """A :class:`RenormMLP` on ``[s, a]``, created in the calling module's scope (its parameters and
    statistics keep the name ``RenormMLP_0`` there): the body of both batch-renormalised critics."""
    return RenormMLP(hidden_sizes, out_dim, activation, renorm)(jnp.concatenate([obs, action], axis=-1), train)


class RenormCritic(nn.Module):
    """``Q(s, a)`` of a :class:`RenormMLP` on ``[s, a]``; ``train`` selects batch or running statistics."""

    hidden_sizes: Sequence[int]
    activation: Activation = "relu"
    renorm: BatchRenormSettings = BatchRenormSettings()
    train: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        return _renorm_mlp_on_pair(obs, action, self.hidden_sizes, 1, self.activation, self.renorm, self.train)[..., 0]


class RenormCriticEnsemble(nn.Module):
    """``n_critics`` batch-renormalised critics as one vmapped module, each with its own statistics:
    output ``(n_critics, *batch)``. ``train=False`` (the default) evaluates with running statistics."""

    hidden_sizes: Sequence[int]
    activation: Activation = "relu"
    renorm: BatchRenormSettings = BatchRenormSettings()
    n_critics: int = 2

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array, train: bool = False) -> jax.Array:
        ensemble = _critic_axis(RenormCritic, ("params", "batch_stats"), self.n_critics)
        return ensemble(self.hidden_sizes, self.activation, self.renorm, train)(
            *_per_critic(obs, action, self.n_critics)
        )


class RenormCategoricalCritic(nn.Module):
    """Logits over ``n_atoms`` atoms of ``Z(s, a)`` from a :class:`RenormMLP` on ``[s, a]`` (DIME's
    critic: CrossQ's layers with a categorical head); ``train`` selects batch or running statistics."""

    hidden_sizes: Sequence[int]
    n_atoms: int
    activation: Activation = "relu"
    renorm: BatchRenormSettings = BatchRenormSettings()
    train: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        return _renorm_mlp_on_pair(
            obs, action, self.hidden_sizes, self.n_atoms, self.activation, self.renorm, self.train
        )


class RenormCategoricalCriticEnsemble(nn.Module):
    """``n_critics`` :class:`RenormCategoricalCritic` as one vmapped module, each with its own statistics:
    logits of shape ``(n_critics, *batch, n_atoms)``."""

    hidden_sizes: Sequence[int]
    n_atoms: int
    activation: Activation = "relu"
    renorm: BatchRenormSettings = BatchRenormSettings()
    n_critics: int = 2

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array, train: bool = False) -> jax.Array:
        ensemble = _critic_axis(RenormCategoricalCritic, ("params", "batch_stats"), self.n_critics)
        return ensemble(self.hidden_sizes, self.n_atoms, self.activation, self.renorm, train)(
            *_per_critic(obs, action, self.n_critics)
        )


class RenormGaussianHead(nn.Module):
    """:class:`GaussianHead` on a :class:`RenormMLP` (CrossQ's ``brn_actor``)."""

    hidden_sizes: Sequence[int]
    act_dim: int
    activation: Activation = "relu"
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    renorm: BatchRenormSettings = BatchRenormSettings()

    @nn.compact
    def __call__(self, obs: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        out = RenormMLP(self.hidden_sizes, 2 * self.act_dim, self.activation, self.renorm)(obs, train)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)
