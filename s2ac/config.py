"""Typed, frozen configuration shared by every algorithm, the training schedule, and the parts of
the named presets that do not depend on the algorithm.

Each algorithm's own config class and preset fields live beside its agent (``s2ac/agents/*.py``)
and are put together by the registry, :func:`s2ac.agents.make_agent_config`. Presets
(REFERENCE.md §5):

* ``paper``: the authors' published behaviour with their hyper-parameters.
* ``corrected``: the poster's method as written, same hyper-parameters.
* ``quick``: ``corrected`` with small networks and a short schedule, for demos and CI.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

from s2ac.checks import finite_positive, non_negative_int, positive_int, require
from s2ac.distributional import check_support
from s2ac.nets import ACTIVATIONS, Activation
from s2ac.parts.critics import check_critic

PRESETS: tuple[str, ...] = ("paper", "corrected", "quick")
LR_SCHEDULES: tuple[str, ...] = ("constant", "linear")
ADDED_FIELD_DEFAULTS: dict[str, object] = {
    "lr_schedule": "constant",
    "lr_schedule_updates": 0,
    "normalize_obs": False,
    "normalize_reward": False,
    "v_min": -200.0,
    "v_max": 200.0,
    "n_atoms": 101,
}
"""Config fields added after runs were first written, with their defaults: a run whose ``config.json``
lacks one ran with that default (so it still resumes and loads)."""


@dataclass(frozen=True)
class AgentConfig:
    """Settings shared by every actor-critic agent."""

    advanced_fields: ClassVar[tuple[str, ...]] = (
        "reward_scale",
        "lr_schedule",
        "lr_schedule_updates",
        "policy_delay",
        "adam_beta1",
        "renorm_momentum",
        "renorm_epsilon",
        "renorm_r_max",
        "renorm_d_max",
        "renorm_warmup_steps",
        "n_atoms",
    )
    """Fields that are implementation switches or method variants the presets set, rather than the
    usual tuning knobs: ``s2ac train --help`` lists them last, under "advanced options". Each config
    class names its own; :func:`advanced_fields` collects them over the class's bases."""

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
    lr_schedule: str = "constant"
    """Learning-rate schedule of every optimiser: ``constant``, or ``linear`` from the rates above down
    to 0 over ``lr_schedule_updates`` updates (SB3's and RL Zoo's ``lin_3e-4``; s2ac.schedules)."""
    lr_schedule_updates: int = 0
    """Updates over which ``linear`` decays; 0: the updates of the run's schedule (set when it starts)."""
    reward_scale: float = 1.0
    """Rewards enter the critic target as ``reward_scale * r`` (Soft Q-Learning's multigoal example:
    0.1 at alpha = 1, i.e. a raw-unit temperature of 10). Returns are always logged in raw units."""
    critic: str = "twin"
    """Critic: ``twin`` (Polyak target), ``crossq`` (batch renorm, no target), ``distributional`` (atoms)."""
    policy_delay: int = 1
    """Update the actor (and a tuned alpha) every this many critic updates (CrossQ, TD3: 3)."""
    adam_beta1: float = 0.9
    """Adam's first-moment decay for every optimiser of the agent (Adam's default 0.9; CrossQ: 0.5)."""
    auto_alpha: bool = False
    """Tune alpha toward ``target_entropy`` (SAC v2; not SQL, which has no density); ``alpha`` starts it."""
    target_entropy: float | None = None
    """Target entropy for automatic alpha; None means -action_dim (SAC v2)."""
    alpha_lr: float = 3e-4
    """Adam learning rate of log alpha (SAC v2: 3e-4)."""
    renorm_momentum: float = 0.99
    """Batch renorm (``crossq`` critic, batch-renormalised actor): running-statistics momentum (CrossQ: 0.99)."""
    renorm_epsilon: float = 1e-3
    """Batch renorm: variance offset epsilon (CrossQ: 1e-3)."""
    renorm_r_max: float = 3.0
    """Batch renorm: clip of the scale correction r to [1/r_max, r_max] (CrossQ: 3)."""
    renorm_d_max: float = 5.0
    """Batch renorm: clip of the shift correction d to [-d_max, d_max] (CrossQ: 5)."""
    renorm_warmup_steps: int = 100_000
    """Batch renorm: training calls with r = 1, d = 0 (plain batch norm) before renormalising (CrossQ: 100k)."""
    v_min: float = -200.0
    """``distributional`` critic: lowest atom of the support (DIME: -200; Gym MuJoCo: -1600)."""
    v_max: float = 200.0
    """``distributional`` critic: highest atom, about ``max|r| / (1 - gamma)`` (DIME: 200; Gym MuJoCo: 1600)."""
    n_atoms: int = 101
    """``distributional`` critic: number of atoms of the categorical head (DIME: 101)."""

    @property
    def deterministic_mode(self) -> str:
        """The ``act`` mode of the deterministic policy (evaluation, ``predict(deterministic=True)``)."""
        return "max"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first out-of-range field."""
        require(0.0 <= self.gamma < 1.0 and math.isfinite(self.gamma), f"gamma must be in [0, 1); got {self.gamma!r}")
        require(0.0 < self.tau <= 1.0, f"tau must be in (0, 1]; got {self.tau!r}")
        positive_int("batch_size", self.batch_size)
        finite_positive("critic_lr", self.critic_lr)
        finite_positive("actor_lr", self.actor_lr)
        finite_positive("alpha", self.alpha)
        finite_positive("reward_scale", self.reward_scale)
        require(
            self.lr_schedule in LR_SCHEDULES,
            f"unknown lr_schedule {self.lr_schedule!r}; expected one of {LR_SCHEDULES}",
        )
        non_negative_int("lr_schedule_updates", self.lr_schedule_updates)
        check_critic(self.critic)
        positive_int("policy_delay", self.policy_delay)
        require(0.0 <= self.adam_beta1 < 1.0, f"adam_beta1 must be in [0, 1); got {self.adam_beta1!r}")
        finite_positive("alpha_lr", self.alpha_lr)
        if self.target_entropy is not None:
            require(math.isfinite(self.target_entropy), f"target_entropy must be finite; got {self.target_entropy!r}")
        require(0.0 <= self.renorm_momentum < 1.0, f"renorm_momentum must be in [0, 1); got {self.renorm_momentum!r}")
        finite_positive("renorm_epsilon", self.renorm_epsilon)
        require(self.renorm_r_max >= 1.0, f"renorm_r_max must be >= 1; got {self.renorm_r_max!r}")
        require(self.renorm_d_max >= 0.0, f"renorm_d_max must be >= 0; got {self.renorm_d_max!r}")
        non_negative_int("renorm_warmup_steps", self.renorm_warmup_steps)
        if self.critic == "distributional":
            check_support(self.v_min, self.v_max, self.n_atoms)
        require(
            self.critic not in ("crossq", "distributional") or self.batch_size >= 2,
            f"critic={self.critic!r} normalises by batch statistics, which need batch_size >= 2; got {self.batch_size}",
        )
        for name in ("critic_hidden", "actor_hidden"):
            widths = getattr(self, name)
            require(
                len(widths) > 0 and all(isinstance(w, int) and w > 0 for w in widths),
                f"{name} must be positive ints; got {widths!r}",
            )
        require(
            self.activation in ACTIVATIONS,
            f"unknown activation {self.activation!r}; expected one of {tuple(ACTIVATIONS)}",
        )


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
    normalize_obs: bool = False
    """Normalise observations by running statistics (SB3's VecNormalize; s2ac.normalize)."""
    normalize_reward: bool = False
    """Scale rewards by the running std of the discounted return (VecNormalize's norm_reward)."""

    def validate(self) -> None:
        require(isinstance(self.env_id, str) and self.env_id != "", "env_id must be a non-empty string")
        for name in ("total_steps", "train_freq", "gradient_steps", "buffer_size", "eval_episodes", "log_every"):
            positive_int(name, getattr(self, name))
        for name in ("learning_starts", "random_steps", "eval_freq", "checkpoint_freq", "seed"):
            non_negative_int(name, getattr(self, name))


MULTIGOAL_TEMPERATURE = dict(reward_scale=0.1, alpha=1.0)
"""Soft Q-Learning's multigoal temperature (haarnoja/softqlearning examples/multigoal_sql.py: reward
scale 0.1 at temperature 1, i.e. alpha = 10 in raw reward units), used by the corrected and quick
presets of every algorithm on multigoal. At the authors' alpha = 0.2 in raw units exp(Q/alpha) is
three needles separated by barriers of about e^60 (REFERENCE.md §6); see docs/algorithms/s2ac.md for the
alpha in {0.2, 2, 10} measurement behind the choice. The paper preset keeps the authors' 0.2."""

QUICK_MULTIGOAL_GRADIENT_STEPS = 10
"""Updates per 50 env steps of the quick multigoal schedule (the demo)."""


def advanced_fields(cls: type) -> frozenset[str]:
    """The advanced fields of config class ``cls``: the ``advanced_fields`` of it and its bases."""
    return frozenset(name for klass in cls.__mro__ for name in vars(klass).get("advanced_fields", ()))


def is_multigoal(env_id: str) -> bool:
    """Whether ``env_id`` names one of our multigoal envs (their presets differ)."""
    return env_id.startswith("s2ac/MultiGoal")


WIDE_SUPPORT = dict(v_min=-1600.0, v_max=1600.0)
"""The distributional critic's support off multigoal under ``quick`` and ``corrected``: the DIME
authors' support for Gym MuJoCo (their issue 2). Returns such as Pendulum's (down to about -1600
discounted) do not fit the default +-200, which ``paper`` keeps as their code does."""


def distributional_support(preset: str, env_id: str) -> dict:
    """``v_min`` / ``v_max`` that :data:`WIDE_SUPPORT` sets for a distributional critic (empty on
    multigoal, whose returns fit +-200, and under ``paper``)."""
    return {} if preset == "paper" or is_multigoal(env_id) else dict(WIDE_SUPPORT)


QUICK_RENORM_WARMUP_STEPS = 5_000
"""Batch-renorm warm-up of the ``crossq`` critic under ``quick`` (CrossQ: 100k), for every actor on
it: renormalisation starts inside a quick run's budget instead of never."""


def critic_preset_fields(critic: str, preset: str, env_id: str) -> dict:
    """Fields a critic part brings under ``preset`` for any actor on it (the algorithm's own fields win):
    a distributional critic's support (:func:`distributional_support`), the ``crossq`` critic's
    :data:`QUICK_RENORM_WARMUP_STEPS` under ``quick``."""
    if critic == "distributional":
        return distributional_support(preset, env_id)
    if critic == "crossq" and preset == "quick":
        return dict(renorm_warmup_steps=QUICK_RENORM_WARMUP_STEPS)
    return {}


def check_preset(preset: str) -> None:
    """Raise ``ValueError`` for a preset name that does not exist."""
    require(preset in PRESETS, f"unknown preset {preset!r}; expected one of {PRESETS}")


def quick_width(env_id: str) -> tuple[int, int]:
    """Hidden widths of the quick preset's networks. Multigoal is a 2-D task: 2 x 32 networks and
    batch 50 make S²AC's update (L = 10, second order) 3.6x cheaper than 2 x 64 at batch 100, which
    is what fits the demo in minutes."""
    return (32, 32) if is_multigoal(env_id) else (64, 64)


def shared_preset_fields(preset: str, env_id: str) -> dict:
    """The agent-config fields a preset sets for every algorithm on ``env_id``."""
    check_preset(preset)
    fields: dict = {}
    if is_multigoal(env_id) and preset != "paper":
        fields.update(MULTIGOAL_TEMPERATURE)
    if preset == "quick":
        width = quick_width(env_id)
        fields.update(critic_hidden=width, actor_hidden=width)
        if is_multigoal(env_id):
            fields["batch_size"] = 50
    return fields


def make_train_config(preset: str, env_id: str, **overrides) -> TrainConfig:
    """The training schedule for ``preset`` on ``env_id``; ``overrides`` replace fields."""
    check_preset(preset)
    fields: dict = dict(env_id=env_id)
    if is_multigoal(env_id):
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
        if is_multigoal(env_id):
            # The demo's schedule: 10k env steps and 10 updates every 50, which docs/guide/first-run.md measures
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
    "PRESETS",
    "WIDE_SUPPORT",
    "distributional_support",
    "critic_preset_fields",
    "QUICK_RENORM_WARMUP_STEPS",
    "AgentConfig",
    "TrainConfig",
    "MULTIGOAL_TEMPERATURE",
    "QUICK_MULTIGOAL_GRADIENT_STEPS",
    "advanced_fields",
    "is_multigoal",
    "check_preset",
    "quick_width",
    "shared_preset_fields",
    "make_train_config",
    "config_to_dict",
    "config_from_dict",
]
