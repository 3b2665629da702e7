"""Command line: ``s2ac train | eval | plot | bench | reproduce | sweep``.

``s2ac train`` is parsed in two stages: ``--algo``, ``--preset`` and ``--env`` pick the
preset, whose full agent and training configs then become the defaults of every
``--agent.*`` and ``--train.*`` flag (see ``s2ac train --help``).
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import json
import os
import signal
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional

from s2ac import errors, interrupts
from s2ac.experiments.sbx_compare import SBXCompareConfig
from s2ac.names import ALGOS, PRESETS

# JAX, the agents and tyro are imported by the commands that need them, so that ``s2ac --help``,
# an unknown command or algorithm, and a signal during start-up are answered without them.
if TYPE_CHECKING:
    import tyro


def _tyro():
    """tyro, imported on first use (the commands' dataclasses name it in their annotations)."""
    global tyro
    import tyro

    return tyro


COMMANDS = {
    "train": "train an agent (progress bar, metrics, checkpoints, plots)",
    "eval": "evaluate the latest checkpoint of a run folder; --video DIR records the episodes",
    "plot": "compare run folders: learning curves per (algo, env) and the IQM of normalised final returns",
    "bench": "benchmark the update (ms, FLOPs, GFLOP/s vs a dense matmul) or acting (env steps/s)",
    "reproduce": "reproduce an experiment (s2ac reproduce NAME; the experiments are listed below)",
    "sweep": "a grid of (algorithm x env x seed x preset) runs on Ray, or as lockstep groups; rerun to resume",
}


def _usage() -> str:
    lines = ["usage: s2ac COMMAND [options]   (s2ac COMMAND --help for details)", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines) + "\n\n" + _experiments_usage()


def _experiments_usage() -> str:
    """Every experiment of :data:`EXPERIMENTS` with the first line of its options' docstring."""
    lines = ["experiments (s2ac reproduce NAME [options]):"]
    width = max(map(len, EXPERIMENTS))
    lines += [
        f"  {name:<{width}} {options.__doc__.strip().splitlines()[0]}" for name, (options, _) in EXPERIMENTS.items()
    ]
    return "\n".join(lines)


# -- train ---------------------------------------------------------------------------


def _preparse_train(argv: list[str]) -> argparse.Namespace:
    """The first parsing stage: ``--algo``, ``--preset`` and ``--env`` (same defaults as the help's)."""
    from s2ac.names import DEFAULT_ALGO, DEFAULT_ENV, DEFAULT_PRESET

    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--algo", default=DEFAULT_ALGO)
    pre.add_argument("--preset", default=DEFAULT_PRESET)
    pre.add_argument("--env", default=DEFAULT_ENV)
    pre.add_argument("--hyperparams", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.algo not in ALGOS:
        raise SystemExit(f"error: unknown --algo {known.algo!r}; choose from {', '.join(ALGOS)}")
    if known.preset not in PRESETS:
        raise SystemExit(f"error: unknown --preset {known.preset!r}; choose from {', '.join(PRESETS)}")
    return known


def _run_figures(trainer, out: Path) -> list[Path]:
    """Learning curves; on multigoal also 50 stochastic episodes coloured by goal and particles on Q."""
    from s2ac.envs import is_multigoal
    from s2ac.plots import plot_learning_curves, plot_multigoal

    env_id = trainer.cfg.env_id
    paths = [plot_learning_curves(out, f"{trainer.algo} on {env_id}")]
    if is_multigoal(env_id):
        stats = trainer.evaluate(n_episodes=50, keep_trajectories=True)["eval/stochastic_stats"]
        paths += plot_multigoal(out, trainer.agent, trainer.state, env_id, stats.trajectories, stats.goals)
    return paths


def _without_hyperparams(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--hyperparams":
            skip = True
        elif not arg.startswith("--hyperparams="):
            out.append(arg)
    return out


def _stopped_by_signal(result: dict, what: str, command: str) -> int:
    """The one line of a run that a signal stopped (with a checkpoint at that step), and its exit code."""
    where = f"stopped at env step {result['env_steps']} with checkpoint {result['checkpoint']}"
    print(f"{what}: {where}; resume with: {command} --resume", file=sys.stderr)
    return errors.EXIT_TERMINATED if result["interrupted_by"] == "SIGTERM" else errors.EXIT_INTERRUPTED


def cmd_train(argv: list[str]) -> int:
    """Train an agent: ``s2ac train --algo ALGO --env ID --preset P --total-steps N --seed S --out DIR``."""
    known = _preparse_train(argv)  # unknown names are answered before the heavy imports
    from s2ac import checkpoint as ckpt
    from s2ac.agents import algo_train_fields, make_agent_config
    from s2ac.cli_options import ADVANCED_HELP, train_command, train_configs
    from s2ac.config import make_train_config
    from s2ac.loop import Trainer

    tyro = _tyro()

    if known.hyperparams is not None:  # RL Zoo's file: its flags first, so the command line's own win
        from s2ac.hyperparams import train_flags

        argv = [*train_flags(known.hyperparams, known.algo, known.preset, known.env), *_without_hyperparams(argv)]
    # --help leaves the advanced group out; --help-all is --help with it.
    hide_advanced = "--help-all" not in argv and bool({"-h", "--help"} & set(argv))
    argv = [("--help" if arg == "--help-all" else arg) for arg in argv]
    agent_default = make_agent_config(known.algo, known.preset, known.env)
    train_default = make_train_config(known.preset, known.env, **algo_train_fields(known.algo, known.preset, known.env))
    default = train_command(known.algo, known.preset, known.env, agent_default, train_default, hide_advanced)
    description = f"{cmd_train.__doc__}\n\n{ADVANCED_HELP}" if hide_advanced else cmd_train.__doc__
    args = tyro.cli(type(default), default=default, args=argv, prog="s2ac train", description=description)
    agent_cfg, train_cfg = train_configs(args, agent_default, train_default)
    if getattr(agent_cfg, "svgd_steps", None) == 0:
        warnings.warn(
            "agent.svgd_steps=0: no SVGD step, so the policy is q0 pushed through the squash (an ablation, not S²AC)",
            UserWarning,
            stacklevel=1,
        )
    out = args.out or Path("runs") / f"{args.algo}-{args.env.replace('/', '_')}-seed{train_cfg.seed}"
    command = " ".join(["s2ac train", *(a for a in argv if a != "--resume")])
    newline = "\n" if args.progress else ""  # after the progress bar
    trainer = Trainer(args.algo, agent_cfg, train_cfg, out, resume=args.resume, progress=args.progress,
                      graceful_signals=True)  # fmt: skip
    try:
        result = trainer.run()
    except KeyboardInterrupt as err:  # a second signal while the run was stopping
        interrupts.acknowledge()
        what = "terminated (SIGTERM)" if isinstance(err, errors.Terminated) else "interrupted (Ctrl-C)"
        if ckpt.list_checkpoints(trainer.members[0].ckpt_root):
            print(f"{newline}{what}; resume with: {command} --resume", file=sys.stderr)
        else:
            print(f"{newline}{what} before the first checkpoint; start again with: {command}", file=sys.stderr)
        return errors.exit_code(err)
    finally:
        trainer.close()  # the lock, also when a signal came between building the run and training it
    if result["interrupted_by"]:
        return _stopped_by_signal(result, f"{newline}{result['interrupted_by']}", command)
    try:
        if args.plots:
            result["figures"] = [str(p) for p in _run_figures(trainer, out)]
        result["final_eval"] = {k: v for k, v in trainer.evaluate().items() if isinstance(v, float)}
    except KeyboardInterrupt as err:  # the run is complete; only its figures and final evaluation are left
        interrupts.acknowledge()
        what = "SIGTERM" if isinstance(err, errors.Terminated) else "Ctrl-C"
        print(f"{what}: the run had finished (env step {result['env_steps']}, checkpoint {result['checkpoint']}); "
              "its figures and final evaluation were skipped", file=sys.stderr)  # fmt: skip
        return errors.exit_code(err)
    print(json.dumps(result, indent=2))
    return 0


# -- eval ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EvalCommand:
    """Evaluate the latest valid checkpoint of a run folder (deterministic and stochastic)."""

    run_dir: tyro.conf.Positional[Path]
    """Run folder written by ``s2ac train``."""
    episodes: int = 10
    """Episodes per policy mode."""
    env: str | None = None
    """Evaluate on another env id (e.g. an obstacle variant); default: the training env."""
    video: Optional[Path] = None
    """Record every episode to DIR/{deterministic,stochastic}-{i}-episode-0.mp4 (Gymnasium's RecordVideo;
    needs moviepy and an rgb_array render: the multigoal envs draw themselves, MuJoCo envs need EGL or OSMesa
    without a display)."""
    json: bool = False
    """Print a JSON object only."""


def _check_eval_env(run_dir: Path, model: Any, env_id: str) -> None:
    """Refuse ``--env`` when its spaces differ from those the run was trained on, naming both envs."""
    from s2ac.envs import make_env
    from s2ac.types import EnvSpec

    env = make_env(env_id)
    try:
        spec = EnvSpec.from_env(env)
    finally:
        env.close()
    if spec != model.spec:

        def spaces(s: EnvSpec) -> str:
            return f"observations ({s.obs_dim},), actions ({s.act_dim},) in [{min(s.action_low)}, {max(s.action_high)}]"

        raise ValueError(
            f"--env {env_id} does not match the run {run_dir}, trained on {model.env_id}: {env_id} has "
            f"{spaces(spec)}, {model.env_id} {spaces(model.spec)}; evaluate on an env of the same spaces"
        )


def cmd_eval(argv: list[str]) -> int:
    from s2ac.api import Algorithm
    from s2ac.envs import make_env
    from s2ac.evaluate import GymEpisodes, evaluation_seeds, run_episodes

    tyro = _tyro()
    args = tyro.cli(EvalCommand, args=argv, prog="s2ac eval", description=EvalCommand.__doc__)
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1; got {args.episodes}")
    if args.video is not None:
        from s2ac.video import headless_gl, recording_env

        headless_gl()  # before loading the run: that makes the env, which imports MuJoCo
    model = Algorithm.load(args.run_dir)
    env_id = args.env or model.env_id
    if args.env is not None:
        _check_eval_env(args.run_dir, model, env_id)
    out: dict = {"run_dir": str(args.run_dir), "env": env_id}
    for mode, deterministic in (("deterministic", True), ("stochastic", False)):
        if args.video is None:
            envs = [make_env(env_id) for _ in range(args.episodes)]
        else:
            envs = [recording_env(env_id, args.video, f"{mode}-{i}") for i in range(args.episodes)]
        episodes = GymEpisodes(envs, evaluation_seeds(0, args.episodes))
        stats = run_episodes(episodes, lambda obs, t, d=deterministic: model.predict(obs, deterministic=d)[0])
        for env in envs:
            env.close()  # RecordVideo writes an episode's file when the next one starts or the env closes
        out[mode] = stats.summary(prefix="")
    if args.video is not None:
        out["videos"] = sorted(str(p) for p in args.video.glob("*.mp4"))
    print(json.dumps(out, indent=None if args.json else 2))
    return 0


# -- plot ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PlotCommand:
    """Compare run folders: learning curves per (algorithm, env), mean over seeds with a 95% band, and
    the IQM of final returns normalised per task (min/max over all runs of the task) with stratified
    bootstrap intervals. Writes the PNG and a .json and .md summary next to it."""

    runs: tyro.conf.Positional[tuple[Path, ...]]
    """Run folders, or folders holding run folders (e.g. a sweep's --out)."""
    out: Path = Path("comparison.png")
    """The figure; the summary goes next to it with the suffixes .json and .md."""
    labels: tuple[str, ...] = ()
    """One label per run folder, used instead of its algorithm name (e.g. to tell presets apart)."""
    metric: Literal["auto", "eval/mean_reward", "rollout/ep_rew_mean"] = "auto"
    """Return curve; auto: eval/mean_reward where every run logged it, else rollout/ep_rew_mean."""
    resamples: int = 2000
    """Bootstrap resamples of each IQM interval."""
    seed: int = 0
    """Seed of the bootstrap."""
    json: bool = False
    """Print the summary as one JSON object."""


def cmd_plot(argv: list[str]) -> int:
    from s2ac.compare import compare_runs

    tyro = _tyro()
    args = tyro.cli(PlotCommand, args=argv, prog="s2ac plot", description=PlotCommand.__doc__)
    summary = compare_runs(list(args.runs), args.out, args.labels, args.metric, args.resamples, args.seed)
    if args.json:
        print(json.dumps(summary))
    else:
        print("\n".join(f"wrote {f}" for f in summary["files"]))
    return 0


# -- bench ---------------------------------------------------------------------------


def cmd_bench(argv: list[str]) -> int:
    from s2ac.bench import BenchAct, BenchUpdate, run_bench_act, run_bench_update

    if not argv or argv[0] not in ("update", "act", "diffusion"):
        raise SystemExit("usage: s2ac bench {update,act,diffusion} [options] [--json]  (see s2ac bench update --help)")
    tyro = _tyro()
    if argv[0] == "diffusion":
        from s2ac.bench_diffusion import BenchDiffusion, run_bench_diffusion

        args = tyro.cli(BenchDiffusion, args=argv[1:], prog="s2ac bench diffusion")
        result = run_bench_diffusion(args)
    elif argv[0] == "update":
        args = tyro.cli(BenchUpdate, args=argv[1:], prog="s2ac bench update")
        result = run_bench_update(args)
    else:
        args = tyro.cli(BenchAct, args=argv[1:], prog="s2ac bench act")
        result = run_bench_act(args)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


# -- reproduce -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EntropyToyCommand:
    """Entropy evaluation on the 2-D Gaussian target (poster: H = 3.41)."""

    out: Path = Path("results/entropy_toy")
    """Output folder for figures and the summary."""
    quick: bool = False
    """Reduced grids (about a minute)."""
    seed: int = 0
    """Base seed."""
    json: bool = False
    """Print the summary as one JSON object."""


@dataclasses.dataclass(frozen=True)
class MultigoalCommand:
    """Multigoal: mode coverage, per-state entropy and obstacle robustness, S²AC vs SAC vs SQL vs SAC-NF."""

    out: Path = Path("results/multigoal")
    """Output folder for report.md, summary.json and figures."""
    full: bool = False
    """The long run: 2 x 256 networks, 100k env steps at one update per step, 3- and 4-goal envs (hours).
    Default: small networks, 15k env steps (5k random) at one update per step, the 3-goal env (about 20
    minutes on 2 CPU cores)."""
    seeds: int = 5
    """Seeds per (algorithm, env), trained together (vmapped)."""
    algos: tuple[str, ...] = ("s2ac-phi", "s2ac", "sac", "sql", "sac-nf")
    """Algorithms; names the installed version does not know are skipped and listed in the report."""
    envs: tuple[str, ...] = ()
    """Training envs (each also evaluated on its obstacle variant); empty: the 3-goal env (both with --full)."""
    json: bool = False
    """Print the summary as one JSON object."""


@dataclasses.dataclass(frozen=True)
class StepRulesCommand:
    """SVGD step rules (fixed vs adaptive) on steep energies: margin, folding, density error, transport."""

    out: Path = Path("results/step_rules")
    """Output folder for report.md and results.json."""
    json: bool = False
    """Print the results as one JSON object."""


@dataclasses.dataclass(frozen=True)
class EntropyCheckCommand:
    """Every density the sampler reports against k-NN ground truth over margins, L and d (3-mode target)."""

    out: Path = Path("results/entropy_check")
    """Output folder for report.md, summary.json and entropy_check.png."""
    quick: bool = False
    """d = 2, two margins, L in (3, 10), 500 sets (under a minute)."""
    json: bool = False
    """Print the summary as one JSON object."""


@dataclasses.dataclass(frozen=True)
class RuntimeCommand:
    """Run-time study: ms per update and env steps/s of every algorithm, side by side with a dense matmul."""

    out: Path = Path("results/runtime")
    """Output folder for report.md, results.json and runtime.png."""
    quick: bool = False
    """A reduced grid with small networks (under a minute)."""
    json: bool = False
    """Print the results as one JSON object."""


@dataclasses.dataclass(frozen=True)
class MujocoCommand:
    """MuJoCo benchmark (Gymnasium v5) through a Ray sweep or lockstep groups; rerunning continues unfinished trials."""

    out: Path = Path("results/mujoco")
    """Output folder: one sub-folder per trial, ledger.jsonl, report.md, summary.json, learning_curves.png."""
    envs: tuple[str, ...] = ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5", "Humanoid-v5")
    """Environment ids."""
    algos: tuple[str, ...] = ("sac", "s2ac:paper", "s2ac:corrected", "s2ac-amortized", "sql", "sac-nf")
    """Algorithms; ``algo:preset`` pins a preset, a plain name runs under every preset of ``--presets``."""
    steps: int = 1_000_000
    """Env steps per run."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Seeds."""
    presets: tuple[str, ...] = ("corrected",)
    """Presets for algorithms named without one."""
    address: Optional[str] = None
    """Address of an existing Ray cluster; default: a local one on this machine's cores."""
    cpus_per_trial: int = 1
    """CPUs (and XLA threads) per trial."""
    lockstep: bool = False
    """Run the trials in this process as vmapped groups (one per algorithm and env shape) instead of on
    Ray: the way to use a GPU; see ``s2ac.loop``."""
    stop_after_s: Optional[float] = None
    """With ``--lockstep``: checkpoint and stop each group after this many seconds; rerun to continue."""
    report_only: bool = False
    """Train nothing: write the report from the runs already in ``--out`` (e.g. copied from other machines)."""
    json: bool = False
    """Print the summary as one JSON object."""


@dataclasses.dataclass(frozen=True)
class PeersCommand:
    """SAC, CrossQ, S²AC on both critics, DIME and SAC-NF on one budget: returns, IQM, P(better than SAC)."""

    out: Path = Path("results/peers")
    """Output folder: the MuJoCo harness's trials and report, plus peers.md, peers.json and peers.png."""
    algos: tuple[str, ...] = ("sac", "crossq", "s2ac", "s2ac-crossq", "dime", "sac-nf")
    """Methods compared (the first is the baseline of the probability of improvement)."""
    envs: Optional[tuple[str, ...]] = None
    """Environment ids; default: the CPU subset's (or the GPU plan's with --gpu-plan)."""
    steps: Optional[int] = None
    """Env steps per run; default: the plan's."""
    seeds: Optional[tuple[int, ...]] = None
    """Seeds; default: the plan's (0 1 2)."""
    preset: Optional[str] = None
    """Preset of every method; default: the plan's (quick on the CPU subset, corrected on the GPU plan)."""
    lockstep: bool = False
    """Run the trials in this process as vmapped groups instead of on Ray (the way to use a GPU)."""
    stop_after_s: Optional[float] = None
    """With --lockstep: checkpoint and stop each group after this many seconds; rerun to continue."""
    report_only: bool = False
    """Train nothing: write the reports from the runs already in --out."""
    gpu_plan: bool = False
    """Write --out/gpu_plan.sh (the GPU plan cut into 15-minute windows) and print it; trains nothing."""
    json: bool = False
    """Print the summary as one JSON object."""


@dataclasses.dataclass(frozen=True)
class DiffusionBoundCommand:
    """DIME's diffusion sampler on a 2-D Gaussian and a 3-mode mixture: entropy lower bound vs k-NN and the truth."""

    out: Path = Path("results/diffusion_bound")
    """Output folder for summary.json, report.md and figure.png."""
    steps: tuple[int, ...] = (4, 8, 16)
    """Diffusion steps compared."""
    iterations: int = 1500
    """Adam steps per (target, step count)."""
    seed: int = 0
    """Seed."""
    json: bool = False
    """Print the summary as one JSON object."""


def _diffusion_bound(args: DiffusionBoundCommand) -> None:
    from s2ac.experiments.diffusion_bound import BoundConfig, run_diffusion_bound

    cfg = BoundConfig(steps=tuple(args.steps), iterations=args.iterations, seed=args.seed)
    summary = run_diffusion_bound(args.out, cfg)
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, default=str))
    else:
        print((args.out / "report.md").read_text())


def _entropy_toy(args: EntropyToyCommand) -> None:
    from s2ac.experiments.entropy_toy import run_entropy_toy

    summary = run_entropy_toy(args.out, quick=args.quick, seed=args.seed)
    print(json.dumps(summary, indent=None if args.json else 2))


def _multigoal(args: MultigoalCommand) -> None:
    from s2ac.experiments.multigoal import run_multigoal

    summary = run_multigoal(args.out, args.full, args.seeds, list(args.algos), list(args.envs) or None)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"wrote {args.out / 'report.md'} ({summary['timing_s']['total']:.0f} s)")


def _step_rules(args: StepRulesCommand) -> None:
    from s2ac.experiments.step_rules import run_step_rules

    results = run_step_rules(args.out)
    print(json.dumps(results) if args.json else (args.out / "report.md").read_text())


def _entropy_check(args: EntropyCheckCommand) -> None:
    from s2ac.experiments.entropy_check import run_entropy_check

    summary = run_entropy_check(args.out, quick=args.quick)
    print(json.dumps(summary) if args.json else (args.out / "report.md").read_text())


def _runtime(args: RuntimeCommand) -> None:
    from s2ac.experiments.runtime import run_runtime

    results = run_runtime(args.out, quick=args.quick)
    print(json.dumps(results) if args.json else f"wrote {args.out / 'report.md'}")


@dataclasses.dataclass(frozen=True)
class TemperatureCommand:
    """S²AC with a fixed and with a tuned temperature (and SAC): returns and the entropy each reaches."""

    out: Path = Path("results/temperature")
    """Output folder: run folders, report.md and summary.json (a rerun continues cut-off runs)."""
    envs: tuple[str, ...] = ()
    """Tasks (multigoal runs at its harness's default budget); empty: Pendulum-v1,
    InvertedDoublePendulum-v5 and s2ac/MultiGoal3-v0 (``s2ac.experiments.temperature.DEFAULT_ENVS``)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds (one lockstep group per variant and task)."""
    steps: Optional[int] = None
    """Env steps of every Gymnasium task; default: 5k on Pendulum-v1, 10k on InvertedDoublePendulum-v5."""
    preset: str = "quick"
    """Preset of every variant."""
    variants: tuple[str, ...] = ()
    """Variants (``s2ac.experiments.temperature.VARIANTS``, e.g. 's2ac, eps as a schedule', the
    actor-gradient ablation); empty: SAC and S²AC with fixed and with tuned alpha (``DEFAULT_VARIANTS``)."""
    json: bool = False
    """Print the summary as one JSON object."""


def _temperature(args: TemperatureCommand) -> None:
    from s2ac.experiments.temperature import run_temperature

    summary = run_temperature(
        args.out, tuple(args.envs), tuple(args.seeds), args.preset, args.steps, variants=tuple(args.variants)
    )
    print(json.dumps(summary, default=str) if args.json else (args.out / "report.md").read_text())


def _peers(args: PeersCommand) -> None:
    from s2ac.experiments.peers import CPU_SUBSET, gpu_plan, run_peers

    if args.gpu_plan:
        args.out.mkdir(parents=True, exist_ok=True)
        script = gpu_plan(args.out, tuple(args.algos))
        (args.out / "gpu_plan.sh").write_text(script)
        print(script)
        return
    base = CPU_SUBSET
    plan = dataclasses.replace(
        base,
        envs=tuple(args.envs or base.envs),
        steps=args.steps or base.steps,
        seeds=tuple(args.seeds or base.seeds),
        preset=args.preset or base.preset,
    )
    if plan != base:
        plan = dataclasses.replace(plan, note="the envs, budget, seeds and preset given on the command line")
    summary = run_peers(args.out, plan, tuple(args.algos), args.lockstep, args.stop_after_s, args.report_only)
    print(json.dumps(summary, default=str) if args.json else (args.out / "peers.md").read_text())


def _mujoco(args: MujocoCommand) -> None:
    from s2ac.experiments.mujoco import run_mujoco

    summary = run_mujoco(
        args.out,
        args.envs,
        args.algos,
        args.steps,
        args.seeds,
        args.presets,
        args.address,
        args.cpus_per_trial,
        lockstep=args.lockstep,
        stop_after_s=args.stop_after_s,
        report_only=args.report_only,
    )
    print(json.dumps(summary, default=str) if args.json else f"wrote {args.out / 'report.md'}")


def _sbx_compare(args: Any) -> None:
    from s2ac.experiments.sbx_compare import run_sbx_compare

    summary = run_sbx_compare(args, command="s2ac reproduce sbx-compare " + " ".join(sys.argv[3:]))
    print(json.dumps(summary, default=str) if args.json else f"wrote {args.out / 'report.md'}")


EXPERIMENTS: dict[str, tuple[type, Callable[[Any], None]]] = {
    "entropy-toy": (EntropyToyCommand, _entropy_toy),
    "multigoal": (MultigoalCommand, _multigoal),
    "runtime": (RuntimeCommand, _runtime),
    "mujoco": (MujocoCommand, _mujoco),
    "peers": (PeersCommand, _peers),
    "step-rules": (StepRulesCommand, _step_rules),
    "entropy-check": (EntropyCheckCommand, _entropy_check),
    "temperature": (TemperatureCommand, _temperature),
    "diffusion-bound": (DiffusionBoundCommand, _diffusion_bound),
    "sbx-compare": (SBXCompareConfig, _sbx_compare),
}
"""``s2ac reproduce NAME``: the options dataclass (its docstring is the experiment's summary in
``s2ac --help``) and the function that runs it."""


def cmd_reproduce(argv: list[str]) -> int:
    if not argv or argv[0] not in EXPERIMENTS:
        raise SystemExit(f"usage: s2ac reproduce {{{','.join(EXPERIMENTS)}}} [options]\n\n{_experiments_usage()}")
    options, run = EXPERIMENTS[argv[0]]
    tyro = _tyro()
    run(tyro.cli(options, args=argv[1:], prog=f"s2ac reproduce {argv[0]}", description=options.__doc__))
    return 0


def cmd_sweep(argv: list[str]) -> int:
    """Grid of (algorithm x env x seed x preset) training runs on Ray; rerunning resumes unfinished trials."""
    from s2ac.sweep import SweepConfig, run_sweep

    tyro = _tyro()
    config = tyro.cli(SweepConfig, args=argv, prog="s2ac sweep", description=cmd_sweep.__doc__)
    summary = run_sweep(config)
    print(json.dumps(summary, indent=2, default=str))
    return 0 if not summary["counts"].get("failed") else 1


HANDLERS = {
    "train": cmd_train,
    "eval": cmd_eval,
    "plot": cmd_plot,
    "bench": cmd_bench,
    "reproduce": cmd_reproduce,
    "sweep": cmd_sweep,
}


def _interrupted_exit(code: int, program: bool) -> int:
    """``code``; but the program exits here, at once after a signal (the interpreter's shutdown can
    crash after an interrupted XLA compilation; the run folder's lock and files are settled by then),
    else after the exit functions (locks not yet released, libraries' clean-up) under handlers that
    answer a signal by exiting with ``code``: the work is done and written, and Python's own shutdown,
    which JAX makes take seconds, would restore the default handlers and let a late SIGTERM kill it."""
    if not program:
        return code
    if code not in (errors.EXIT_INTERRUPTED, errors.EXIT_TERMINATED):

        def finished(signum, frame):
            _exit_now(code)

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, finished)
        atexit._run_exitfuncs()
    _exit_now(code)
    return code  # not reached


def _exit_now(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run ``s2ac [--debug] COMMAND ...``; a failure ends as one line on stderr and an exit code of
    :data:`s2ac.errors.EXIT_CODES` (with ``--debug`` or ``S2AC_DEBUG=1``: the traceback instead)."""
    program = argv is None  # run as the s2ac program (not called from Python)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("S2AC_DEBUG", "") not in ("", "0")
    while argv and argv[0] == "--debug":
        debug, argv = True, argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print(f"{_usage()}\n\n  --debug    show tracebacks (also S2AC_DEBUG=1)\n\n{errors.exit_codes_help()}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in HANDLERS:
        print(f"error: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return errors.EXIT_USAGE
    saved_debug = os.environ.get("S2AC_DEBUG")
    if debug:
        os.environ["S2AC_DEBUG"] = "1"  # for what reads it below (e.g. whether Ray may log), until the end
    with warnings.catch_warnings(), interrupts.StartUp():  # SIGTERM ends start-up as Ctrl-C does
        if not debug:  # a warning is one line too, without the source line that raised it

            def show(message, category, filename, lineno, file=None, line=None):
                print(errors.warning_line(message, category), file=file or sys.stderr)

            warnings.showwarning = show
        try:
            code = HANDLERS[command](rest) or 0
            interrupts.raise_pending()  # a signal whose exception a callback swallowed still ends the command
        except SystemExit as stop:
            if not isinstance(stop.code, str):  # argument parsers print their own usage
                raise
            print(stop.code, file=sys.stderr)
            raise errors.UsageExit(stop.code) from None
        except BaseException as err:
            if isinstance(err, KeyboardInterrupt):
                interrupts.acknowledge()
            if debug or not isinstance(err, Exception | KeyboardInterrupt):
                raise
            print(errors.one_line(err), file=sys.stderr)
            code = errors.exit_code(err)
        finally:
            if saved_debug is None:
                os.environ.pop("S2AC_DEBUG", None)
            else:
                os.environ["S2AC_DEBUG"] = saved_debug
    return _interrupted_exit(code, program)


if __name__ == "__main__":
    sys.exit(main())
