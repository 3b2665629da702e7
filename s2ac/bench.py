"""Update benchmark: median ms per compiled update, its FLOPs, and the same-process matmul rate.

FLOPs come from XLA's cost analysis of the compiled update with the SVGD loop fully
unrolled (``unroll_svgd=True``) and without recomputation (``remat_score=False``): XLA
counts a ``while``/``scan`` body once, so an unrolled lowering is the only way to get the
true count from it, and recomputed activations are not useful work. The time is that of
the update as training compiles it (scan loop, recomputation on). The rate is compared
with a dense ``(B*m x H) @ (H x H)`` float32 matmul, the shape that dominates the update,
timed in the same process.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from s2ac.agents import ALGOS, EnvSpec, config_class, make_agent, make_agent_config
from s2ac.agents.s2ac import S2ACConfig
from s2ac.checks import require
from s2ac.config import AgentConfig
from s2ac.diffusion import check_diffusion_steps
from s2ac.machine import machine_info, median_seconds
from s2ac.types import Batch


@dataclass(frozen=True)
class BenchUpdate:
    """Benchmark one agent update (after compilation)."""

    algo: Literal[ALGOS] = "s2ac"  # type: ignore[valid-type]
    """Algorithm to benchmark."""
    preset: Literal["paper", "corrected"] = "corrected"
    """Preset whose behaviour is benchmarked."""
    obs_dim: int = 11
    """Observation size (Hopper: 11)."""
    act_dim: int = 3
    """Action size (Hopper: 3)."""
    batch: int = 100
    """Minibatch size."""
    particles: int = 10
    """SVGD particles m."""
    svgd_steps: int = 3
    """SVGD steps L."""
    hidden: int = 256
    """Width of every hidden layer."""
    preset_env: str = "bench"
    """Env id whose preset fields the configs take (``s2ac/MultiGoal3-v0``: the multigoal density mode and
    target margin); the sizes come from the options above. ``bench``: the MuJoCo-style presets."""
    repeats: int = 30
    """Timed updates (median reported)."""
    compare_sac: bool = True
    """Also time SAC's update in the same process and report the ratio."""
    compare_step_rules: bool = True
    """S²AC: also time the update under the fixed step (margin logged, and not) in alternating rounds."""
    diffusion_steps: tuple[int, ...] = ()
    """DIME: also time the update at each of these diffusion step counts (e.g. 4 8 16), in alternating rounds."""
    side_by_side: tuple[str, ...] = ()
    """Also time these algorithms (and SAC) at the same sizes in this process, in alternating rounds,
    each with its ratio to SAC from the same rounds, e.g. ``--side-by-side crossq s2ac s2ac-crossq``."""
    variants: tuple[str, ...] = ()
    """Also time the update under each of these config changes, with SAC, in alternating rounds: each
    is ``field=value[,field=value...]``, e.g. ``log_density=mean_field self_term_probes=10
    policy_delay=3`` (a ``policy_delay`` variant is timed over that many consecutive updates)."""
    json: bool = False
    """Print one JSON line."""


def _flops(compiled) -> float:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    return float(analysis.get("flops", float("nan")))


def _random_batch(spec: EnvSpec, batch: int, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch(
        obs=jnp.asarray(rng.normal(size=(batch, spec.obs_dim)), jnp.float32),
        action=jnp.asarray(rng.uniform(-1, 1, (batch, spec.act_dim)), jnp.float32),
        reward=jnp.asarray(rng.normal(size=batch), jnp.float32),
        next_obs=jnp.asarray(rng.normal(size=(batch, spec.obs_dim)), jnp.float32),
        terminated=jnp.zeros(batch, jnp.float32),
    )


STEP_RULE_VARIANTS = {
    "adaptive": dict(svgd_step_control="adaptive"),
    "adaptive_bound": dict(svgd_step_control="adaptive_bound"),
    "fixed (margin logged)": dict(svgd_step_control="fixed", log_margin=True),
    "fixed (no margin)": dict(svgd_step_control="fixed", log_margin=False),
}
"""Step rules compared by :func:`step_rule_costs`: the blocks' rule, the global bound's rule (each at the
preset's target margin), and the fixed step with and without its logged margin (the last is the
update's cost floor: no Jacobian at all)."""


def consecutive(update, n: int):
    """``n`` consecutive updates from one state (``n = policy_delay``: the actor steps once in them), so
    that a delayed update is timed over its whole cycle; ``update`` itself for ``n = 1``."""
    if n == 1:
        return update

    def run(state, batch):
        for _ in range(n):
            state, metrics = update(state, batch)
        return state, metrics

    return run


def variant_costs(args: BenchUpdate, variants: dict[str, dict], rounds: int = 5, with_sac: bool = False) -> dict:
    """Median ms per update of ``args.algo`` under each variant (config fields to change; a delayed
    update over its whole cycle, :func:`consecutive`), timed in alternating rounds in this process so
    that a drift of the machine's speed hits all alike; with
    ``with_sac``, SAC's update joins the rounds and every variant gets its ratio to SAC."""
    updates = {}
    for name, fields in variants.items():
        update, state, batch, _ = compiled_update(args.algo, args.preset, args, overrides=fields, count_flops=False)
        delay = bench_config(args.algo, args.preset, args, fields).policy_delay
        updates[name] = (consecutive(update, delay), state, batch, delay)
    if with_sac:
        update, state, batch, _ = compiled_update("sac", "corrected", args, count_flops=False)
        updates["sac"] = (update, state, batch, 1)
    times: dict[str, list[float]] = {name: [] for name in updates}
    for _ in range(rounds):
        for name, (update, state, batch, n) in updates.items():
            seconds = median_seconds(update, state, batch, repeats=max(3, args.repeats // rounds))
            times[name].append(seconds / n)
    ms = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
    out: dict = {"rounds": rounds, "ms": ms}
    if with_sac:
        out["ratio_to_sac"] = {name: v / ms["sac"] for name, v in ms.items() if name != "sac"}
    return out


def step_rule_costs(args: BenchUpdate, rounds: int = 5) -> dict:
    """Median ms of the S²AC update under each of :data:`STEP_RULE_VARIANTS` (:func:`variant_costs`),
    and each one's ratio to the fixed step with and without its logged margin."""
    ms = variant_costs(args, STEP_RULE_VARIANTS, rounds)["ms"]
    base, floor = ms["fixed (margin logged)"], ms["fixed (no margin)"]
    return {
        "ms": ms,
        "ratio_to_fixed": {name: v / base for name, v in ms.items()},
        "ratio_to_fixed_without_diagnostics": {name: v / floor for name, v in ms.items()},
    }


def parse_variant(text: str) -> dict[str, Any]:
    """``"field=value[,field=value...]"`` -> fields; values read as JSON where they parse (numbers,
    true / false, null), else as strings. ``ValueError`` naming the text otherwise."""
    fields: dict[str, Any] = {}
    for part in text.split(","):
        name, sep, raw = part.partition("=")
        require(bool(sep and name.strip()), f"variant {text!r}: expected field=value[,field=value...]")
        try:
            fields[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            fields[name.strip()] = raw.strip()
    return fields


def config_variant_costs(args: BenchUpdate, rounds: int = 5) -> dict:
    """Median ms of the update under each of ``args.variants`` (:func:`parse_variant`) and as the preset
    sets it, with SAC in the same rounds, and each one's ratio to SAC and to the preset's update."""
    variants = {"preset": {}, **{text: parse_variant(text) for text in args.variants}}
    out = variant_costs(args, variants, rounds, with_sac=True)
    out["ratio_to_preset"] = {name: v / out["ms"]["preset"] for name, v in out["ms"].items() if name != "sac"}
    return out


def algo_costs(args: BenchUpdate, algos: tuple[str, ...], rounds: int = 5) -> dict:
    """Median ms and XLA FLOPs of each of ``algos`` and SAC, timed in alternating rounds in this
    process (a drift of the machine's speed hits all alike), and each one's ratio to SAC: the ratio
    of the medians over rounds, and the median and range of the per-round ratios."""
    names = ("sac", *dict.fromkeys(a for a in algos if a != "sac"))
    compiled = {name: compiled_update(name, args.preset, args) for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name, (update, state, batch, _) in compiled.items():
            times[name].append(median_seconds(update, state, batch, repeats=max(3, args.repeats // rounds)))
    ms = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
    per_round = {name: np.asarray(t) / np.asarray(times["sac"]) for name, t in times.items()}
    return {
        "rounds": rounds,
        "ms": ms,
        "flops": {name: c[3] for name, c in compiled.items()},
        "ratio_to_sac": {name: v / ms["sac"] for name, v in ms.items()},
        "ratio_to_sac_per_round": {
            name: {"median": float(np.median(r)), "min": float(r.min()), "max": float(r.max())}
            for name, r in per_round.items()
        },
    }


def bench_config(algo: str, preset: str, args: BenchUpdate, overrides: dict | None = None) -> AgentConfig:
    """``algo``'s config under ``preset`` for ``args.preset_env``, with ``overrides``, before the bench's sizes."""
    return dataclasses.replace(make_agent_config(algo, preset, args.preset_env), **(overrides or {}))


def compiled_update(algo: str, preset: str, args: BenchUpdate, overrides: dict | None = None, count_flops=True):
    """``(update, state, batch, flops)``: the jitted update as training runs it, its inputs, and
    its useful FLOPs (see the module docstring; NaN unless ``count_flops``). ``overrides``: agent
    config fields to change (the step-rule comparison)."""
    config = bench_config(algo, preset, args, overrides)
    fields = dict(
        batch_size=args.batch,
        critic_hidden=(args.hidden,) * len(config.critic_hidden),
        actor_hidden=(args.hidden,) * len(config.actor_hidden),
    )
    if isinstance(config, S2ACConfig):
        fields.update(n_particles=args.particles, svgd_steps=args.svgd_steps, unroll_svgd=True)
    counted = dataclasses.replace(config, **fields)
    spec = EnvSpec(args.obs_dim, args.act_dim, (-1.0,) * args.act_dim, (1.0,) * args.act_dim)
    batch = _random_batch(spec, args.batch)
    # Useful FLOPs: the unrolled lowering without recomputation (rematerialised work is not counted).
    if "unroll_svgd" in fields:
        counted = dataclasses.replace(counted, remat_score=False)
    counting_agent = make_agent(counted, spec)
    state = counting_agent.init(jax.random.PRNGKey(0))
    flops = _flops(counting_agent.update.lower(state, batch).compile()) if count_flops else float("nan")
    # Time: the update as training runs it (the config's own loop and recomputation settings).
    fields.pop("unroll_svgd", None)
    agent = make_agent(dataclasses.replace(config, **fields), spec)
    return agent.update, state, batch, flops


def time_update(algo: str, preset: str, args: BenchUpdate) -> dict:
    """Median seconds and XLA FLOPs of one update of ``algo``."""
    update, state, batch, flops = compiled_update(algo, preset, args)
    seconds = median_seconds(update, state, batch, repeats=args.repeats)
    return {"ms": 1e3 * seconds, "flops": flops, "gflops_per_s": flops / seconds / 1e9}


def interleaved_fraction(update, state, batch, flops: float, rows: int, hidden: int, rounds: int, reps: int = 5):
    """Per-round ratio of the update's GFLOP/s to the reference matmul's, the two timed back to back.

    On a shared machine the clock and the neighbours' load drift over seconds; a ratio of two
    rates measured moments apart is stable where rates measured minutes apart are not. Returns
    ``(median ratio, min ratio, max ratio, median update seconds, median matmul GFLOP/s)``.
    """
    key_a, key_b = jax.random.split(jax.random.PRNGKey(1))
    a = jax.random.normal(key_a, (rows, hidden), jnp.float32)
    b = jax.random.normal(key_b, (hidden, hidden), jnp.float32)
    dot = jax.jit(jnp.dot)
    jax.block_until_ready(update(state, batch))
    ratios, update_s, matmul_rates = [], [], []
    for _ in range(rounds):
        mm = median_seconds(dot, a, b, repeats=4 * reps)
        up = median_seconds(update, state, batch, repeats=reps)
        matmul_rates.append(2.0 * rows * hidden * hidden / mm / 1e9)
        update_s.append(up)
        ratios.append((flops / up / 1e9) / matmul_rates[-1])
    return (
        float(np.median(ratios)),
        float(np.min(ratios)),
        float(np.max(ratios)),
        float(np.median(update_s)),
        float(np.median(matmul_rates)),
    )


def diffusion_step_costs(args: BenchUpdate, rounds: int = 5) -> dict:
    """Median ms of the DIME update at each of ``args.diffusion_steps`` (:func:`variant_costs`), and
    each one's ratio to the fewest steps."""
    variants = {str(n): dict(diffusion_steps=n) for n in args.diffusion_steps}
    ms = variant_costs(args, variants, rounds)["ms"]
    base = ms[str(min(args.diffusion_steps))]
    return {"ms": ms, "ratio_to_fewest": {n: v / base for n, v in ms.items()}}


def run_bench_update(args: BenchUpdate) -> dict:
    """Time ``args.algo`` (and SAC), and the reference matmul, side by side."""
    for text in args.variants:
        unknown = set(parse_variant(text)) - {f.name for f in dataclasses.fields(config_class(args.algo))}
        require(not unknown, f"--variants {text!r}: {args.algo} has no field {', '.join(sorted(unknown))}")
    if args.diffusion_steps:
        require(
            hasattr(config_class(args.algo), "diffusion_steps"),
            f"--diffusion-steps applies to a diffusion policy (dime); got --algo {args.algo}",
        )
        for n in args.diffusion_steps:
            check_diffusion_steps(n)
    machine = machine_info()
    result = {
        "algo": args.algo,
        "preset": args.preset,
        "config": dataclasses.asdict(args),
        "device": machine["device_kind"],
        "machine": machine["arch"],
    }
    # The S²AC update's dominant shape, used as the reference for every algorithm (comparable fractions).
    rows = args.batch * args.particles
    result["matmul_shape"] = [rows, args.hidden, args.hidden]
    update, state, batch, flops = compiled_update(args.algo, args.preset, args)
    rounds = max(3, args.repeats // 5)
    median, low, high, seconds, matmul_gflops = interleaved_fraction(
        update, state, batch, flops, rows, args.hidden, rounds
    )
    result.update(
        median_ms=1e3 * seconds,
        flops=flops,
        gflops_per_s=flops / seconds / 1e9,
        matmul_gflops_per_s=matmul_gflops,
        fraction_of_matmul=median,
        fraction_of_matmul_range=[low, high],
        rounds=rounds,
    )
    if args.compare_step_rules and issubclass(config_class(args.algo), S2ACConfig):
        result["step_rules"] = step_rule_costs(args)
    if args.diffusion_steps:
        result["diffusion_steps"] = diffusion_step_costs(args)
    if args.variants:
        result["variants"] = config_variant_costs(args)
    if args.side_by_side:
        result["side_by_side"] = algo_costs(args, (args.algo, *args.side_by_side))
    if args.compare_sac and args.algo != "sac":
        sac = time_update("sac", "corrected", args)
        result.update(sac_median_ms=sac["ms"], sac_flops=sac["flops"], ratio_to_sac=result["median_ms"] / sac["ms"])
    return result


@dataclass(frozen=True)
class BenchAct:
    """Acting throughput: env steps/s of policy + env.step for several algorithms, side by side."""

    env: str = "Hopper-v5"
    """Gymnasium env id."""
    algos: tuple[str, ...] = ("sac", "s2ac", "s2ac-amortized")
    """Algorithms to compare (untrained networks of the ``corrected`` preset: the cost does not depend on training)."""
    steps: int = 2000
    """Env steps timed per algorithm (after a warm-up)."""
    json: bool = False
    """Print one JSON line."""


def run_bench_act(args: BenchAct) -> dict:
    """Env steps/s and ms per action of each algorithm's ``act(mode="random")`` plus ``env.step``."""
    from s2ac.envs import make_env

    env = make_env(args.env)
    spec = EnvSpec.from_env(env)
    result: dict = {"env": args.env, "steps": args.steps, "device": jax.devices()[0].device_kind, "algos": {}}
    for algo in args.algos:
        agent = make_agent(make_agent_config(algo, "corrected", args.env), spec)
        state = agent.init(jax.random.PRNGKey(0))
        policy = jax.jit(
            lambda st, obs, i, agent=agent: agent.act(
                st, obs, jax.random.fold_in(jax.random.PRNGKey(1), i), mode="random"
            )
        )
        obs, _ = env.reset(seed=0)
        jax.block_until_ready(policy(state, jnp.asarray(obs[None], jnp.float32), 0))
        act_time = 0.0
        start = time.perf_counter()
        for i in range(args.steps):
            t0 = time.perf_counter()
            action = np.asarray(policy(state, jnp.asarray(obs[None], jnp.float32), i)[0])
            act_time += time.perf_counter() - t0
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                obs, _ = env.reset(seed=i)
        total = time.perf_counter() - start
        result["algos"][algo] = {"env_steps_per_s": args.steps / total, "ms_per_action": 1e3 * act_time / args.steps}
    base = result["algos"].get("sac")
    if base:
        for stats in result["algos"].values():
            stats["throughput_vs_sac"] = stats["env_steps_per_s"] / base["env_steps_per_s"]
    return result
