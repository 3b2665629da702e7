"""Stein Soft Actor-Critic: the policy is an SVGD sampler over exp(Q/alpha) (REFERENCE.md §1).

* S²AC(phi,theta) (``init="learned"``): q0 = N(mu_theta(s), diag sigma_theta(s)^2) truncated
  to mu +- 3 sigma, trained through the whole sampler (second order in Q).
* S²AC(phi) (``init="fixed"``): q0 = N(0, sigma0^2 I), no actor parameters; entropy enters
  through the critic target only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import flax
import jax
import jax.numpy as jnp

from s2ac import stein
from s2ac.agents.common import PARTICLE_ACT_MODES, CriticAgent, CriticState, check_act_mode, pick_action
from s2ac.checks import finite_positive, positive_int, require
from s2ac.config import AgentConfig, is_multigoal
from s2ac.envs import action_dim
from s2ac.nets import GaussianHead
from s2ac.parts.actors import Particles, SVGDActor, keep_wide_matmuls, particle_diagnostics
from s2ac.parts.temperature import Temperature
from s2ac.stein import BANDWIDTH_RULES, NORMALIZERS, STEP_CONTROLS
from s2ac.types import Array, EnvSpec, Metrics


@dataclass(frozen=True)
class S2ACConfig(AgentConfig):
    """Stein Soft Actor-Critic: S²AC(phi, theta) (``init="learned"``) or S²AC(phi) (``init="fixed"``)."""

    advanced_fields: ClassVar[tuple[str, ...]] = (
        "init_std",
        "test_selection",
        "init_std_min",
        "init_std_max",
        "truncation",
        "init_density",
        "log_margin",
        "log_density",
        "self_term_probes",
        "svgd_step_gradient",
        "bandwidth_gradient",
        "normalizer",
        "sampler_alpha",
        "score_space",
        "remat_score",
        "remat_keep_matmuls",
        "unroll_svgd",
        "target_entropy",
        "alpha_lr",
    )

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
    svgd_step_control: Literal["fixed", "adaptive", "adaptive_bound"] = "adaptive"
    """``fixed``: every step is ``svgd_step_size`` (authors). ``adaptive``: each state's step is
    ``min(svgd_step_size, svgd_target_margin / max_i ||J_i||_F)``, ``J_i`` the mean-field Jacobian block
    at particle i from kernel terms and scores (plus the self term's secant). ``adaptive_bound``: the
    same with the proven global bound ``B = e^{-1/2} mean_j ||s_j|| / sigma + alpha / sigma^2`` in
    place of the blocks: invertible on the whole space, from the scores' norms only, so almost free
    (``s2ac.stein.controlled_step``; docs/maths/entropy.md §3). The actor differentiates through the rule."""
    svgd_step_gradient: bool = True
    """Differentiate the actor's loss through the adaptive rule's ``eps`` (right: the step moves with the
    q0 network's parameters). False treats the chosen steps as a schedule (``stop_gradient``): an
    ablation, biased wherever the rule binds (docs/maths/entropy.md §4)."""
    svgd_target_margin: float = 0.5
    """Margin ``eps max_i ||J_i||_F`` the adaptive rule keeps every step below (must be < 1)."""
    log_margin: bool = True
    """Under the fixed rule, still log the margin ``eps max_i ||J_i||_F`` of the target particles' steps
    (cheap: kernel terms and scores; the adaptive rule always has it)."""
    bandwidth: float | Literal["mean/2", "median"] = "mean/2"
    """Kernel bandwidth: a fixed sigma or a per-state, per-step rule (authors: "mean/2")."""
    bandwidth_gradient: bool = False
    """Differentiate the actor's loss through a rule bandwidth (sigma moves with the particles, so with
    the q0 network). False (default, the authors' and every published result here): sigma is a
    schedule, and the actor's gradient ignores its dependence on the parameters (docs/maths/entropy.md §4)."""
    log_density: Literal[
        "mean_field",
        "mean_field_logdet",
        "per_particle",
        "per_particle_trace",
        "per_particle_trace_probe",
        "closed_form",
        "closed_form_self",
        "exact",
        "exact_noself",
    ] = "per_particle_trace_probe"
    """Density accounting through the SVGD steps (docs/maths/entropy.md): ``mean_field`` (the poster's
    closed form), its exact log-det, one particle's own Jacobian block (``per_particle``, a conditional
    density) or its first order (``per_particle_trace``: the mean field plus the self term's trace), or
    that trace from one random probe (``per_particle_trace_probe``, default: one JVP per step in any d).
    Chosen by measurement against k-NN ground truth (``s2ac reproduce entropy-check``): at L = 3, margin
    0.5 the probe mode is within 0.07 nats in d = 1, 2, 3, 6 where the mean field is +0.41 and +1.00 off
    in d = 3 and 6; the multigoal presets (L = 10, margin 0.1, d = 2) use the mean field (+0.08 there,
    the trace -0.19). Earlier names (``closed_form``, ``exact``, ...) are accepted."""
    self_term_probes: int = 1
    """``per_particle_trace_probe``: particles per set whose self-term trace is probed (one Rademacher
    probe each; their mean stands for the set's, the particles being exchangeable). 1 to
    ``n_particles``; the probe's JVP costs ``self_term_probes / n_particles`` of one on every particle."""
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
    def deterministic_mode(self) -> str:
        """``test_selection``: every evaluation path and ``predict(deterministic=True)`` act with it."""
        return self.test_selection

    @property
    def effective_sampler_alpha(self) -> float:
        """The temperature the sampler actually uses (derived, never written back)."""
        return self.alpha if self.sampler_alpha is None else self.sampler_alpha

    def validate(self) -> None:
        super().validate()
        require(
            not (self.critic in ("crossq", "distributional") and self.activation == "relu" and self.init == "learned"),
            f"critic={self.critic!r} with activation='relu' under S²AC(phi,theta): the q0 gradient runs through the "
            "SVGD steps, which need grad^2_a Q, and a ReLU critic's is zero; use activation='elu'",
        )
        positive_int("n_particles", self.n_particles)
        require(self.n_particles >= 2, f"n_particles must be >= 2 for SVGD; got {self.n_particles}")
        require(
            isinstance(self.svgd_steps, int) and self.svgd_steps >= 0,
            f"svgd_steps must be an int >= 0; got {self.svgd_steps!r}",
        )
        finite_positive("svgd_step_size", self.svgd_step_size)
        require(
            isinstance(self.svgd_step_gradient, bool),
            f"svgd_step_gradient must be true or false; got {self.svgd_step_gradient!r}",
        )
        require(
            self.remat_keep_matmuls is None or isinstance(self.remat_keep_matmuls, bool),
            f"remat_keep_matmuls must be true, false or None (automatic); got {self.remat_keep_matmuls!r}",
        )
        finite_positive("init_std", self.init_std)
        finite_positive("truncation", self.truncation)
        require(
            0 < self.init_std_min <= self.init_std_max,
            f"need 0 < init_std_min <= init_std_max; got {self.init_std_min}, {self.init_std_max}",
        )
        if isinstance(self.bandwidth, str):
            require(
                self.bandwidth in BANDWIDTH_RULES,
                f"unknown bandwidth rule {self.bandwidth!r}; expected a float or one of {BANDWIDTH_RULES}",
            )
        else:
            finite_positive("bandwidth", self.bandwidth)
        stein.canonical_log_density(self.log_density)  # ValueError with close matches; old names accepted
        require(
            isinstance(self.self_term_probes, int) and 1 <= self.self_term_probes <= self.n_particles,
            f"self_term_probes must be an int in [1, n_particles={self.n_particles}]; got {self.self_term_probes!r}",
        )
        require(self.normalizer in NORMALIZERS, f"unknown normalizer {self.normalizer!r}")
        require(
            self.svgd_step_control in STEP_CONTROLS,
            f"unknown svgd_step_control {self.svgd_step_control!r}; expected one of {STEP_CONTROLS}",
        )
        tm = self.svgd_target_margin
        require(
            isinstance(tm, (int, float)) and math.isfinite(tm) and 0 < tm < 1,
            f"svgd_target_margin must be in (0, 1) (an invertible step needs margin < 1); got {tm!r}",
        )
        if self.sampler_alpha is not None:
            finite_positive("sampler_alpha", self.sampler_alpha)
        require(self.init in ("learned", "fixed"), f"unknown init {self.init!r}")
        require(self.score_space in ("squashed", "unsquashed"), f"unknown score_space {self.score_space!r}")
        require(self.test_selection in ("max", "softmax"), f"unknown test_selection {self.test_selection!r}")


# The authors' published behaviour (REFERENCE.md §2, list "official behaviour").
PAPER_FIELDS = dict(
    sampler_alpha=1.0,
    score_space="unsquashed",
    normalizer="m-1",
    init_density="untruncated",
    svgd_step_control="fixed",
    log_density="mean_field",
    bandwidth_gradient=False,
)


MULTIGOAL_STEP_CONTROL = "adaptive_bound"
"""Step rule of the multigoal presets: the proven global bound (score norms only). At these sizes the
blocks' rule cost 1.3-1.7x the fixed step's update, most of it the actor's gradient through the
blocks; the bound's rule costs almost nothing (docs/maths/entropy.md §6)."""
MULTIGOAL_TARGET_MARGIN = 0.3
"""Target margin of the multigoal presets (L = 10, under :data:`MULTIGOAL_STEP_CONTROL`): on the 3-mode
2-D check target it moves the particles as far as the blocks' rule at 0.1 (mean eps 0.0335, against
0.0331), with the mean field +0.17 nats from k-NN (``s2ac reproduce entropy-check``;
docs/maths/entropy.md)."""
MULTIGOAL_BANDWIDTH_GRADIENT = True
"""The multigoal presets differentiate the actor's loss through the bandwidth rule: on 5 seeds at the
multigoal budget it covered every goal in 4 seeds (success 0.80) where sigma as a schedule covered 2
(0.77) in the same invocation (``s2ac reproduce temperature --out results/s2ac_variants_multigoal``).
Elsewhere the config's default (a schedule, as every MuJoCo result here) applies."""
MULTIGOAL_LOG_DENSITY = "mean_field"
"""Density of the multigoal presets (L = 10, d = 2): the mean field (+0.17 nats from k-NN on the check
target under the presets' rule; the probe mode -0.09 there, at one more JVP per step). Elsewhere the
config's default (the probe mode) applies."""


MEAN_FIELD_MAX_ACT_DIM = 2
"""Largest action size at which the presets off multigoal (L = 3, the blocks' rule at margin 0.5) use
the mean field instead of the probe mode. On the 3-mode check target at those settings the mean field
is -0.03 and +0.13 nats from k-NN in d = 1 and 2 (the probe -0.07 and -0.02): both within the 0.2
asked, and the mean field needs first derivatives only (the probe costs 1.21x its update). In d = 3
and 6 it is +0.41 and +1.00 off, so larger actions keep the probe (docs/maths/entropy.md §5)."""


def density_for(env_id: str) -> str | None:
    """The presets' ``log_density`` off multigoal: ``"mean_field"`` up to :data:`MEAN_FIELD_MAX_ACT_DIM`
    action dimensions, None (the config's default, the probe mode) above it or where the env's action
    size is unknown here."""
    dim = action_dim(env_id)
    return "mean_field" if dim is not None and dim <= MEAN_FIELD_MAX_ACT_DIM else None


def preset_fields(preset: str, env_id: str) -> dict:
    """S²AC's own preset fields: L = 10 on multigoal, 3 on MuJoCo (authors), the multigoal step rule,
    target margin, bandwidth gradient and density (:data:`MULTIGOAL_STEP_CONTROL`,
    :data:`MULTIGOAL_TARGET_MARGIN`, :data:`MULTIGOAL_BANDWIDTH_GRADIENT`, :data:`MULTIGOAL_LOG_DENSITY`),
    the density by action size elsewhere (:func:`density_for`), and the paper behaviour (the authors'
    closed form and fixed step)."""
    fields: dict = {"svgd_steps": 10 if is_multigoal(env_id) else 3}
    if is_multigoal(env_id):
        fields["svgd_step_control"] = MULTIGOAL_STEP_CONTROL
        fields["bandwidth_gradient"] = MULTIGOAL_BANDWIDTH_GRADIENT
        fields["svgd_target_margin"] = MULTIGOAL_TARGET_MARGIN
        fields["log_density"] = MULTIGOAL_LOG_DENSITY
    elif preset != "paper" and (density := density_for(env_id)) is not None:
        fields["log_density"] = density
    if preset == "paper":
        fields.update(PAPER_FIELDS)
    return fields


@flax.struct.dataclass
class S2ACState(CriticState):
    """Flat training state: :class:`~s2ac.agents.common.CriticState` plus the q0 (initial-distribution)
    network ``init_params`` and its optimiser state ``init_opt``, both ``None`` for S²AC(phi).

    ``log_alpha`` / ``alpha_opt``: the temperature (:mod:`s2ac.parts.temperature`); with a fixed alpha
    they stay at ``log(alpha)`` and the update reads ``alpha`` from the config.

    (Named ``actor_params`` / ``actor_opt`` before; :func:`s2ac.checkpoint.load_agent_state` maps them,
    and fills the temperature fields of a checkpoint written before they existed.)
    """

    init_params: Any
    init_opt: Any
    log_alpha: Array
    alpha_opt: Any


class S2ACAgent(CriticAgent):
    """S²AC with the shared ``init`` / ``update`` / ``act`` interface: an
    :class:`~s2ac.parts.actors.SVGDActor` on the config's critic, with a fixed or tuned temperature,
    composed by :class:`~s2ac.parts.update.ActorCriticUpdate`. The methods below are the sampler's
    entry points by critic parameters (experiments, plots and tests call them)."""

    state_class = S2ACState
    act_modes = PARTICLE_ACT_MODES
    """No ``"mean"``: a particle policy has no mean pass (the mean of the particles need not be a good action)."""
    policy_density = "particles"
    """``sample_particles(...).log_prob`` is the policy's log-density (per ``log_density``)."""

    def __init__(self, config: S2ACConfig, spec: EnvSpec):
        super().__init__(config, spec)
        self.learned_init = config.init == "learned"
        self.sampler_alpha = config.effective_sampler_alpha
        self.init_net = GaussianHead(
            config.actor_hidden,
            spec.act_dim,
            config.activation,
            math.log(config.init_std_min),
            math.log(config.init_std_max),
        )
        self.init_tx = self.adam(config.actor_lr)
        self.actor_part = SVGDActor(config, self.box, spec.act_dim, spec.obs_dim, self.init_net, self.init_tx)
        self.temperature = Temperature.from_config(config, spec.act_dim, fixed_in_state=False)
        self.sample = jax.jit(self.sample_particles)

    @property
    def diagnostics_available(self) -> tuple[bool, bool]:
        """``(margin, folding)``: which step diagnostics the target particles (sampled with
        ``diagnostics=log_margin``) carry; see :func:`s2ac.stein.margin_computed`."""
        return self.actor_part.diagnostics_available

    def temperatures(self, state: S2ACState) -> tuple[Any, Any]:
        """``(alpha, sampler alpha)``: the config's floats with a fixed alpha; with a tuned one,
        ``exp(log_alpha)`` (no gradient) and the sampler's own ``sampler_alpha`` if set."""
        alpha = self.temperature.value(state.log_alpha)
        return alpha, self.actor_part.sampler_alpha(alpha)

    # -- sampler --------------------------------------------------------------
    def initial_particles(self, init_params: Any, obs: Array, key: Array) -> tuple[Array, Array]:
        """``(u0, log q0(u0))`` of shape ``(B, m, d)`` and ``(B, m)``."""
        return self.actor_part.initial_particles(init_params, obs, key)

    def energy(self, critic_params: Any, obs: Array, u: Array, sampler_alpha: Any = None) -> Array:
        """Energy whose gradient drives SVGD: ``u`` of shape ``(..., m, d)`` at states ``obs`` of
        shape ``(..., obs_dim)`` (one state's particles, or all states' at once); shape ``(..., m)``.

        ``"squashed"``: ``min_k Q_k(s, squash(u)) + alpha_s * log|det d squash / du|``, i.e. alpha_s
        times the log of the u-space target ``exp(Q/alpha_s) |squash'(u)|``.
        ``"unsquashed"`` (authors' code): ``min_k Q_k(s, u)`` evaluated at the raw ``u``.

        Q is evaluated in evaluation mode (:meth:`~s2ac.agents.common.CriticAgent.q`): for a
        batch-renormalised critic, with its running statistics. The score of particle ``i`` must depend
        on particle ``i`` alone: with batch statistics every particle's Q would depend on every other
        particle and state in the batch, so ``grad_u Q`` would not be the target's score, the rows
        would not be independent (the summed-energy gradient relies on it), and the sampler
        would move the critic's statistics. Running statistics also make acting at a single state the
        same function as acting in a batch.
        """
        alpha = self.sampler_alpha if sampler_alpha is None else sampler_alpha
        return self.actor_part.energy(self.q_fn(critic_params), obs, u, alpha)

    def sample_particles(
        self,
        init_params: Any,
        critic_params: Any,
        obs: Array,
        key: Array,
        diagnostics: bool = True,
        sampler_alpha: Any = None,
    ) -> Particles:
        """Draw ``m`` particles per state from q0 and move them with ``L`` SVGD steps.

        ``log pi(a|s) = log q^L(u^L|s) - log|det d squash/du|`` (REFERENCE.md §1 "Squashing").
        ``diagnostics=False`` skips the per-step invertibility margin (NaN then) where nobody reads it.
        ``sampler_alpha``: the sampler's temperature (None: the config's; a tuned alpha passes its own).
        """
        alpha = self.sampler_alpha if sampler_alpha is None else sampler_alpha
        return self.actor_part.sample_particles(init_params, self.q_fn(critic_params), obs, key, diagnostics, alpha)

    def select(self, particles: Particles, q: Array, key: Array, mode: str, alpha: Any = None) -> Array:
        """Pick one particle per state: ``random`` (training), ``max`` or ``softmax`` (test); see
        :func:`~s2ac.agents.common.pick_action`."""
        check_act_mode(mode, self.act_modes)
        return pick_action(particles.action, q, key, mode, self.config.alpha if alpha is None else alpha)

    def _act(self, state: S2ACState, obs: Array, key: Array, mode: str = "random") -> Array:
        check_act_mode(mode, self.act_modes)
        alpha, sampler_alpha = self.temperatures(state)
        k_sample, k_select = jax.random.split(key)
        particles = self.sample_particles(
            state.init_params, state.critic_params, obs, k_sample, diagnostics=False, sampler_alpha=sampler_alpha
        )
        q = self.min_q(state.critic_params, obs, particles.action)
        return self.select(particles, q, k_select, mode, alpha)

    # -- losses ---------------------------------------------------------------
    def soft_value(self, target_params: Any, next_obs: Array, particles: Particles) -> Array:
        """``(1/m) sum_j min_k Qbar_k(s', a'_j) - alpha (1/m) sum_j log pi(a'_j|s')``."""
        q = self.min_q(target_params, next_obs, particles.action)
        return jnp.mean(q, axis=-1) - self.config.alpha * jnp.mean(particles.log_prob, axis=-1)

    def actor_loss(
        self, init_params: Any, critic_params: Any, obs: Array, key: Array, alpha: Any = None, sampler_alpha: Any = None
    ) -> tuple[Array, Metrics]:
        """``E_s[ alpha (1/m) sum_i log pi(a_i|s) - (1/m) sum_i min_k Q_k(s, a_i) ]`` through the sampler,
        as a function of the q0 network's parameters (``alpha`` None: the config's)."""
        alpha = self.config.alpha if alpha is None else alpha
        sampler_alpha = self.sampler_alpha if sampler_alpha is None else sampler_alpha
        return self.actor_part.loss(init_params, self.q_fn(critic_params), obs, key, alpha, sampler_alpha)


__all__ = ["S2ACAgent", "S2ACState", "Particles", "keep_wide_matmuls", "particle_diagnostics"]
