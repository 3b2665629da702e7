"""Test-session settings: a persistent XLA compilation cache shared by every test and subprocess.

Many tests build agents of the same configuration, and each new agent's jitted update is a new
function to JAX, so without a cache the same program is compiled again and again (an S²AC update
takes tens of seconds to compile on 2 cores). JAX's persistent cache is keyed on the compiled
program, the JAX version and the flags, so a hit returns exactly what a compile would. Set through
environment variables so Ray workers and CLI subprocesses share it too. ``S2AC_TEST_JAX_CACHE``
overrides the folder; ``S2AC_TEST_JAX_CACHE=off`` disables it.
"""

import os
from pathlib import Path

_cache = os.environ.get("S2AC_TEST_JAX_CACHE", str(Path(__file__).resolve().parent.parent / ".cache" / "jax-tests"))
if _cache != "off":
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _cache)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
