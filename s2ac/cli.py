"""Command line: ``s2ac train | eval | bench | reproduce | sweep``.

``s2ac train`` is parsed in two stages: ``--algo``, ``--preset`` and ``--env`` pick the
preset, whose full agent and training configs then become the defaults of every
``--agent.*`` and ``--train.*`` flag (see ``s2ac train --help``).
"""

from __future__ import annotations

import _thread
import argparse
import dataclasses
import json
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Literal, Optional

import tyro

from s2ac import errors
from s2ac.agents import ALGOS, config_class, make_agent_config
from s2ac.config import PRESETS, TrainConfig, make_train_config

COMMANDS = {
    "train": "train an agent (progress bar, metrics, checkpoints, plots)",
    "eval": "evaluate the latest checkpoint of a run folder",
    "bench": "benchmark the update (ms, FLOPs, GFLOP/s vs a dense matmul) or acting (env steps/s)",
    "reproduce": "reproduce an experiment: entropy-toy, multigoal, runtime, mujoco, step-rules",
    "sweep": "a grid of (algorithm x env x seed x preset) runs on Ray, or as lockstep groups; rerun to resume",
}


def _usage() -> str:
    lines = ["usage: s2ac COMMAND [options]   (s2ac COMMAND --help for details)", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


# -- train ---------------------------------------------------------------------------


def _preparse_train(argv: list[str]) -> argparse.Namespace:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--algo", default="s2ac")
    pre.add_argument("--preset", default="corrected")
    pre.add_argument("--env", default="s2ac/MultiGoal3-v0")
    pre.add_argument("--act-with", choices=("svgd", "amortized"), default=None)
    known, _ = pre.parse_known_args(argv)
    if known.act_with == "amortized":  # S²AC acting through its amortized sampler
        if known.algo not in ("s2ac", "s2ac-amortized"):
            raise SystemExit("error: --act-with amortized needs --algo s2ac")
        known.algo = "s2ac-amortized"
    if known.algo not in ALGOS:
        raise SystemExit(f"error: unknown --algo {known.algo!r}; choose from {', '.join(ALGOS)}")
    if known.preset not in PRESETS:
        raise SystemExit(f"error: unknown --preset {known.preset!r}; choose from {', '.join(PRESETS)}")
    return known


def _train_command_type(agent_cls: type) -> type:
    """A dataclass for tyro whose ``agent`` field has the concrete config class of the algo."""
    return dataclasses.make_dataclass(
        "TrainCommand",
        [
            ("algo", Literal[ALGOS], dataclasses.field(default="s2ac")),  # type: ignore[valid-type]
            ("env", str, dataclasses.field(default="s2ac/MultiGoal3-v0")),
            ("preset", Literal[PRESETS], dataclasses.field(default="corrected")),  # type: ignore[valid-type]
            ("total_steps", Optional[int], dataclasses.field(default=None)),
            ("seed", Optional[int], dataclasses.field(default=None)),
            ("out", Optional[Path], dataclasses.field(default=None)),
            ("resume", bool, dataclasses.field(default=False)),
            ("progress", bool, dataclasses.field(default=True)),
            ("plots", bool, dataclasses.field(default=True)),
            ("agent", agent_cls, dataclasses.field(default=None)),
            ("train", TrainConfig, dataclasses.field(default=None)),
        ],
        frozen=True,
    )


def _drop_flag(argv: list[str], flag: str) -> list[str]:
    """``argv`` without ``flag VALUE`` / ``flag=VALUE`` (flags consumed by the first parsing stage)."""
    out, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg == flag:
            skip = i + 1 < len(argv)
        elif not arg.startswith(flag + "="):
            out.append(arg)
    return out


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


def cmd_train(argv: list[str]) -> int:
    """Train an agent: ``s2ac train --algo ALGO --env ID --preset P --total-steps N --seed S --out DIR``."""
    from s2ac.loop import Trainer

    known = _preparse_train(argv)
    agent_default = make_agent_config(known.algo, known.preset, known.env)
    train_default = make_train_config(known.preset, known.env)
    command_type = _train_command_type(config_class(known.algo))
    default = command_type(
        algo=known.algo, env=known.env, preset=known.preset, agent=agent_default, train=train_default
    )
    argv = _drop_flag(argv, "--act-with")
    if known.algo == "s2ac-amortized":
        argv = _drop_flag(argv, "--algo")
    args = tyro.cli(command_type, default=default, args=argv, prog="s2ac train", description=cmd_train.__doc__)
    train_cfg = dataclasses.replace(args.train, env_id=args.env)
    if args.total_steps is not None:
        train_cfg = dataclasses.replace(train_cfg, total_steps=args.total_steps)
    if args.seed is not None:
        train_cfg = dataclasses.replace(train_cfg, seed=args.seed)
    out = args.out or Path("runs") / f"{args.algo}-{args.env.replace('/', '_')}-seed{train_cfg.seed}"
    trainer = Trainer(args.algo, args.agent, train_cfg, out, resume=args.resume, progress=args.progress)
    try:
        result = trainer.run()
    except KeyboardInterrupt:
        print(f"\ninterrupted; resume with: s2ac train {' '.join(argv)} --resume", file=sys.stderr)
        return 130
    if args.plots:
        result["figures"] = [str(p) for p in _run_figures(trainer, out)]
    result["final_eval"] = {k: v for k, v in trainer.evaluate().items() if isinstance(v, float)}
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
    json: bool = False
    """Print a JSON object only."""


def cmd_eval(argv: list[str]) -> int:
    from s2ac.api import Algorithm
    from s2ac.envs import make_env
    from s2ac.evaluate import GymEpisodes, evaluation_seeds, run_episodes

    args = tyro.cli(EvalCommand, args=argv, prog="s2ac eval")
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1; got {args.episodes}")
    model = Algorithm.load(args.run_dir)
    env_id = args.env or model.env_id
    out: dict = {"run_dir": str(args.run_dir), "env": env_id}
    for mode, deterministic in (("deterministic", True), ("stochastic", False)):
        episodes = GymEpisodes([make_env(env_id) for _ in range(args.episodes)], evaluation_seeds(0, args.episodes))
        stats = run_episodes(episodes, lambda obs, t, d=deterministic: model.predict(obs, deterministic=d)[0])
        out[mode] = stats.summary(prefix="")
    print(json.dumps(out, indent=None if args.json else 2))
    return 0


# -- bench ---------------------------------------------------------------------------


def cmd_bench(argv: list[str]) -> int:
    from s2ac.bench import BenchAct, BenchUpdate, run_bench_act, run_bench_update

    if not argv or argv[0] not in ("update", "act"):
        raise SystemExit("usage: s2ac bench {update,act} [options] [--json]  (see s2ac bench update --help)")
    if argv[0] == "update":
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
    Default: small networks, 10k env steps, the 3-goal env (about 15 minutes on 2 CPU cores)."""
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


def cmd_reproduce(argv: list[str]) -> int:
    experiments = {
        "entropy-toy": EntropyToyCommand,
        "multigoal": MultigoalCommand,
        "runtime": RuntimeCommand,
        "mujoco": MujocoCommand,
        "step-rules": StepRulesCommand,
    }
    if not argv or argv[0] not in experiments:
        raise SystemExit(f"usage: s2ac reproduce {{{','.join(experiments)}}} [options]")
    name, rest = argv[0], argv[1:]
    if name == "entropy-toy":
        from s2ac.experiments.entropy_toy import run_entropy_toy

        args = tyro.cli(EntropyToyCommand, args=rest, prog="s2ac reproduce entropy-toy")
        summary = run_entropy_toy(args.out, quick=args.quick, seed=args.seed)
        print(json.dumps(summary, indent=None if args.json else 2))
    if name == "multigoal":
        from s2ac.experiments.multigoal import run_multigoal

        args = tyro.cli(MultigoalCommand, args=rest, prog="s2ac reproduce multigoal")
        summary = run_multigoal(args.out, args.full, args.seeds, list(args.algos), list(args.envs) or None)
        if args.json:
            print(json.dumps(summary))
        else:
            print(f"wrote {args.out / 'report.md'} ({summary['timing_s']['total']:.0f} s)")
    if name == "step-rules":
        from s2ac.experiments.step_rules import run_step_rules

        args = tyro.cli(StepRulesCommand, args=rest, prog="s2ac reproduce step-rules")
        results = run_step_rules(args.out)
        print(json.dumps(results) if args.json else (args.out / "report.md").read_text())
    if name == "runtime":
        from s2ac.experiments.runtime import run_runtime

        args = tyro.cli(RuntimeCommand, args=rest, prog="s2ac reproduce runtime")
        results = run_runtime(args.out, quick=args.quick)
        print(json.dumps(results) if args.json else f"wrote {args.out / 'report.md'}")
    if name == "mujoco":
        from s2ac.experiments.mujoco import run_mujoco

        args = tyro.cli(MujocoCommand, args=rest, prog="s2ac reproduce mujoco")
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
    return 0


def cmd_sweep(argv: list[str]) -> int:
    """Grid of (algorithm x env x seed x preset) training runs on Ray; rerunning resumes unfinished trials."""
    from s2ac.sweep import SweepConfig, run_sweep

    config = tyro.cli(SweepConfig, args=argv, prog="s2ac sweep", description=cmd_sweep.__doc__)
    summary = run_sweep(config)
    print(json.dumps(summary, indent=2, default=str))
    return 0 if not summary["counts"].get("failed") else 1


HANDLERS = {"train": cmd_train, "eval": cmd_eval, "bench": cmd_bench, "reproduce": cmd_reproduce, "sweep": cmd_sweep}


def _interrupted_exit(code: int, program: bool) -> int:
    """``code``; but a program interrupted by Ctrl-C exits at once: the interpreter's normal shutdown can
    crash after an interrupted XLA compilation (the run folder's lock and files are settled by then)."""
    if program and code == errors.EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


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
    unraisable, alarm = sys.unraisablehook, signal.getsignal(signal.SIGALRM)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    def redeliver(info):
        # Ctrl-C inside a callback (e.g. a garbage-collector hook) would be swallowed: raise it again
        # shortly, from outside this hook, so the command stops.
        if info.exc_type is not KeyboardInterrupt:
            return unraisable(info)
        try:
            signal.signal(signal.SIGALRM, interrupt)
            signal.setitimer(signal.ITIMER_REAL, 0.05)
        except ValueError:  # not the main thread: interrupt it directly
            _thread.interrupt_main()

    sys.unraisablehook = redeliver
    with warnings.catch_warnings():
        if not debug:  # a warning is one line too, without the source line that raised it

            def show(message, category, filename, lineno, file=None, line=None):
                print(errors.warning_line(message, category), file=file or sys.stderr)

            warnings.showwarning = show
        try:
            return _interrupted_exit(HANDLERS[command](rest) or 0, program)
        except SystemExit as stop:
            if not isinstance(stop.code, str):  # argument parsers print their own usage
                raise
            print(stop.code, file=sys.stderr)
            raise errors.UsageExit(stop.code) from None
        except BaseException as err:
            if debug or not isinstance(err, Exception | KeyboardInterrupt):
                raise
            print(errors.one_line(err), file=sys.stderr)
            return _interrupted_exit(errors.exit_code(err), program)
        finally:
            sys.unraisablehook = unraisable
            if signal.getsignal(signal.SIGALRM) is interrupt:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, alarm)


if __name__ == "__main__":
    sys.exit(main())
