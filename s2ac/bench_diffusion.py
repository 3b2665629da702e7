"""``s2ac bench diffusion``: the cost of DIME's sampler alone at 4, 8 and 16 diffusion steps.

Two compiled functions per step count, at Hopper sizes by default (obs 11, act 3, batch 256, the
paper's 3 x 256 score network): ``sample`` (one action per state with its entropy bound: what
acting and the critic's next action cost) and ``actor_grad`` (the gradient of
``mean(-Q(a) - alpha * bound)`` through every step, with a fixed quadratic ``Q`` standing in for the
critic: the sampler's share of an actor update). Each is timed in rounds alternating with a dense
``(batch x width) @ (width x width)`` matmul and SAC's whole update in the same process, so the ratios
(between step counts, and to SAC's update) are comparable on a loaded machine.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from s2ac import diffusion as dfn
from s2ac.diffusion_net import DiffusionScoreNet
from s2ac.machine import machine_info, median_seconds


@dataclasses.dataclass(frozen=True)
class BenchDiffusion:
    """Benchmark DIME's diffusion sampler (sampling, and its gradient) at several step counts."""

    steps: tuple[int, ...] = (4, 8, 16)
    """Diffusion steps compared."""
    obs_dim: int = 11
    """Observation size (Hopper: 11)."""
    act_dim: int = 3
    """Action size (Hopper: 3)."""
    batch: int = 256
    """States per call (DIME's batch size)."""
    width: int = 256
    """Score-network width (the paper's 256)."""
    n_layers: int = 3
    """Score-network hidden layers (the paper's 3)."""
    compare_sac: bool = True
    """Also time SAC's whole update (``corrected`` preset, same batch, hidden 256) in the same rounds."""
    rounds: int = 3
    """Alternating rounds (median reported)."""
    repeats: int = 10
    """Calls timed per round."""
    json: bool = False
    """Print one JSON line."""


def _functions(args: BenchDiffusion, n_steps: int):
    config = dfn.DiffusionConfig(n_steps=n_steps)
    net = DiffusionScoreNet(act_dim=args.act_dim, width=args.width, n_layers=args.n_layers, time_width=args.width)
    obs = jax.random.normal(jax.random.PRNGKey(0), (args.batch, args.obs_dim))
    params = (
        net.init(jax.random.PRNGKey(1), jnp.zeros((args.act_dim,)), obs[0], jnp.float32(0.0)),
        dfn.init_sampler_params(config, args.act_dim),
    )

    def draw(p, key):
        return dfn.sample_batched(lambda x, o, n: net.apply(p[0], x, o, n), p[1], config, obs, key)

    def objective(p, key):
        res = draw(p, key)
        q = -jnp.sum((res.action - 0.3) ** 2, axis=-1)  # a fixed stand-in for the critic
        return jnp.mean(-q - 0.1 * res.entropy_bound)

    sample = jax.jit(lambda p, key: draw(p, key).action)
    grad = jax.jit(jax.grad(objective))
    return sample, grad, params


def run_bench_diffusion(args: BenchDiffusion) -> dict:
    """Median ms of ``sample`` and ``actor_grad`` per step count, and the matmul rate beside each."""
    for n in args.steps:
        dfn.check_diffusion_steps(n)
    machine = machine_info()
    key = jax.random.PRNGKey(2)
    a = jax.random.normal(key, (args.batch, args.width), jnp.float32)
    b = jax.random.normal(key, (args.width, args.width), jnp.float32)
    dot = jax.jit(jnp.dot)
    fns = {n: _functions(args, n) for n in args.steps}
    times: dict[int, dict[str, list[float]]] = {n: {"sample": [], "actor_grad": []} for n in args.steps}
    rates, sac_times = [], []
    sac = None
    if args.compare_sac:
        from s2ac.bench import BenchUpdate, compiled_update

        sac_args = BenchUpdate(algo="sac", obs_dim=args.obs_dim, act_dim=args.act_dim, batch=args.batch, hidden=256)
        sac = compiled_update("sac", "corrected", sac_args, count_flops=False)[:3]
    for _ in range(args.rounds):
        mm = median_seconds(dot, a, b, repeats=4 * args.repeats)
        rates.append(2.0 * args.batch * args.width**2 / mm / 1e9)
        if sac is not None:
            sac_times.append(median_seconds(*sac, repeats=args.repeats))
        for n, (sample, grad, params) in fns.items():
            times[n]["sample"].append(median_seconds(sample, params, key, repeats=args.repeats))
            times[n]["actor_grad"].append(median_seconds(grad, params, key, repeats=args.repeats))
    result: dict = {
        "config": dataclasses.asdict(args),
        "device": machine["device_kind"],
        "cpu_model": machine["cpu_model"],
        "load_average_1min": machine["load_average_1min"],
        "matmul_gflops_per_s": float(np.median(rates)),
        "steps": {},
    }
    if sac_times:
        result["sac_update_ms"] = 1e3 * float(np.median(sac_times))
    base = min(args.steps)
    for n in args.steps:
        result["steps"][str(n)] = {
            "sample_ms": 1e3 * float(np.median(times[n]["sample"])),
            "actor_grad_ms": 1e3 * float(np.median(times[n]["actor_grad"])),
        }
    for n in args.steps:
        row = result["steps"][str(n)]
        row[f"sample_vs_{base}_steps"] = row["sample_ms"] / result["steps"][str(base)]["sample_ms"]
        row[f"actor_grad_vs_{base}_steps"] = row["actor_grad_ms"] / result["steps"][str(base)]["actor_grad_ms"]
        if sac_times:
            row["actor_grad_vs_sac_update"] = row["actor_grad_ms"] / result["sac_update_ms"]
    return result


__all__ = ["BenchDiffusion", "run_bench_diffusion"]
