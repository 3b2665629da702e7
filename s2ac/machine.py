"""What ran a measurement: the one machine-info helper of the experiments and the benchmark, and the
dense matmul rate they use as a same-process speed reference.

Absolute times on shared machines drift with the clock and the neighbours' load, so every report
records the machine next to its numbers, and rates are compared with a matmul timed in the same process.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def median_seconds(fn, *args, repeats: int) -> float:
    """Median wall seconds of ``fn(*args)`` over ``repeats`` calls, after one untimed call (compile, warm-up)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def matmul_rate(rows: int, hidden: int, repeats: int = 50, trials: int = 3) -> float:
    """GFLOP/s of a jitted ``(rows x hidden) @ (hidden x hidden)`` float32 matmul (``2 rows hidden^2`` FLOPs).

    The best of ``trials`` medians: the first trial on an idle core often runs before the CPU
    has ramped up its clock, and a low reference would flatter the update's fraction.
    """
    key_a, key_b = jax.random.split(jax.random.PRNGKey(1))
    a = jax.random.normal(key_a, (rows, hidden), jnp.float32)
    b = jax.random.normal(key_b, (hidden, hidden), jnp.float32)
    seconds = min(median_seconds(jax.jit(jnp.dot), a, b, repeats=repeats) for _ in range(trials))
    return 2.0 * rows * hidden * hidden / seconds / 1e9


def cpu_model() -> str:
    """The ``model name`` of ``/proc/cpuinfo`` ('' where there is none, e.g. macOS)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def load_average() -> float | None:
    """The 1-minute load average of the machine (other processes' load distorts the timings)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # AttributeError: no getloadavg on this OS
        return None


def machine_info(
    *, terse_platform: bool = True, matmul: tuple[int, int] | None = None, matmul_repeats: int = 50
) -> dict[str, Any]:
    """This process's machine: CPU, core count, OS, JAX version, backend and devices, load average.

    Keys: ``processor`` (``platform.processor()``, else the cpuinfo model, else the architecture),
    ``cpu_model`` (the cpuinfo model first), ``arch``, ``cpu_count``, ``platform`` (terse unless
    ``terse_platform=False``), ``jax``, ``backend``, ``device_kind`` and ``device_count`` (first device),
    ``jax_devices`` (``platform:kind`` of each), ``load_average_1min``; with ``matmul=(rows, hidden)``
    also ``matmul_gflops_per_s`` (:func:`matmul_rate`). Each report keeps the keys it has always written.
    """
    devices = jax.devices()
    model = cpu_model()
    info: dict[str, Any] = {
        "processor": platform.processor() or model or platform.machine(),
        "cpu_model": model or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(terse=terse_platform),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "device_count": jax.device_count(),
        "jax_devices": [f"{d.platform}:{d.device_kind}" for d in devices],
        "load_average_1min": load_average(),
    }
    if matmul is not None:
        info["matmul_gflops_per_s"] = matmul_rate(*matmul, repeats=matmul_repeats)
    return info


def pick(info: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The entries ``keys`` of :func:`machine_info`, in that order (what one report writes)."""
    return {k: info[k] for k in keys}


__all__ = ["cpu_model", "load_average", "machine_info", "matmul_rate", "median_seconds", "pick"]
