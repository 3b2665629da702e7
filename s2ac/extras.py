"""Optional dependencies (``pyproject.toml``'s extras): importing them with a clear error when absent.

``s2ac[sweep]`` brings Ray Tune (for :func:`s2ac.sweep.run_sweep` outside lockstep) and ``s2ac[nf]``
brings distrax (for SAC-NF's flows); ``import s2ac`` and every other algorithm work without either.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ImportError, ValueError):
    """An optional dependency is not installed; the message names the ``pip install`` that adds it.

    Also a ``ValueError``, so the command line reports it as one ``error:`` line (as it does bad
    arguments) instead of a traceback.
    """


def missing_extra_message(what: str, package: str, extra: str) -> str:
    """``"{what} needs {package}, which is not installed: pip install 's2ac[{extra}]'"``."""
    return f"{what} needs {package}, which is not installed: pip install 's2ac[{extra}]'"


def require_extra(module: str, extra: str, what: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` saying that ``what`` needs ``s2ac[extra]``.

    Only a module that cannot be found counts as missing (``ModuleNotFoundError``, which is also what
    a ``None`` entry in ``sys.modules`` raises); any other failure inside an installed package is
    re-raised as it is.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        name = package or module.split(".")[0]
        if err.name and err.name.split(".")[0] != module.split(".")[0]:
            name = f"{name} (its module {err.name!r} is missing)"
        raise MissingExtraError(missing_extra_message(what, name, extra), name=err.name) from err
