"""The class API's classes are written out (IDEs and type checkers see them), one per registered
algorithm, and the cached names the command line answers from agree with the registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

import s2ac
from s2ac import api, names
from s2ac.agents import REGISTRY
from s2ac.config import PRESETS, TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_every_registered_algorithm_has_a_class_written_out():
    written = {cls.algo: cls for cls in api.WRITTEN_OUT}
    for name, spec in REGISTRY.items():
        assert name in written, (
            f"registered algorithm {name!r} has no class written out in s2ac/api.py: add "
            f"`class {spec.api_name}(Algorithm): algo = {name!r}` (with its docstring) to WRITTEN_OUT and __all__"
        )
        cls = written[name]
        assert cls.__name__ == spec.api_name and cls.__module__ == "s2ac.api"
        assert getattr(s2ac, spec.api_name) is cls is api.ALGORITHMS[name]
        assert cls.__doc__.strip().rstrip(".") == spec.summary
        assert spec.api_name in api.__all__ and spec.api_name in s2ac.__all__
    assert set(written) <= set(REGISTRY), f"classes of unregistered algorithms: {set(written) - set(REGISTRY)}"


def test_the_cached_names_match_the_registry():
    expected = {name: spec.api_name for name, spec in REGISTRY.items()}
    missing = {k: v for k, v in expected.items() if names.ALGO_CLASSES.get(k) != v}
    assert not missing, f"add to s2ac.names.ALGO_CLASSES: {missing}"
    assert names.ALGO_CLASSES == expected and names.ALGOS == tuple(REGISTRY)
    assert names.PRESETS == PRESETS and names.DEFAULT_ENV == TrainConfig.env_id


def test_the_package_ships_py_typed():
    assert (ROOT / "s2ac" / "py.typed").is_file()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["s2ac"]


def test_help_and_argument_errors_import_neither_jax_nor_the_agents():
    code = (
        "import sys, io, contextlib; from s2ac.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "    codes = [main(['--help']), main(['nope'])]\n"
        "    try: main(['train', '--algo', 'sacc'])\n"
        "    except SystemExit as e: codes.append(e.code)\n"
        "print(codes, sorted(m for m in ('jax', 'flax', 'tyro', 's2ac.agents', 's2ac.api') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[0, 2, 2] []", out.stdout + out.stderr
