"""2-D segment geometry for the obstacle variants of the multigoal envs (REFERENCE.md §3).

One formula serves NumPy (the Gymnasium env) and ``jax.numpy`` (the pure-JAX env, under
``jit`` and ``vmap``): every function takes the array module ``xp`` explicitly or infers it
from its inputs, so there is no second copy of the maths.
"""

from __future__ import annotations

import sys
from types import ModuleType

import numpy as np


def array_module(*arrays) -> ModuleType:
    """``jax.numpy`` if any input is a JAX array or tracer, else ``numpy``. JAX is not imported here:
    while it is not loaded no input can be one of its arrays (so the Gymnasium env, registered when
    ``s2ac`` is imported, costs no JAX import)."""
    jax = sys.modules.get("jax")
    if jax is not None and any(isinstance(a, jax.Array) for a in arrays):
        import jax.numpy as jnp

        return jnp
    return np


def orientation(a, b, c, xp: ModuleType | None = None):
    """Sign of the turn ``a -> b -> c``: +1 counter-clockwise, -1 clockwise, 0 collinear.

    ``sign((b - a) x (c - a)) = sign((b_x - a_x)(c_y - a_y) - (b_y - a_y)(c_x - a_x))``.
    Points are ``(..., 2)`` arrays; leading axes broadcast.
    """
    xp = xp or array_module(a, b, c)
    a, b, c = xp.asarray(a), xp.asarray(b), xp.asarray(c)
    cross = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
    return xp.sign(cross)


def in_bounding_box(a, b, c, xp: ModuleType | None = None):
    """Whether ``c`` lies in the axis-aligned box spanned by ``a`` and ``b`` (edges included).

    For a ``c`` already known to be collinear with ``a, b`` this is "``c`` on segment ab".
    """
    xp = xp or array_module(a, b, c)
    a, b, c = xp.asarray(a), xp.asarray(b), xp.asarray(c)
    lo, hi = xp.minimum(a, b), xp.maximum(a, b)
    return xp.all((lo <= c) & (c <= hi), axis=-1)


def segments_intersect(p, p2, q, q2, xp: ModuleType | None = None):
    """Whether the closed segments ``[p, p2]`` and ``[q, q2]`` share at least one point.

    With ``o(a, b, c)`` the orientation of :func:`orientation` (the sign of the cross
    product ``(b - a) x (c - a)``), and ``d1 = o(q, q2, p)``, ``d2 = o(q, q2, p2)``,
    ``d3 = o(p, p2, q)``, ``d4 = o(p, p2, q2)``, the segments meet iff

    * they cross properly: ``d1 * d2 < 0`` and ``d3 * d4 < 0``; or
    * an endpoint of one lies on the other: e.g. ``d1 == 0`` and ``p`` in the bounding
      box of ``q, q2`` (likewise for ``p2``, ``q``, ``q2``).

    The second clause covers touching endpoints, T-junctions and collinear overlap
    (two collinear segments overlap iff one contains an endpoint of the other);
    collinear but disjoint ("parallel") segments fail it. A zero-length segment is a
    point and meets the other segment iff it lies on it. The tests are exact, without
    a tolerance: a step that ends exactly on a wall touches it.

    Points are ``(..., 2)`` arrays (leading axes broadcast); ``xp`` is ``numpy`` or
    ``jax.numpy``, inferred from the inputs when omitted.
    """
    xp = xp or array_module(p, p2, q, q2)
    p, p2, q, q2 = (xp.asarray(x) for x in (p, p2, q, q2))
    d1, d2 = orientation(q, q2, p, xp), orientation(q, q2, p2, xp)
    d3, d4 = orientation(p, p2, q, xp), orientation(p, p2, q2, xp)
    proper = (d1 * d2 < 0) & (d3 * d4 < 0)
    touching = (
        ((d1 == 0) & in_bounding_box(q, q2, p, xp))
        | ((d2 == 0) & in_bounding_box(q, q2, p2, xp))
        | ((d3 == 0) & in_bounding_box(p, p2, q, xp))
        | ((d4 == 0) & in_bounding_box(p, p2, q2, xp))
    )
    return proper | touching
