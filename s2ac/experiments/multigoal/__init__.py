"""Multigoal reproduction: mode coverage, per-state entropy and obstacle robustness (REFERENCE.md §3).

For every algorithm (S²AC(phi), S²AC(phi,theta), SAC, and SQL / SAC-NF when
:func:`s2ac.agents.make_agent_config` knows them) and every env (the 3-goal max-entropy env and
the 4-goal env), :func:`run_multigoal`

1. trains one agent per seed with the vmapped pure-JAX loop (:func:`s2ac.jax_loop.train_vectorized`);
2. runs test episodes of the stochastic (``"random"``) and deterministic (``"max"``) policy on the
   env and on its evaluation-only obstacle variant: fraction of episodes ending at each goal,
   distinct goals reached, return, length, and with the wall the fraction of episodes that hit it
   and still reach a goal (REFERENCE.md §3 "Metrics the paper reports");
3. estimates the per-state entropy ``-mean log pi`` at the env's six probe states from the agent's
   own log-density: S²AC through ``sample_particles(...).log_prob`` (mean-field closed form, REFERENCE.md
   §1) and through the per-particle Jacobian's log-det (same parameters, ``log_density="per_particle"``;
   a conditional density, not ground truth); SAC and SAC-NF
   through ``sample_action``; SQL has no tractable density. A Kozachenko-Leonenko k-NN entropy of the
   policy's samples is given for every method as a density-free reference;
4. writes figures, ``summary.json`` and ``report.md`` (mean +- 95% t-interval over seeds).

Layout: :mod:`.config` (methods, envs, budget), :mod:`.run` (training, evaluation, the driver: every
:mod:`s2ac.jax_loop` call), :mod:`.metrics` (episode outcomes, margins), :mod:`.plots`, :mod:`.report`;
statistics in :mod:`s2ac.experiments.stats`, the k-NN estimator in :mod:`s2ac.experiments.estimators`.
"""

from s2ac.experiments.multigoal.config import (
    CLI_BASE,
    DEFAULT_ALGOS,
    DEFAULT_ENVS,
    DEFAULT_GRADIENT_STEPS,
    FULL_ENVS,
    KNN_K,
    MODES,
    OBSTACLE_VARIANT,
    VARIANTS,
    MultigoalBudget,
    available_algos,
)
from s2ac.experiments.multigoal.metrics import entropy_estimators, episode_metrics, margin_summary
from s2ac.experiments.multigoal.plots import OUTCOME_STYLE, outcome_labels
from s2ac.experiments.multigoal.report import budget_note, cli_command, report_markdown
from s2ac.experiments.multigoal.run import TrainedRun, evaluate_run, probe_entropies, run_multigoal, train_algo
from s2ac.experiments.stats import fmt_ci, mean_ci, t_quantile_975

__all__ = [
    "CLI_BASE",
    "DEFAULT_ALGOS",
    "DEFAULT_ENVS",
    "DEFAULT_GRADIENT_STEPS",
    "FULL_ENVS",
    "KNN_K",
    "MODES",
    "OBSTACLE_VARIANT",
    "OUTCOME_STYLE",
    "VARIANTS",
    "MultigoalBudget",
    "TrainedRun",
    "available_algos",
    "budget_note",
    "cli_command",
    "entropy_estimators",
    "episode_metrics",
    "evaluate_run",
    "fmt_ci",
    "margin_summary",
    "mean_ci",
    "outcome_labels",
    "probe_entropies",
    "report_markdown",
    "run_multigoal",
    "t_quantile_975",
    "train_algo",
]
