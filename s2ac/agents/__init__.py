"""The algorithm registry: the one place that names the algorithms.

Each algorithm is one :class:`AlgoSpec` entry in :data:`REGISTRY`: its parts (critic, actor,
temperature; :mod:`s2ac.parts`), the config fields it pins, and a module under ``s2ac/agents/``
holding its config class, its agent class and a ``preset_fields(preset, env_id) -> dict`` hook
(an entry may reuse another's module: ``crossq``, ``s2ac-crossq``). Everything else that lists
algorithms (the CLI's ``--algo`` choices, the class API's classes, the benchmark's choices, sweeps)
is derived from the registry.

Modules are imported on first use, so using one algorithm never imports another's dependencies
(SAC-NF's distrax, for one). An algorithm whose module needs an optional extra names it in
:attr:`AlgoSpec.extra`; loading it without the extra installed raises
:class:`s2ac.extras.MissingExtraError` with the ``pip install`` line.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType

import jax
import numpy as np

from s2ac import schedules
from s2ac.agents.common import Agent
from s2ac.config import AgentConfig, check_preset, critic_preset_fields, shared_preset_fields
from s2ac.extras import MissingExtraError, require_extra
from s2ac.parts.actors import ACTORS
from s2ac.parts.critics import check_critic
from s2ac.types import Batch, EnvSpec


@dataclass(frozen=True)
class AlgoSpec:
    """One registered algorithm."""

    name: str
    """The ``--algo`` name."""
    module: str
    """Module holding the config class, the agent class and ``preset_fields``."""
    config_name: str
    """Name of the config dataclass in ``module``."""
    agent_name: str
    """Name of the agent class in ``module``."""
    api_name: str
    """Name of the class-API class (``s2ac.S2AC`` ...)."""
    summary: str
    """One line for ``--help`` and the class API's docstring."""
    actor: str
    """The actor part (:data:`s2ac.parts.actors.ACTORS`): ``gaussian``, ``flow``, ``svgd`` or ``amortized-svgd``."""
    temperature: str
    """The temperature part: ``tunable`` (fixed or tuned, by ``auto_alpha``) or ``fixed`` (no density
    to tune against)."""
    fixed_fields: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    """Config fields the name pins under every preset (S²AC(phi) is S²AC with ``init="fixed"``)."""
    extra: str | None = None
    """The ``pyproject.toml`` extra that installs what ``module`` imports beyond the core dependencies."""
    extra_modules: tuple[str, ...] = ()
    """Top-level modules of that extra which ``module`` imports (checked before importing it)."""
    follower: str | None = None
    """A second actor part trained after the update on the actor's draws (``amortizer``), or None."""
    defaults: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    """Config fields the entry sets under every preset over its module's ``preset_fields``, which a
    user may still change (``s2ac-crossq``: CrossQ's Adam beta1 and policy delay). Unlike
    :attr:`fixed_fields` they do not identify the entry."""

    def __post_init__(self) -> None:
        if self.actor not in ACTORS:
            raise ValueError(f"algorithm {self.name!r}: unknown actor {self.actor!r} (expected one of {ACTORS})")
        if self.temperature not in TEMPERATURES:
            raise ValueError(f"algorithm {self.name!r}: unknown temperature {self.temperature!r} ({TEMPERATURES})")
        check_critic(self.critic)

    @property
    def critic(self) -> str:
        """The critic part under every preset (``twin`` unless the entry pins ``critic``;
        ``--agent.critic`` changes it)."""
        return str(self.fixed_fields.get("critic", "twin"))

    @property
    def parts(self) -> tuple[str, str, str]:
        """``(critic, actor, temperature)``: what the composed update is made of."""
        return self.critic, self.actor, self.temperature

    def check_extra(self) -> None:
        """Raise :class:`s2ac.extras.MissingExtraError` if a module of :attr:`extra` is not installed."""
        for name in self.extra_modules:
            require_extra(name, self.extra, f"algorithm {self.name!r}")

    def load(self) -> ModuleType:
        self.check_extra()
        return importlib.import_module(self.module)

    @property
    def config_class(self) -> type[AgentConfig]:
        return getattr(self.load(), self.config_name)

    @property
    def agent_class(self) -> type:
        return getattr(self.load(), self.agent_name)


TEMPERATURES: tuple[str, ...] = ("tunable", "fixed")
"""Temperature parts of the registry: fixed or tuned by ``auto_alpha``, or fixed only."""


def _spec(
    name,
    module,
    config,
    agent,
    api,
    summary,
    *,
    actor,
    temperature="tunable",
    follower=None,
    extra=None,
    extra_modules=(),
    defaults=None,
    **fixed,
) -> AlgoSpec:
    return AlgoSpec(
        name,
        f"s2ac.agents.{module}",
        config,
        agent,
        api,
        summary,
        actor,
        temperature,
        MappingProxyType(fixed),
        extra,
        extra_modules,
        follower,
        MappingProxyType(dict(defaults or {})),
    )


REGISTRY: Mapping[str, AlgoSpec] = MappingProxyType(
    {
        s.name: s
        for s in (
            _spec(
                "s2ac",
                "s2ac",
                "S2ACConfig",
                "S2ACAgent",
                "S2AC",
                "S²AC(phi,theta): SVGD policy from a learned Gaussian q0",
                actor="svgd",
                init="learned",
            ),
            _spec(
                "s2ac-phi",
                "s2ac",
                "S2ACConfig",
                "S2ACAgent",
                "S2ACPhi",
                "S²AC(phi): SVGD policy from a fixed Gaussian q0",
                actor="svgd",
                init="fixed",
            ),
            _spec(
                "s2ac-amortized",
                "amortized",
                "AmortizedS2ACConfig",
                "AmortizedS2ACAgent",
                "AmortizedS2AC",
                "S²AC(phi,theta) acting through an amortized sampler g(s, xi) trained on its particles",
                actor="svgd",
                follower="amortizer",
                init="learned",
            ),
            _spec(
                "sac",
                "sac",
                "SACConfig",
                "SACAgent",
                "SAC",
                "Soft Actor-Critic with a tanh-Gaussian actor (Haarnoja et al. 2018)",
                actor="gaussian",
            ),
            _spec(
                "sql",
                "sql",
                "SQLConfig",
                "SQLAgent",
                "SQL",
                "Soft Q-learning with an amortized SVGD sampler (Haarnoja et al. 2017)",
                actor="amortized-svgd",
                temperature="fixed",
            ),
            _spec(
                "crossq",
                "crossq",
                "SACConfig",
                "SACAgent",
                "CrossQ",
                "CrossQ: SAC's actor on batch-renormalised critics without a target network (Bhatt et al. 2024)",
                actor="gaussian",
                critic="crossq",
                actor_renorm=True,
            ),
            _spec(
                "s2ac-crossq",
                "s2ac",
                "S2ACConfig",
                "S2ACAgent",
                "S2ACCrossQ",
                "S²AC(phi,theta) on CrossQ's critic: batch renorm, joint pass, no target network",
                actor="svgd",
                init="learned",
                critic="crossq",
                defaults=dict(adam_beta1=0.5, policy_delay=3),
            ),
            _spec(
                "s2ac-dist",
                "s2ac",
                "S2ACConfig",
                "S2ACAgent",
                "S2ACDist",
                "S²AC(phi,theta) on the distributional critic: categorical head, batch renorm, no target network",
                actor="svgd",
                init="learned",
                critic="distributional",
            ),
            _spec(
                "dime",
                "dime",
                "DIMEConfig",
                "DIMEAgent",
                "DIME",
                "DIME: diffusion policy with an entropy lower bound on a distributional critic (Celik et al. 2025)",
                actor="diffusion",
                critic="distributional",
            ),
            _spec(
                "sac-nf",
                "sac_nf",
                "SACNFConfig",
                "SACNFAgent",
                "SACNF",
                "SAC with a normalizing-flow policy (Mazoure et al. 2020)",
                actor="flow",
                extra="nf",
                extra_modules=("distrax",),
            ),
        )
    }
)
ALGOS: tuple[str, ...] = tuple(REGISTRY)
"""Every registered algorithm name, in registry order."""


def algo_spec(name: str) -> AlgoSpec:
    """The registry entry of ``name``; ``ValueError`` with the closest names if it is unknown."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, ALGOS, n=2)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown algo {name!r}{hint} (expected one of {', '.join(ALGOS)})")
    return REGISTRY[name]


def config_class(algo: str) -> type[AgentConfig]:
    """The config dataclass of ``algo``."""
    return algo_spec(algo).config_class


def make_agent_config(algo: str, preset: str, env_id: str) -> AgentConfig:
    """The agent config of ``algo`` under ``preset`` for ``env_id`` (pure; nothing is mutated).

    Fields are layered: the presets' shared part (:func:`s2ac.config.shared_preset_fields`), the
    fields the name pins, the algorithm module's ``preset_fields`` hook, then the entry's
    :attr:`AlgoSpec.defaults`; under all of them, the
    fields the critic part brings (:func:`s2ac.config.critic_preset_fields`: a distributional critic's
    support, the ``crossq`` critic's quick renorm warm-up) where none of those sets them.
    """
    spec = algo_spec(algo)
    check_preset(preset)
    fields = shared_preset_fields(preset, env_id)
    fields.update(spec.fixed_fields)
    fields.update(spec.load().preset_fields(preset, env_id))
    fields.update(spec.defaults)
    fields = {**critic_preset_fields(fields.get("critic", "twin"), preset, env_id), **fields}
    config = spec.config_class(**fields)
    config.validate()
    return config


def algo_train_fields(algo: str, preset: str, env_id: str) -> dict:
    """Schedule fields the algorithm's module sets under ``preset`` (its optional
    ``train_preset_fields`` hook; CrossQ's ``paper`` preset starts learning at 5000 steps)."""
    hook = getattr(algo_spec(algo).load(), "train_preset_fields", None)
    return hook(preset, env_id) if hook is not None else {}


def _spec_of_config(config: AgentConfig) -> AlgoSpec:
    # The most derived registered config type wins (AmortizedS2ACConfig subclasses S2ACConfig).
    for cls in type(config).__mro__:
        for spec in REGISTRY.values():
            if (cls.__module__, cls.__name__) == (spec.module, spec.config_name):
                return spec
    raise ValueError(f"no registered agent for config type {type(config).__name__}")


AGENT_CACHE_SIZE = 32
"""How many agents :func:`make_agent` keeps (least recently used first out)."""

_AGENTS: OrderedDict[Hashable, Agent] = OrderedDict()


def _exact(value: object) -> Hashable:
    """A hashable view of a config or spec value that keeps its type (``1``, ``1.0`` and ``True`` are
    equal in Python but may compile differently), sequences and arrays element by element."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(_exact(v) for v in value))
    if isinstance(value, np.generic):
        return (type(value).__name__, value.item())
    hash(value)  # TypeError for anything else unhashable: the caller builds an uncached agent
    return (type(value).__name__, value)


def agent_key(config: AgentConfig, spec: EnvSpec) -> Hashable | None:
    """The key under which :func:`make_agent` shares an agent: the config's type and every field, the
    spec's sizes and bounds (:class:`EnvSpec` may hold arrays), and whether 64-bit floats are on
    (arrays built at construction take their dtype from it). None if a config value is unhashable."""
    try:
        fields = tuple((f.name, _exact(getattr(config, f.name))) for f in dataclasses.fields(config))
        # The agent reads the bounds as float32 arrays: equal values make equal agents.
        bounds = tuple(tuple(map(float, np.ravel(b))) for b in (spec.action_low, spec.action_high))
        sizes = (int(spec.obs_dim), int(spec.act_dim))
        return (type(config), fields, sizes, bounds, str(jax.dtypes.canonicalize_dtype(np.float64)))
    except TypeError:
        return None


def make_agent(config: AgentConfig, spec: EnvSpec) -> Agent:
    """The agent that ``config``'s type names, shared by every call with an equal config and spec.

    An agent is pure (its state is the pytree that ``init`` returns) and its jitted ``update`` and
    ``act`` are per instance, so sharing it means each program is traced and compiled once per
    process and (config, spec), however many loops, models or benchmarks build it. The last
    :data:`AGENT_CACHE_SIZE` agents are kept. Build ``agent_class(config, spec)`` for a fresh one.
    """
    config.validate()
    key = agent_key(config, spec)
    agent = None if key is None else _AGENTS.pop(key, None)
    if agent is None:
        with schedules.building(config):  # the optimisers follow config.lr_schedule
            agent = _spec_of_config(config).agent_class(config, spec)
    if key is None:
        return agent
    _AGENTS[key] = agent
    while len(_AGENTS) > AGENT_CACHE_SIZE:
        _AGENTS.popitem(last=False)
    return agent


def _runs_config_class(candidate: AlgoSpec, cls: type) -> bool:
    try:
        return candidate.config_class is cls
    except MissingExtraError:  # its module cannot be imported here, so it did not make this config
        return False


def algo_of_config(config: AgentConfig) -> str:
    """A registered name whose agent runs ``config`` (S²AC(phi) and S²AC(phi,theta) share a config
    class; ``init`` tells them apart)."""
    spec = _spec_of_config(config)
    # The most specific match wins (S²AC on CrossQ's critic pins init and critic, S²AC only init).
    candidates = sorted(REGISTRY.values(), key=lambda c: -len(c.fixed_fields))
    for candidate in candidates:
        if _runs_config_class(candidate, type(config)) and all(
            getattr(config, k, None) == v for k, v in candidate.fixed_fields.items()
        ):
            return candidate.name
    return spec.name


__all__ = [
    "ALGOS",
    "REGISTRY",
    "Agent",
    "AGENT_CACHE_SIZE",
    "AlgoSpec",
    "TEMPERATURES",
    "Batch",
    "EnvSpec",
    "algo_of_config",
    "agent_key",
    "algo_spec",
    "algo_train_fields",
    "config_class",
    "make_agent",
    "make_agent_config",
]
