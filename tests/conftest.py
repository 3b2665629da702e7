"""Test-session settings: a persistent XLA compilation cache shared by every test and subprocess.

Many tests build agents of the same configuration, and each new agent's jitted update is a new
function to JAX, so without a cache the same program is compiled again and again (an S²AC update
takes tens of seconds to compile on 2 cores). JAX's persistent cache is keyed on the compiled
program, the JAX version and the flags, so a hit returns exactly what a compile would. Set through
environment variables so Ray workers and CLI subprocesses share it too. ``S2AC_TEST_JAX_CACHE``
overrides the folder; ``S2AC_TEST_JAX_CACHE=off`` disables it.

The cache only helps programs that are equal, so the tests share one tiny configuration
(tests/tiny.py), and :func:`s2ac.agents.make_agent` hands equal configs the same agent, whose jitted
update and act then compile once per process.
"""

import os
from pathlib import Path

# The suite's tiny programs compile far more often than they run, so two XLA CPU settings trade run
# speed for compile speed:
# - LLVM's optimisation passes are most of a compile: at optimisation level 0, tests/test_agents.py
#   took 45 s of CPU time instead of 76 s with no cache;
# - XLA's fusion emitters (the MLIR code generator) cost about 20 ms even for one multiply; with the
#   older emitters, tests/test_maths_references.py and tests/test_agents.py took 54 s of CPU time
#   instead of 105 s with no cache.
# Numbers change within rounding only, and every comparison in the suite is between programs compiled
# with the same flags (CLI subprocesses and Ray workers inherit XLA_FLAGS). S2AC_TEST_XLA_OPT=default
# keeps XLA's own settings.
_FAST_COMPILE_FLAGS = {
    "xla_backend_optimization_level": "0",
    "xla_cpu_use_fusion_emitters": "false",
}
if os.environ.get("S2AC_TEST_XLA_OPT", "0") != "default":
    _flags = os.environ.get("XLA_FLAGS", "")
    for _name, _value in _FAST_COMPILE_FLAGS.items():
        if _name not in _flags:
            _flags = f"{_flags} --{_name}={_value}".strip()
    os.environ["XLA_FLAGS"] = _flags

_cache = os.environ.get("S2AC_TEST_JAX_CACHE", str(Path(__file__).resolve().parent.parent / ".cache" / "jax-tests"))
if _cache != "off":
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _cache)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

# ``S2AC_TEST_COMPILE_LOG=path.json``: write every XLA compile of each test (program name, seconds, and
# whether the persistent cache served it) to ``path.<worker>.json``, to see where the suite's time goes.
_compile_log_path = os.environ.get("S2AC_TEST_COMPILE_LOG")
if _compile_log_path:
    import collections
    import json

    import pytest

    _compiles: dict = collections.defaultdict(list)
    _now = {"test": "<collection>", "hit": False}

    def _on_duration(event, seconds, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            _compiles[_now["test"]].append((kwargs.get("fun_name", "?"), round(seconds, 3), _now["hit"]))
            _now["hit"] = False

    def _on_event(event, **kwargs):
        if event == "/jax/compilation_cache/cache_hits":
            _now["hit"] = True

    def pytest_configure(config):
        from jax import monitoring

        monitoring.register_event_duration_secs_listener(_on_duration)
        monitoring.register_event_listener(_on_event)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        _now["test"] = item.nodeid
        try:
            return (yield)
        finally:
            _now["test"] = "<between tests>"

    def pytest_sessionfinish(session, exitstatus):
        every = [c for calls in _compiles.values() for c in calls]
        misses = [c for c in every if not c[2]]
        total = dict(compiles=len(every), misses=len(misses), compile_s=round(sum(c[1] for c in misses), 1))
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        out = Path(_compile_log_path).with_suffix(f".{worker}.json")
        out.write_text(json.dumps({"total": total, "tests": _compiles}, indent=0))
