"""Typed, frozen configuration for agents and training, and the named presets.

Every default names its source. Presets (REFERENCE.md §5):

* ``paper``: the authors' published behaviour (temperature 1 inside the sampler,
  ``grad Q`` at the unsquashed ``u``, normaliser ``m - 1``, untruncated ``q0`` density)
  with their hyper-parameters.
* ``corrected``: the poster's method as written (alpha-scaled drift, score of the
  ``u``-space target through tanh, normaliser ``m``, truncated-normal density), same
  hyper-parameters.
* ``quick``: ``corrected`` with small networks and a short schedule, for demos and CI.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

from s2ac.nets import ACTIVATIONS, Activation
from s2ac.stein import BANDWIDTH_RULES, LOG_DENSITY_MODES, NORMALIZERS, STEP_CONTROLS

Algo = Literal["s2ac", "s2ac-phi", "s2ac-amortized", "sac", "sql", "sac-nf"]
ALGOS: tuple[str, ...] = ("s2ac", "s2ac-phi", "s2ac-amortized", "sac", "sql", "sac-nf")
Preset = Literal["paper", "corrected", "quick"]
PRESETS: tuple[str, ...] = ("paper", "corrected", "quick")


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _finite_positive(name: str, value: float) -> None:
    _require(
        isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
        f"{name} must be finite and > 0; got {value!r}",
    )


def _positive_int(name: str, value: int) -> None:
    _require(
        isinstance(value, int) and not isinstance(value, bool) and value > 0,
        f"{name} must be a positive int; got {value!r}",
    )


@dataclass(frozen=True)
class AgentConfig:
    """Settings shared by every actor-critic agent."""

    gamma: float = 0.99
    """Discount factor (authors: 0.99)."""
    tau: float = 0.005
    """Polyak rate of the target critics (authors: 0.995 averaging, i.e. tau = 0.005)."""
    batch_size: int = 100
    """Minibatch size (authors: 100)."""
    critic_lr: float = 1e-3
    """Adam learning rate of the critics (authors: 1e-3)."""
    actor_lr: float = 1e-3
    """Adam learning rate of the actor / initial-distribution network (authors: 1e-3)."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of each twin critic (authors: 2 x 256)."""
    actor_hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the actor / q0 network (authors: 3 x 256 for q0)."""
    activation: Activation = "elu"
    """Hidden activation (authors: ELU, so that grad_a Q is smooth)."""
    alpha: float = 0.2
    """Entropy temperature in the critic target and actor loss (authors: 0.2, fixed), in units of the
    SCALED reward ``reward_scale * r``: the policy targets exp(Q/alpha) with Q in those units, so the
    temperature in raw reward units is ``alpha / reward_scale``."""
    reward_scale: float = 1.0
    """Rewards enter the critic target as ``reward_scale * r`` (Soft Q-Learning's multigoal example:
    0.1 at alpha = 1, i.e. a raw-unit temperature of 10). Returns are always logged in raw units."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first out-of-range field."""
        _require(0.0 <= self.gamma < 1.0 and math.isfinite(self.gamma), f"gamma must be in [0, 1); got {self.gamma!r}")
        _require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1]; got {self.tau!r}")
        _positive_int("batch_size", self.batch_size)
        _finite_positive("critic_lr", self.critic_lr)
        _finite_positive("actor_lr", self.actor_lr)
        _finite_positive("alpha", self.alpha)
        _finite_positive("reward_scale", self.reward_scale)
        for name in ("critic_hidden", "actor_hidden"):
            widths = getattr(self, name)
            _require(
                len(widths) > 0 and all(isinstance(w, int) and w > 0 for w in widths),
                f"{name} must be positive ints; got {widths!r}",
            )
        _require(
            self.activation in ACTIVATIONS,
            f"unknown activation {self.activation!r}; expected one of {tuple(ACTIVATIONS)}",
        )


@dataclass(frozen=True)
class S2ACConfig(AgentConfig):
    """Stein Soft Actor-Critic: S²AC(phi, theta) (``init="learned"``) or S²AC(phi) (``init="fixed"``)."""

    init: Literal["learned", "fixed"] = "learned"
    """q0: learned state-conditioned Gaussian (S²AC(phi,theta)) or fixed N(0, init_std^2 I) (S²AC(phi))."""
    init_std: float = 0.5
    """Standard deviation of the fixed q0 of S²AC(phi) (authors: 0.5)."""
    init_std_min: float = 0.1
    """Lower clip of the learned q0's standard deviation (authors: 0.1)."""
    init_std_max: float = 1.0
    """Upper clip of the learned q0's standard deviation (authors: 1.0)."""
    truncation: float = 3.0
    """Learned q0 draws are truncated to mean +- truncation * std (poster: 3)."""
    init_density: Literal["truncated", "untruncated"] = "truncated"
    """log q0 of the truncated draws: the truncated normal's (correct) or the untruncated one (authors' code)."""
    n_particles: int = 10
    """Particles per state m (authors: 10)."""
    svgd_steps: int = 3
    """SVGD steps L (authors: 3 for MuJoCo, 10 for multigoal)."""
    svgd_step_size: float = 0.1
    """SVGD step size epsilon (authors: 0.1); under the adaptive rule, the largest step allowed."""
    svgd_step_control: Literal["fixed", "adaptive"] = "adaptive"
    """``fixed``: every step is ``svgd_step_size`` (authors). ``adaptive``: each state's step is
    ``min(svgd_step_size, svgd_target_margin / max_i ||d phi_i/d a_i||_2)`` with the full Jacobian, so
    every step is an invertible map and the closed-form density holds (``s2ac.stein.controlled_step``).
    With the fixed step, training margins were 11-27 on multigoal and 1.7-4.8 on Hopper (REFERENCE.md §6)."""
    svgd_target_margin: float = 0.5
    """Bound the adaptive rule keeps every step's margin ``eps ||d phi/d a||_2`` below (must be < 1)."""
    log_margin: bool = True
    """Under the fixed rule, still compute the full margin of the target particles' steps, so every
    logged entropy comes with its validity (costs ``d`` JVPs per step; the adaptive rule always has it)."""
    bandwidth: float | Literal["mean/2", "median"] = "mean/2"
    """Kernel bandwidth: a fixed sigma or a per-state, per-step rule (authors: "mean/2")."""
    log_density: Literal["closed_form", "closed_form_self", "exact", "exact_noself"] = "closed_form"
    """Density accounting through the SVGD steps (poster: closed form)."""
    normalizer: Literal["m", "m-1"] = "m"
    """Closed-form normaliser: m as in the poster, m - 1 in the authors' code."""
    sampler_alpha: float | None = None
    """Temperature inside the sampler (drift and density terms); None uses ``alpha`` (poster). Authors' code: 1."""
    score_space: Literal["squashed", "unsquashed"] = "squashed"
    """SVGD score: of the u-space target exp(Q(s, tanh u)/alpha) * |tanh'(u)| ("squashed", correct),
    or grad Q(s, u) at the raw u ("unsquashed", authors' code)."""
    remat_score: bool = True
    """Recompute the critic's activations in the actor's backward pass through the SVGD steps instead of
    storing them (``jax.checkpoint``): less memory traffic, measured 35 -> 27 ms per update at Hopper sizes."""
    remat_keep_matmuls: bool | None = None
    """With ``remat_score``: keep the outputs of the critic's hidden-width matrix products (contraction
    over a hidden layer) and recompute only the element-wise work and the thin input-layer products.
    Same values, different speed: it stores two (2, B*m, 256) tensors per SVGD step instead of redoing
    their products. Measured at Hopper sizes on 2 CPU cores: L=3 26 -> 22.5 ms, L=5 40.5 -> 43 ms,
    L=10 76 -> 76 ms. None (default): keep them when ``svgd_steps <= 3``."""
    unroll_svgd: bool = False
    """Unroll the SVGD loop in the compiled update (no loop overhead for small L; exact XLA FLOP counts)."""
    test_selection: Literal["max", "softmax"] = "max"
    """Deterministic action: the particle with the highest min-Q, or one drawn with prob. ~ exp(Q/alpha)."""

    @property
    def effective_sampler_alpha(self) -> float:
        """The temperature the sampler actually uses (derived, never written back)."""
        return self.alpha if self.sampler_alpha is None else self.sampler_alpha

    def validate(self) -> None:
        super().validate()
        _positive_int("n_particles", self.n_particles)
        _require(self.n_particles >= 2, f"n_particles must be >= 2 for SVGD; got {self.n_particles}")
        _require(
            isinstance(self.svgd_steps, int) and self.svgd_steps >= 0,
            f"svgd_steps must be an int >= 0; got {self.svgd_steps!r}",
        )
        _finite_positive("svgd_step_size", self.svgd_step_size)
        _require(
            self.remat_keep_matmuls is None or isinstance(self.remat_keep_matmuls, bool),
            f"remat_keep_matmuls must be true, false or None (automatic); got {self.remat_keep_matmuls!r}",
        )
        _finite_positive("init_std", self.init_std)
        _finite_positive("truncation", self.truncation)
        _require(
            0 < self.init_std_min <= self.init_std_max,
            f"need 0 < init_std_min <= init_std_max; got {self.init_std_min}, {self.init_std_max}",
        )
        if isinstance(self.bandwidth, str):
            _require(
                self.bandwidth in BANDWIDTH_RULES,
                f"unknown bandwidth rule {self.bandwidth!r}; expected a float or one of {BANDWIDTH_RULES}",
            )
        else:
            _finite_positive("bandwidth", self.bandwidth)
        _require(self.log_density in LOG_DENSITY_MODES, f"unknown log_density {self.log_density!r}")
        _require(self.normalizer in NORMALIZERS, f"unknown normalizer {self.normalizer!r}")
        _require(
            self.svgd_step_control in STEP_CONTROLS,
            f"unknown svgd_step_control {self.svgd_step_control!r}; expected one of {STEP_CONTROLS}",
        )
        tm = self.svgd_target_margin
        _require(
            isinstance(tm, (int, float)) and math.isfinite(tm) and 0 < tm < 1,
            f"svgd_target_margin must be in (0, 1) (an invertible step needs margin < 1); got {tm!r}",
        )
        if self.sampler_alpha is not None:
            _finite_positive("sampler_alpha", self.sampler_alpha)
        _require(self.init in ("learned", "fixed"), f"unknown init {self.init!r}")
        _require(self.score_space in ("squashed", "unsquashed"), f"unknown score_space {self.score_space!r}")
        _require(self.test_selection in ("max", "softmax"), f"unknown test_selection {self.test_selection!r}")


@dataclass(frozen=True)
class SACConfig(AgentConfig):
    """Soft Actor-Critic with a tanh-Gaussian actor (Haarnoja et al. 2018)."""

    actor_hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the Gaussian actor (SAC paper: 2 x 256)."""
    auto_alpha: bool = False
    """Tune alpha to reach ``target_entropy`` (SAC v2) instead of keeping it fixed."""
    target_entropy: float | None = None
    """Target entropy for automatic alpha; None means -action_dim (SAC v2)."""
    alpha_lr: float = 3e-4
    """Adam learning rate of log alpha (SAC v2: 3e-4)."""
    log_std_min: float = -5.0
    """Lower clip of the actor's log standard deviation."""
    log_std_max: float = 2.0
    """Upper clip of the actor's log standard deviation."""

    def validate(self) -> None:
        super().validate()
        _finite_positive("alpha_lr", self.alpha_lr)
        _require(self.log_std_min < self.log_std_max, "log_std_min must be < log_std_max")
        if self.target_entropy is not None:
            _require(math.isfinite(self.target_entropy), f"target_entropy must be finite; got {self.target_entropy!r}")


@dataclass(frozen=True)
class TrainConfig:
    """The off-policy loop's schedule (SB3 names where they exist)."""

    env_id: str = "s2ac/MultiGoal3-v0"
    """Gymnasium id of a continuous-action env (our multigoal ids start with ``s2ac/``)."""
    total_steps: int = 500_000
    """Environment steps to run (authors: 500k)."""
    seed: int = 0
    """Seed of everything: networks, sampler, replay, env resets."""
    learning_starts: int = 1_000
    """No gradient step before this many env steps (authors: 1000)."""
    random_steps: int = 10_000
    """Uniform random actions for this many first env steps (authors: 10,000)."""
    train_freq: int = 50
    """Run ``gradient_steps`` updates every ``train_freq`` env steps (authors: 50)."""
    gradient_steps: int = 50
    """Updates per training round, in one compiled call (authors: 50)."""
    buffer_size: int = 1_000_000
    """Replay capacity (authors: 1e6)."""
    eval_freq: int = 10_000
    """Evaluate every this many env steps (0 disables)."""
    eval_episodes: int = 10
    """Episodes per evaluation, each for the deterministic and the stochastic policy."""
    checkpoint_freq: int = 10_000
    """Save a checkpoint at the first episode end after every this many steps (0 disables)."""
    log_every: int = 1_000
    """Write training metrics every this many env steps."""

    def validate(self) -> None:
        _require(isinstance(self.env_id, str) and self.env_id != "", "env_id must be a non-empty string")
        for name in ("total_steps", "train_freq", "gradient_steps", "buffer_size", "eval_episodes", "log_every"):
            _positive_int(name, getattr(self, name))
        for name in ("learning_starts", "random_steps", "eval_freq", "checkpoint_freq", "seed"):
            value = getattr(self, name)
            _require(isinstance(value, int) and value >= 0, f"{name} must be an int >= 0; got {value!r}")


def config_class(algo: str) -> type[AgentConfig]:
    """The config dataclass of ``algo`` (baselines' configs live beside their agents)."""
    if algo in ("s2ac", "s2ac-phi"):
        return S2ACConfig
    if algo == "sac":
        return SACConfig
    if algo == "s2ac-amortized":
        from s2ac.agents.amortized import AmortizedS2ACConfig

        return AmortizedS2ACConfig
    if algo == "sql":
        from s2ac.agents.sql import SQLConfig

        return SQLConfig
    if algo == "sac-nf":
        from s2ac.agents.sac_nf import SACNFConfig

        return SACNFConfig
    raise ValueError(f"unknown algo {algo!r}; expected one of {ALGOS}")


# The authors' published behaviour (REFERENCE.md §2, list "official behaviour").
_S2AC_PAPER_FIELDS = dict(
    sampler_alpha=1.0,
    score_space="unsquashed",
    normalizer="m-1",
    init_density="untruncated",
    svgd_step_control="fixed",
)

MULTIGOAL_TEMPERATURE = dict(reward_scale=0.1, alpha=1.0)
"""Soft Q-Learning's multigoal temperature (haarnoja/softqlearning examples/multigoal_sql.py: reward
scale 0.1 at temperature 1, i.e. alpha = 10 in raw reward units), used by the corrected and quick
presets of every algorithm on multigoal. At the authors' alpha = 0.2 in raw units exp(Q/alpha) is
three needles separated by barriers of about e^60 (REFERENCE.md §6); see the README for the
alpha in {0.2, 2, 10} measurement behind the choice. The paper preset keeps the authors' 0.2."""


def _is_multigoal(env_id: str) -> bool:
    return env_id.startswith("s2ac/MultiGoal")


def make_agent_config(algo: str, preset: str, env_id: str) -> AgentConfig:
    """The agent config of ``algo`` under ``preset`` for ``env_id`` (pure; nothing is mutated)."""
    cls = config_class(algo)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {PRESETS}")
    multigoal = _is_multigoal(env_id)
    fields: dict = {}
    if algo in ("s2ac", "s2ac-phi", "s2ac-amortized"):
        fields["init"] = "fixed" if algo == "s2ac-phi" else "learned"
        # Authors: L = 10 for multigoal (S²AC(phi)), 3 for MuJoCo (S²AC(phi,theta)).
        fields["svgd_steps"] = 10 if multigoal else 3
        if preset == "paper":
            fields.update(_S2AC_PAPER_FIELDS)
    elif algo in ("sac", "sac-nf"):
        fields["auto_alpha"] = preset != "paper"
    elif algo == "sql" and preset == "paper":
        from s2ac.agents.sql import SQL_PAPER_FIELDS

        fields.update(SQL_PAPER_FIELDS)
    if multigoal and preset != "paper":
        fields.update(MULTIGOAL_TEMPERATURE)
        if algo in ("sac", "sac-nf"):
            fields["auto_alpha"] = False  # compared at the same temperature as S²AC and SQL
    if preset == "quick":
        # Multigoal is a 2-D task: 2 x 32 networks and batch 50 make S²AC's update (L = 10, second
        # order) 3.6x cheaper than 2 x 64 at batch 100, which is what fits the demo in minutes.
        width = (32, 32) if multigoal else (64, 64)
        fields.update(critic_hidden=width, actor_hidden=width)
        if multigoal:
            fields["batch_size"] = 50
        if algo == "s2ac-amortized":
            fields["amortizer_hidden"] = width
    config = cls(**fields)
    config.validate()
    return config


QUICK_MULTIGOAL_GRADIENT_STEPS = 10
"""Updates per 50 env steps of the quick multigoal schedule (the demo)."""


def make_train_config(preset: str, env_id: str, **overrides) -> TrainConfig:
    """The training schedule for ``preset`` on ``env_id``; ``overrides`` replace fields."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {PRESETS}")
    fields: dict = dict(env_id=env_id)
    if _is_multigoal(env_id):
        fields.update(eval_freq=5_000, checkpoint_freq=5_000)
    if preset == "quick":
        fields.update(
            total_steps=20_000,
            learning_starts=1_000,
            random_steps=2_000,
            eval_freq=5_000,
            checkpoint_freq=5_000,
            log_every=500,
        )
        if _is_multigoal(env_id):
            # The demo's schedule: 10k env steps and 10 updates every 50, which the README measures
            # against the mode-coverage target (every goal of the 3-goal env >= 5% of episodes).
            fields.update(total_steps=10_000, gradient_steps=QUICK_MULTIGOAL_GRADIENT_STEPS)
    fields.update(overrides)
    config = TrainConfig(**fields)
    config.validate()
    return config


def config_to_dict(config) -> dict:
    """JSON-ready dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)


def config_from_dict(cls, data: dict):
    """Inverse of :func:`config_to_dict` (lists become tuples for tuple fields)."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            value = data[f.name]
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


__all__ = [
    "ALGOS",
    "config_class",
    "PRESETS",
    "AgentConfig",
    "S2ACConfig",
    "SACConfig",
    "TrainConfig",
    "make_agent_config",
    "make_train_config",
    "config_to_dict",
    "config_from_dict",
]
