"""Networks: the ELU with a reused-output derivative, and the twin-critic ensemble."""

import jax
import jax.numpy as jnp
import numpy as np

from s2ac.nets import CriticEnsemble, elu


def test_elu_matches_jax_elu_to_third_order():
    x = jnp.linspace(-4.0, 3.0, 41)
    f, g = elu, jax.nn.elu
    for _ in range(4):
        np.testing.assert_allclose(jax.vmap(f)(x), jax.vmap(g)(x), rtol=1e-6, atol=1e-7)
        f, g = jax.grad(f), jax.grad(g)


def test_critic_ensemble_members_are_independent_critics():
    net = CriticEnsemble((8, 8), "elu", n_critics=2)
    obs, act = jnp.ones((5, 3)), jnp.zeros((5, 2))
    params = net.init(jax.random.PRNGKey(0), obs, act)
    q = net.apply(params, obs, act)
    assert q.shape == (2, 5)
    assert not np.allclose(q[0], q[1])  # different initialisations
    # Each member's output depends only on its own parameter slice.
    zeroed = jax.tree_util.tree_map(lambda p: p.at[1].set(0.0), params)
    np.testing.assert_allclose(net.apply(zeroed, obs, act)[0], q[0])
    np.testing.assert_allclose(net.apply(zeroed, obs, act)[1], 0.0)
