"""The flags of ``s2ac train``, derived from the config classes.

Every setting has exactly one flag:

* ``--algo``, ``--env``, ``--preset``, ``--total-steps``, ``--seed`` and the run-folder switches are
  top-level; the schedule fields they set (``env_id``, ``total_steps``, ``seed``) have no
  ``--train.*`` twin, and the fields an algorithm name pins (``s2ac-phi`` is S²AC with
  ``init="fixed"``) have no ``--agent.*`` twin;
* every other agent field is ``--agent.FIELD`` and every other schedule field ``--train.FIELD``.

``--help`` lists the usual knobs first and the config classes' ``advanced_fields``
(:func:`s2ac.config.advanced_fields`) last, under "advanced options", still spelled
``--agent.FIELD``, and ``--help`` leaves that group out (``--help-all`` prints it). Help texts are
the fields' docstrings.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import docstring_parser
import tyro

from s2ac.agents import ALGOS, algo_spec
from s2ac.config import PRESETS, AgentConfig, TrainConfig, advanced_fields
from s2ac.names import DEFAULT_ALGO, DEFAULT_ENV, DEFAULT_PRESET  # noqa: E402  (the first parsing stage's)

TOP_LEVEL_TRAIN_FIELDS = {"env_id": "env", "total_steps": "total_steps", "seed": "seed"}
"""Schedule fields set by a top-level flag (field -> flag) instead of ``--train.FIELD``."""


def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of ``cls`` and its bases (a subclass's wins), whitespace collapsed."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__ == "builtins":
            continue
        for param in docstring_parser.parse_from_object(klass).params:
            if param.description:
                docs[param.arg_name] = " ".join(param.description.split())
    return docs


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc else ""


def _view(name: str, config: Any, names: list[str], flag_prefix: str, docs: dict[str, str]) -> Any:
    """An instance of a new frozen dataclass holding ``config``'s fields ``names``, each spelled
    ``--{flag_prefix}.FIELD`` whatever group it is shown in."""
    hints = typing.get_type_hints(type(config))

    def flag(n: str) -> Any:
        return tyro.conf.arg(name=f"{flag_prefix}.{n.replace('_', '-')}", prefix_name=False, help=docs.get(n))

    fields = [(n, Annotated[hints[n], flag(n)], dataclasses.field(default=getattr(config, n))) for n in names]
    return dataclasses.make_dataclass(name, fields, frozen=True)()


def _values(view: Any) -> dict[str, Any]:
    return {f.name: getattr(view, f.name) for f in dataclasses.fields(view)}


ADVANCED_HELP = "The advanced options (implementation switches, and method variants that --preset sets): --help-all."
"""What ``s2ac train --help`` says in place of the advanced group."""


def train_command(
    algo: str, preset: str, env: str, agent: AgentConfig, train: TrainConfig, hide_advanced: bool = False
) -> Any:
    """The default ``s2ac train`` command for tyro: an instance of a frozen dataclass whose fields are
    the top-level flags and the ``agent`` / ``train`` / ``advanced`` groups, with ``agent`` and
    ``train`` (the preset's configs) as defaults. ``hide_advanced`` leaves the advanced group out of
    the command (for ``--help``; its fields then keep their defaults)."""
    agent_docs, train_docs = field_docs(type(agent)), field_docs(TrainConfig)
    pinned = set(algo_spec(algo).fixed_fields)
    advanced = advanced_fields(type(agent))
    agent_names = [f.name for f in dataclasses.fields(agent) if f.name not in pinned]
    schedule = [f.name for f in dataclasses.fields(train) if f.name not in TOP_LEVEL_TRAIN_FIELDS]
    groups = {
        "agent": (
            _view("AgentOptions", agent, [n for n in agent_names if n not in advanced], "agent", agent_docs),
            _first_line(type(agent).__doc__),
        ),
        "train": (_view("TrainOptions", train, schedule, "train", train_docs), _first_line(TrainConfig.__doc__)),
        "advanced": (
            _view("AdvancedOptions", agent, [n for n in agent_names if n in advanced], "agent", agent_docs),
            "Implementation switches, and method variants that --preset sets.",
        ),
    }
    algos = "; ".join(f"{name}: {algo_spec(name).summary}" for name in ALGOS)
    top = [
        ("algo", Literal[ALGOS], algo, f"Algorithm. {algos}."),
        ("env", str, env, train_docs["env_id"]),
        (
            "preset",
            Literal[PRESETS],
            preset,
            "paper: the authors' code; corrected: the poster's method as written; quick: corrected with small "
            "networks and a short schedule. The preset's values are the defaults shown below.",
        ),
        ("total_steps", int, train.total_steps, train_docs["total_steps"]),
        ("seed", int, train.seed, train_docs["seed"]),
        ("out", Optional[Path], None, "Run folder; default: runs/ALGO-ENV-seedSEED."),
        ("resume", bool, False, "Continue the run in --out from its latest valid checkpoint."),
        (
            "hyperparams",
            Optional[Path],
            None,
            "RL Zoo-style YAML: the block of --env sets the defaults (docs/guide/rl-zoo.md).",
        ),
        ("progress", bool, True, "Show a progress bar."),
        ("plots", bool, True, "Write the run's figures when training ends."),
    ]
    fields = [(n, Annotated[t, tyro.conf.arg(help=h)], dataclasses.field(default=d)) for n, t, d, h in top]
    fields += [
        (n, Annotated[type(view), tyro.conf.arg(help=h)], dataclasses.field(default=view))
        for n, (view, h) in groups.items()
    ]
    if hide_advanced:
        name, kind, default = fields[-1]
        fields[-1] = (name, tyro.conf.Suppress[kind], default)
    return dataclasses.make_dataclass("TrainCommand", fields, frozen=True)()


def train_configs(args: Any, agent: AgentConfig, train: TrainConfig) -> tuple[AgentConfig, TrainConfig]:
    """The agent and training configs of a parsed :func:`train_command`: ``agent`` and ``train`` with
    every flag's value written in."""
    agent = dataclasses.replace(agent, **_values(args.agent), **_values(args.advanced))
    top = {field: getattr(args, flag) for field, flag in TOP_LEVEL_TRAIN_FIELDS.items()}
    return agent, dataclasses.replace(train, **_values(args.train), **top)


__all__ = [
    "DEFAULT_ALGO",
    "DEFAULT_ENV",
    "DEFAULT_PRESET",
    "TOP_LEVEL_TRAIN_FIELDS",
    "ADVANCED_HELP",
    "field_docs",
    "train_command",
    "train_configs",
]
