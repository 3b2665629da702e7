"""Multi-seed sweeps on Ray Tune: every trial is one ordinary training run (:class:`s2ac.loop.Trainer`).

Layout of a sweep folder ``out``::

    out/{algo}/{env_id with / as _}/{preset}/seed{seed}/   # a normal run folder (config.json, metrics.jsonl, ...)
    out/ledger.jsonl                                        # append-only record of what ran
    out/ray/                                                # Ray Tune's own results

The run folders are the source of truth for resuming: a trial whose folder holds a valid
checkpoint is resumed from it, and one whose checkpoint already reached ``total_steps`` is
skipped before any Ray work is started. So a sweep that was interrupted (killed driver, lost
node) is continued by running the same command again. The ledger only records events
(``started``, ``finished``, ``stopped`` (a lockstep group's time limit), ``failed``, ``skipped``),
one JSON line each. With ``lockstep`` the trials run in this process as vmapped groups
(:class:`s2ac.loop.TrainingLoop` with several members) rather than on Ray.

Threads: each trial reserves ``cpus_per_trial`` CPUs in Ray and its XLA runtime is limited to
that many threads through ``XLA_FLAGS`` (set for the Ray workers with ``runtime_env`` so they are
in place before JAX is imported), so that trials packed side by side do not oversubscribe cores.

Clusters: with ``address`` the sweep joins a running Ray cluster (a head started with
``ray start --head``). Ray's token authentication is honoured as :func:`ray_auth_setup` describes;
an address where nothing listens or where a service other than a Ray head answers (:func:`probe_address`),
or a cluster that refuses this driver, raises
:class:`ClusterConnectionError` with what to check. Ray itself is the ``s2ac[sweep]`` extra
(:func:`require_ray`); lockstep sweeps do not need it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LEDGER_FILE = "ledger.jsonl"
RAY_DIR = "ray"
PRESET_SEPARATOR = ":"
EVAL_PREFIX = "eval/"
PROBE_TIMEOUT_S = 5.0
"""Seconds to wait for a TCP connection to ``address`` before calling it unreachable."""
DEFAULT_TOKEN_PATH = Path("~/.ray/auth_token")
"""Where ``ray start --head`` and ``ray get-auth-token --generate`` keep the cluster token."""


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep runs and where."""

    algos: tuple[str, ...] = ("sac",)
    """Algorithms (``s2ac.agents.ALGOS``). ``"algo:preset"`` pins a preset for that entry; a plain name
    runs under every preset of ``presets``."""
    envs: tuple[str, ...] = ("Hopper-v5",)
    """Gymnasium env ids."""
    seeds: tuple[int, ...] = (0,)
    """Seeds; each is a separate trial."""
    presets: tuple[str, ...] = ("corrected",)
    """Presets (``paper``, ``corrected``, ``quick``) for the algorithms listed without one."""
    total_steps: int | None = None
    """Env steps per trial; None keeps the preset's default."""
    out: Path = Path("results/sweep")
    """Sweep folder: trial folders, ``ledger.jsonl`` and Ray's results under ``ray/``."""
    address: str | None = None
    """Ray cluster address (``"auto"``, ``"ray://host:10001"``, ...); None starts a local Ray on this
    machine's cores. On a cluster ``out`` must be on a file system every node sees."""
    ray_auth_token_file: Path | None = None
    """File holding the cluster's Ray auth token (a copy of the head's ``~/.ray/auth_token``), for a
    cluster with token authentication; None uses ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH`` or
    ``~/.ray/auth_token`` when one is there."""
    cpus_per_trial: int = 1
    """CPUs Ray reserves for each trial, and the XLA thread count inside it."""
    train_overrides: tuple[tuple[str, Any], ...] = ()
    """``(field, value)`` pairs replacing :class:`s2ac.config.TrainConfig` fields of every trial
    (e.g. ``(("eval_freq", 10_000), ("eval_episodes", 10))``); a dict is accepted and converted."""
    tensorboard: bool = True
    """Also write TensorBoard events in each trial folder."""
    lockstep: bool = False
    """Run the trials in this process, those of one algorithm, preset and env shape together as one
    :class:`s2ac.loop.TrainingLoop` group (one vmapped update for all: the way to fill a GPU),
    instead of as separate Ray trials (the better choice on CPU cores)."""
    stop_after_s: float | None = None
    """With ``lockstep``: checkpoint and stop each group after this many seconds (a later run resumes)."""

    def __post_init__(self) -> None:
        # Accept lists and dicts from callers; store hashable tuples (the dataclass is frozen).
        overrides = self.train_overrides
        if isinstance(overrides, dict):
            overrides = tuple(overrides.items())
        object.__setattr__(self, "train_overrides", tuple(tuple(pair) for pair in overrides))
        for name in ("algos", "envs", "seeds", "presets"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "out", Path(self.out))
        if self.ray_auth_token_file is not None:
            object.__setattr__(self, "ray_auth_token_file", Path(self.ray_auth_token_file))

    def validate(self) -> None:
        """Raise ``ValueError`` for unknown algorithms/presets, empty axes or bad counts."""
        from s2ac.agents import ALGOS, algo_spec
        from s2ac.config import PRESETS, TrainConfig

        for algo, preset in algo_presets(self):
            if algo not in ALGOS:
                raise ValueError(f"unknown algo {algo!r}; expected one of {ALGOS}")
            if preset not in PRESETS:
                raise ValueError(f"unknown preset {preset!r}; expected one of {PRESETS}")
            algo_spec(algo).check_extra()  # fail before any trial runs, not in every trial
        if not (self.envs and self.seeds and self.algos):
            raise ValueError("a sweep needs at least one algo, env and seed")
        if self.cpus_per_trial < 1:
            raise ValueError(f"cpus_per_trial must be >= 1; got {self.cpus_per_trial}")
        if self.stop_after_s is not None and not (self.stop_after_s > 0 and self.stop_after_s != float("inf")):
            raise ValueError(f"stop_after_s must be a positive number of seconds; got {self.stop_after_s}")
        if self.stop_after_s is not None and not self.lockstep:
            raise ValueError("stop_after_s applies to lockstep groups only; add lockstep (--lockstep)")
        if self.ray_auth_token_file is not None and self.address is None:
            raise ValueError("ray_auth_token_file is for joining a cluster; give its address (--address)")
        if self.total_steps is not None and self.total_steps < 1:
            raise ValueError(f"total_steps must be >= 1 or None; got {self.total_steps}")
        known = set(TrainConfig.__dataclass_fields__)
        for name, _ in self.train_overrides:
            if name not in known or name in ("env_id", "seed"):
                raise ValueError(f"train_overrides: {name!r} is not an overridable TrainConfig field")


@dataclass(frozen=True)
class TrialSpec:
    """One training run of a sweep (plain data, so Ray can ship it to a worker)."""

    algo: str
    preset: str
    env_id: str
    seed: int
    total_steps: int | None
    run_dir: str
    ledger: str
    overrides: tuple[tuple[str, Any], ...] = field(default=())
    tensorboard: bool = True

    @property
    def trial_id(self) -> str:
        return trial_id(self.algo, self.env_id, self.preset, self.seed)


# -- trial specs and configs -------------------------------------------------------------


def env_slug(env_id: str) -> str:
    """``env_id`` as one folder name."""
    return env_id.replace("/", "_")


def trial_id(algo: str, env_id: str, preset: str, seed: int) -> str:
    """Id of a trial, also its folder relative to the sweep folder."""
    return f"{algo}/{env_slug(env_id)}/{preset}/seed{seed}"


def algo_presets(cfg: SweepConfig) -> list[tuple[str, str]]:
    """``(algo, preset)`` pairs: ``"algo:preset"`` entries pinned, plain names under every preset."""
    pairs: list[tuple[str, str]] = []
    for entry in cfg.algos:
        if PRESET_SEPARATOR in entry:
            algo, preset = entry.split(PRESET_SEPARATOR, 1)
            pairs.append((algo, preset))
        else:
            pairs.extend((entry, preset) for preset in cfg.presets)
    return list(dict.fromkeys(pairs))  # drop duplicates, keep order


def trial_specs(cfg: SweepConfig) -> list[TrialSpec]:
    """Every trial of the sweep, in a stable order (algo/preset, env, seed)."""
    out = cfg.out.resolve()  # absolute: Tune runs trials in other working directories
    return [
        TrialSpec(
            algo=algo,
            preset=preset,
            env_id=env_id,
            seed=seed,
            total_steps=cfg.total_steps,
            run_dir=str(out / trial_id(algo, env_id, preset, seed)),
            ledger=str(out / LEDGER_FILE),
            overrides=cfg.train_overrides,
            tensorboard=cfg.tensorboard,
        )
        for algo, preset in algo_presets(cfg)
        for env_id in cfg.envs
        for seed in cfg.seeds
    ]


def trial_configs(spec: TrialSpec):
    """``(agent_config, train_config)`` of a trial; resuming needs exactly these again."""
    from s2ac.agents import algo_train_fields, make_agent_config
    from s2ac.config import make_train_config

    overrides = {**algo_train_fields(spec.algo, spec.preset, spec.env_id), **dict(spec.overrides)}
    overrides["seed"] = spec.seed
    if spec.total_steps is not None:
        overrides["total_steps"] = spec.total_steps
    return make_agent_config(spec.algo, spec.preset, spec.env_id), make_train_config(
        spec.preset, spec.env_id, **overrides
    )


def checkpoint_steps(run_dir: str | Path) -> int | None:
    """Env steps of the newest valid checkpoint in ``run_dir``, or None without one."""
    from s2ac import checkpoint as ckpt

    path = ckpt.latest_valid_checkpoint(Path(run_dir) / "checkpoints")
    if path is None:
        return None
    return int(ckpt.load_trainer_state(path)["counters"]["env_steps"])


def target_steps(spec: TrialSpec) -> int:
    """``total_steps`` the trial trains to (the preset's default when the sweep gives none)."""
    return trial_configs(spec)[1].total_steps


# -- ledger ------------------------------------------------------------------------------


def append_ledger(path: str | Path, trial: str, status: str, **fields: Any) -> None:
    """Append one event line; a single ``write`` of one short line in append mode, so concurrent
    trials on one file system do not interleave their lines."""
    row = {"time": time.time(), "trial": trial, "status": status, "host": socket.gethostname()}
    row.update(fields)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(row, default=str) + "\n")


def device_description() -> str:
    """Where this process computes: JAX's devices (``gpu:NVIDIA H200``, ``cpu:cpu``) and the core count."""
    import jax

    kinds = sorted({f"{d.platform}:{d.device_kind}" for d in jax.devices()})
    return f"{', '.join(kinds)}; {os.cpu_count()} cores"


def read_ledger(out: str | Path) -> list[dict]:
    """All events of a sweep's ledger, oldest first (empty if none)."""
    path = Path(out) / LEDGER_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


OUTCOMES = ("finished", "stopped", "failed")
"""Ledger statuses that end a session of a trial (``started`` opens one; ``skipped`` is a re-check)."""


def ledger_events(out: str | Path) -> dict[str, list[dict]]:
    """Every ledger event of each trial id, oldest first."""
    events: dict[str, list[dict]] = {}
    for row in read_ledger(out):
        events.setdefault(row["trial"], []).append(row)
    return events


def latest_outcome(events: list[dict]) -> dict:
    """A trial's latest ending event (a later ``skipped`` re-check does not hide the ``finished``
    before it); its latest event when no session has ended yet."""
    return ([r for r in events if r["status"] in OUTCOMES] or events)[-1]


# -- one trial -----------------------------------------------------------------------------


def thread_env_vars(cpus: int) -> dict[str, str]:
    """Environment that limits a trial's XLA (and BLAS/OpenMP) threads.

    One CPU: Eigen's multi-threading is switched off so the trial stays on its core. More CPUs: XLA
    may use ``cpus`` intra-op threads. Measured on a 2-core machine (SAC, Hopper): two 1-CPU trials
    side by side gave about 1.3x the total env steps/s of one trial.
    """
    eigen = "--xla_cpu_multi_thread_eigen=false " if cpus == 1 else ""
    flags = f"{os.environ.get('XLA_FLAGS', '')} {eigen}intra_op_parallelism_threads={cpus}".strip()  # keep the user's
    return {"XLA_FLAGS": flags, "OMP_NUM_THREADS": str(cpus), "MKL_NUM_THREADS": str(cpus)}


def record_start(spec: TrialSpec, steps: int | None, **fields: Any) -> None:
    """Write a ``started`` ledger event for ``spec``: env steps it starts from and the device it runs on."""
    append_ledger(spec.ledger, spec.trial_id, "started", env_steps=steps or 0, device=device_description(), **fields)


def status_counts(rows: list[dict]) -> dict[str, int]:
    """How many trial rows have each ``status``."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def record_failure(spec: TrialSpec, err: Exception, wall: float) -> dict[str, Any]:
    """Write a ``failed`` ledger event for ``spec`` (message and traceback); return its result row."""
    message = f"{type(err).__name__}: {err}"
    append_ledger(
        spec.ledger,
        spec.trial_id,
        "failed",
        env_steps=checkpoint_steps(spec.run_dir) or 0,
        wall_s=wall,
        error=message,
        traceback=traceback.format_exc(limit=5),
    )
    return {"trial": spec.trial_id, "status": "failed", "error": message, "wall_s": wall}


def run_trial(spec: TrialSpec) -> dict[str, Any]:
    """Train (or resume) one trial and record it in the ledger; never raises for a failed run."""
    from s2ac.loop import Trainer

    start = time.perf_counter()
    steps = checkpoint_steps(spec.run_dir)
    record_start(spec, steps, resumed=steps is not None)
    try:
        agent_config, train_config = trial_configs(spec)
        trainer = Trainer(
            spec.algo,
            agent_config,
            train_config,
            spec.run_dir,
            resume=steps is not None,
            progress=False,
            tensorboard=spec.tensorboard,
        )
        result = trainer.run()
    except Exception as err:  # a failed trial must not stop the others; the ledger keeps why
        return record_failure(spec, err, time.perf_counter() - start)
    wall = time.perf_counter() - start
    append_ledger(spec.ledger, spec.trial_id, "finished", env_steps=result["env_steps"], wall_s=wall)
    return {"trial": spec.trial_id, "status": "finished", "env_steps": result["env_steps"], "wall_s": wall}


def _tune_trainable(config: dict) -> None:
    """Ray Tune function trainable: one trial per call."""
    from ray import tune

    spec = TrialSpec(**config["trial"])
    for key, value in thread_env_vars(config["cpus_per_trial"]).items():
        # Already set by the job's runtime_env; this covers a Ray started by the caller.
        os.environ.setdefault(key, value)
    tune.report(run_trial(spec))


# -- the sweep -----------------------------------------------------------------------------


def _split_pending(cfg: SweepConfig) -> tuple[list[TrialSpec], list[TrialSpec]]:
    """Trials still to run, and those whose checkpoint already reached their total steps."""
    pending, done = [], []
    for spec in trial_specs(cfg):
        steps = checkpoint_steps(spec.run_dir)
        (done if steps is not None and steps >= target_steps(spec) else pending).append(spec)
    return pending, done


class ClusterConnectionError(ConnectionError, ValueError):
    """The Ray cluster at ``address`` could not be reached or refused this driver.

    Also a ``ValueError``, so the command line reports it as one ``error:`` line.
    """


def _quiet_ray() -> bool:
    """Ray's start-up INFO/WARNING lines (Python and C++) only with --debug (S2AC_DEBUG=1); the C++
    level is read when Ray is imported, so this comes first. Returns whether Ray is to be quiet."""
    quiet = os.environ.get("S2AC_DEBUG", "") in ("", "0")
    if quiet:
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
    return quiet


def require_ray() -> None:
    """Raise :class:`s2ac.extras.MissingExtraError` unless Ray Tune (the ``s2ac[sweep]`` extra) imports."""
    from s2ac.extras import MissingExtraError, require_extra

    _quiet_ray()
    try:
        require_extra("ray.tune", "sweep", "s2ac sweep", package="Ray Tune")
    except MissingExtraError as err:
        raise MissingExtraError(f"{err} (or run the trials in this process with --lockstep)", name=err.name) from err


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``"host:port"`` or ``"ray://host:port"``; None for ``"auto"`` and other forms."""
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
"""HTTP/2's client connection preface followed by an empty SETTINGS frame (RFC 9113 §3.4, §6.5):
what a gRPC client sends first. A Ray head (GCS, or the Ray client server behind ``ray://``) speaks
gRPC, so it answers with a SETTINGS frame of its own: frame type 4, the fourth byte of its header."""


def _foreign_service(conn: socket.socket, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """What a service that is not a gRPC server replied to :data:`HTTP2_PREFACE` (or that it closed
    the connection); None when it answered as a gRPC server does, or said nothing within ``timeout_s``
    (then Ray's own connect decides)."""
    try:
        conn.settimeout(timeout_s)
        conn.sendall(HTTP2_PREFACE)
        reply = conn.recv(64)
    except TimeoutError:
        return None
    except OSError as err:
        return f"closed the connection ({err})"
    if not reply:
        return "closed the connection without a reply"
    if len(reply) >= 4 and reply[3] == 4:  # a SETTINGS frame: HTTP/2, as gRPC
        return None
    text = reply.decode("ascii", "replace").splitlines()[0][:40]
    return f"replied {text!r}"


def probe_address(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise :class:`ClusterConnectionError` at once if nothing accepts a TCP connection at ``address``,
    or if what accepts it is not a gRPC server (a web server, say, on a mistyped port).

    Ray's own connect retries for minutes before it fails, printing its C++ client's warnings; a
    closed port is told apart in milliseconds, an unroutable host in ``timeout_s``. The gRPC check
    is skipped under ``RAY_USE_TLS`` (a TLS server answers the plain preface with an alert).
    """
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout_s) as conn:
            use_tls = os.environ.get("RAY_USE_TLS", "0").lower() not in ("0", "", "false")
            foreign = None if use_tls else _foreign_service(conn, timeout_s)
    except OSError as err:
        raise ClusterConnectionError(
            f"could not reach a Ray cluster at {address}: nothing accepted a connection there ({err}). Start the "
            f"head with `ray start --head --port {target[1]} --node-ip-address HOST` and pass --address HOST:"
            f"{target[1]} with the HOST it was started on (`ray status` on the head prints it)"
        ) from None
    if foreign is not None:
        raise ClusterConnectionError(
            f"{target[0]}:{target[1]} is not a Ray cluster: the service there {foreign}, where a Ray head answers "
            f"in gRPC. Check the port: `ray start --head` prints the address to pass (GCS port 6379 by default, "
            f"ray://HOST:10001 for the Ray client)"
        )


def _token_available() -> bool:
    """Whether Ray would find an auth token: ``RAY_AUTH_TOKEN``, the ``RAY_AUTH_TOKEN_PATH`` file or
    ``~/.ray/auth_token`` (the order of Ray's token loader)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or DEFAULT_TOKEN_PATH).expanduser()
    return path.is_file() and path.stat().st_size > 0


def ray_auth_setup(token_file: Path | None) -> dict[str, str]:
    """Set this process's environment so that Ray sends the cluster's auth token; return what was set.

    Ray 2.60's token authentication: a head started by ``ray start --head`` runs with
    ``RAY_AUTH_MODE=token`` when a token exists on it (``~/.ray/auth_token``, ``RAY_AUTH_TOKEN_PATH``
    or ``RAY_AUTH_TOKEN``), and then refuses drivers that do not send it. ``ray.init`` with an
    explicit address never switches token mode on by itself, so a driver with the token at hand
    would still be refused. Here:

    * ``token_file`` given: ``RAY_AUTH_TOKEN_PATH`` points at it, and ``RAY_AUTH_MODE`` becomes
      ``token`` unless it is set;
    * otherwise, ``RAY_AUTH_MODE`` unset and a token available: ``RAY_AUTH_MODE=token``;
    * ``RAY_AUTH_MODE`` set (``token`` or ``disabled``): left as it is.

    A driver in token mode also joins a head without authentication, so switching it on is safe.
    Ray reads these variables into a cached config at import, which is refreshed here as Ray's own
    ``ray start`` does when it switches token mode on.
    """
    changed: dict[str, str] = {}
    if token_file is not None:
        path = Path(token_file).expanduser().resolve()
        if not (path.is_file() and path.stat().st_size > 0):
            raise ValueError(f"ray_auth_token_file {path} is missing or empty")
        changed["RAY_AUTH_TOKEN_PATH"] = str(path)
    if "RAY_AUTH_MODE" not in os.environ and (token_file is not None or _token_available()):
        changed["RAY_AUTH_MODE"] = "token"
    if changed:
        os.environ.update(changed)
        try:
            from ray._raylet import AuthenticationTokenLoader, Config

            Config.initialize("")
            AuthenticationTokenLoader.instance().reset_cache()
        except (ImportError, AttributeError):  # a Ray without token authentication reads nothing of this
            pass
    return changed


def _connect_error(address: str) -> ClusterConnectionError:
    """Why joining the cluster at ``address`` may have failed, and what to set."""
    mode = os.environ.get("RAY_AUTH_MODE", "unset")
    token = os.environ.get("RAY_AUTH_TOKEN_PATH") or ("RAY_AUTH_TOKEN" if os.environ.get("RAY_AUTH_TOKEN") else None)
    if token is None and _token_available():
        token = str(DEFAULT_TOKEN_PATH)
    return ClusterConnectionError(
        f"could not connect to the Ray cluster at {address} (something listens there, but Ray refused or timed "
        f"out; here RAY_AUTH_MODE={mode}, token: {token or 'none'}). Check: the head's auth token (its "
        f"~/.ray/auth_token) passed with --ray-auth-token-file, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN; or "
        f"RAY_AUTH_MODE=disabled on the head and here; and that the address is the head's node IP "
        f"(ray start --head --node-ip-address) and port"
    )


def _init_ray(cfg: SweepConfig) -> bool:
    """Start or join Ray; True if this call started it (and so should shut it down)."""
    quiet = _quiet_ray()
    import ray

    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": thread_env_vars(cfg.cpus_per_trial)}
    level = {"logging_level": logging.ERROR} if quiet else {}
    if cfg.address is None:
        ray.init(num_cpus=os.cpu_count(), runtime_env=runtime_env, include_dashboard=False, log_to_driver=False,
                 **level)  # fmt: skip
        return True
    probe_address(cfg.address)
    ray_auth_setup(cfg.ray_auth_token_file)
    # A refused token shows as ConnectionError after Ray's retries; token mode without any token as
    # AuthenticationError (Ray 2.60).
    refused = (ConnectionError, getattr(ray.exceptions, "AuthenticationError", ConnectionError))
    try:
        ray.init(address=cfg.address, runtime_env=runtime_env, log_to_driver=False, **level)
    except refused as err:
        raise _connect_error(cfg.address) from err
    return True


def _run_tune(cfg: SweepConfig, pending: list[TrialSpec]) -> dict[str, dict]:
    """Run ``pending`` through Ray Tune; results by trial id."""
    import ray
    from ray import tune

    started_here = _init_ray(cfg)
    try:
        cluster = {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU", "memory")}
        trainable = tune.with_resources(_tune_trainable, {"cpu": cfg.cpus_per_trial})
        param_space = {
            "trial": tune.grid_search([spec.__dict__ for spec in pending]),
            "cpus_per_trial": cfg.cpus_per_trial,
        }
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(trial_dirname_creator=_trial_dirname, reuse_actors=False),
            run_config=tune.RunConfig(
                storage_path=str((cfg.out / RAY_DIR).resolve()), name=f"sweep-{int(time.time())}", verbose=0
            ),
        )
        grid = tuner.fit()
        results = {"_cluster": cluster}
        for result in grid:
            tid = TrialSpec(**result.config["trial"]).trial_id
            if result.error is not None:  # the worker died (e.g. out of memory): the trial wrote no end event
                results[tid] = {"trial": tid, "status": "failed", "error": str(result.error)}
            else:
                results[tid] = dict(result.metrics or {})
        return results
    finally:
        if started_here:
            ray.shutdown()


def lockstep_groups(specs: list[TrialSpec]) -> list[list[TrialSpec]]:
    """Trials that can share one lockstep group: same algorithm, preset, env shapes and resume step."""
    from s2ac.agents import EnvSpec
    from s2ac.envs import make_env

    shapes: dict[str, EnvSpec] = {}
    groups: dict[tuple, list[TrialSpec]] = {}
    for spec in specs:
        if spec.env_id not in shapes:
            shapes[spec.env_id] = EnvSpec.from_env(make_env(spec.env_id))
        key = (spec.algo, spec.preset, shapes[spec.env_id], checkpoint_steps(spec.run_dir))
        groups.setdefault(key, []).append(spec)
    return list(groups.values())


def _run_lockstep(cfg: SweepConfig, pending: list[TrialSpec]) -> dict[str, dict]:
    """Run ``pending`` as lockstep groups, one after the other in this process; results by trial id."""
    from s2ac.loop import TrainingLoop

    results: dict[str, dict] = {}
    for group in lockstep_groups(pending):
        start = time.perf_counter()
        resume = checkpoint_steps(group[0].run_dir) is not None
        for spec in group:
            record_start(spec, checkpoint_steps(spec.run_dir), resumed=resume, lockstep=[s.trial_id for s in group])
        try:
            configs = [trial_configs(spec) for spec in group]
            trainer = TrainingLoop(
                group[0].algo,
                configs[0][0],
                [train for _, train in configs],
                [spec.run_dir for spec in group],
                resume=resume,
                progress=True,
                tensorboard=cfg.tensorboard,
                stop_after_s=cfg.stop_after_s,
            )
            outcome = trainer.run()
        except Exception as err:  # one failed group must not stop the others; the ledger keeps why
            for spec in group:
                results[spec.trial_id] = record_failure(spec, err, time.perf_counter() - start)
            continue
        status = "stopped" if outcome["stopped"] else "finished"
        for spec in group:
            append_ledger(spec.ledger, spec.trial_id, status, env_steps=outcome["env_steps"], wall_s=outcome["wall_s"])
            results[spec.trial_id] = {
                "trial": spec.trial_id,
                "status": status,
                "env_steps": outcome["env_steps"],
                "wall_s": outcome["wall_s"],
            }
    return results


def _trial_dirname(trial) -> str:
    """Short, file-system-safe Tune trial folder name."""
    spec = trial.config["trial"]
    return f"{trial.trial_id}-{spec['algo']}-{spec['preset']}-{env_slug(spec['env_id'])}-seed{spec['seed']}"


def run_sweep(cfg: SweepConfig) -> dict[str, Any]:
    """Run every trial of ``cfg`` not yet finished (resuming partly finished ones); return a summary.

    The summary holds ``trials`` (one dict per trial: id, algo, env_id, preset, seed, status
    ``finished`` / ``stopped`` / ``failed`` / ``skipped``, env steps, wall time, error, final eval metrics),
    ``counts`` per status, and ``cluster`` (Ray's CPU/memory totals, when Ray was used).
    """
    cfg.validate()
    if not cfg.lockstep:
        require_ray()
    created = not cfg.out.exists()
    cfg.out.mkdir(parents=True, exist_ok=True)
    try:
        return _run_sweep(cfg)
    except BaseException:
        if created and not any(cfg.out.iterdir()):  # e.g. an unreachable cluster: leave no empty --out behind
            cfg.out.rmdir()
        raise


def _run_sweep(cfg: SweepConfig) -> dict[str, Any]:
    pending, done = _split_pending(cfg)
    ledger = cfg.out.resolve() / LEDGER_FILE
    for spec in done:
        append_ledger(ledger, spec.trial_id, "skipped", env_steps=checkpoint_steps(spec.run_dir))
    if cfg.lockstep:
        results = _run_lockstep(cfg, pending)
    else:
        results = _run_tune(cfg, pending) if pending else {}
    cluster = results.pop("_cluster", None)
    rows = []
    for spec in trial_specs(cfg):
        run = results.get(spec.trial_id, {"status": "skipped"})
        rows.append(_trial_row(spec, run))
    return {"out": str(cfg.out), "trials": rows, "counts": status_counts(rows), "cluster": cluster}


def _trial_row(spec: TrialSpec, run: dict) -> dict[str, Any]:
    """Summary row of one trial after the sweep (status from this sweep, metrics from its folder)."""
    evals = eval_rows(spec.run_dir)
    return {
        "trial": spec.trial_id,
        "algo": spec.algo,
        "env_id": spec.env_id,
        "preset": spec.preset,
        "seed": spec.seed,
        "status": run.get("status", "failed"),
        "env_steps": checkpoint_steps(spec.run_dir) or 0,
        "wall_s": run.get("wall_s"),
        "error": run.get("error"),
        "final": evals[-1] if evals else {},
        "run_dir": spec.run_dir,
    }


# -- reading finished runs -------------------------------------------------------------------


def eval_rows(run_dir: str | Path) -> list[dict]:
    """Metric rows of a run that hold an evaluation, reduced to ``step`` and the ``eval/`` keys."""
    from s2ac.logger import read_metrics

    rows = []
    for row in read_metrics(Path(run_dir)):
        evals = {k: v for k, v in row.items() if k.startswith(EVAL_PREFIX)}
        if evals:
            rows.append({"step": row["step"], **evals})
    return rows


def summarize_runs(out: str | Path) -> list[dict]:
    """One dict per trial folder under ``out`` (found by ``config.json``): algo, env, preset, seed,
    steps reached, the final evaluation and the whole evaluation curve."""
    out = Path(out)
    runs = []
    for cfg_path in sorted(out.glob("*/*/*/seed*/config.json")):
        run_dir = cfg_path.parent
        config = json.loads(cfg_path.read_text())
        algo, _, preset, seed_dir = run_dir.relative_to(out).parts
        evals = eval_rows(run_dir)
        runs.append(
            {
                "trial": str(run_dir.relative_to(out)),
                "algo": config.get("algo", algo),
                "env_id": config["train"]["env_id"],
                "preset": preset,
                "seed": int(config["train"].get("seed", seed_dir.removeprefix("seed"))),
                "total_steps": config["train"]["total_steps"],
                "env_steps": checkpoint_steps(run_dir) or 0,
                "final": evals[-1] if evals else {},
                "evals": evals,
                "run_dir": str(run_dir),
            }
        )
    return runs


__all__ = [
    "ClusterConnectionError",
    "SweepConfig",
    "TrialSpec",
    "run_sweep",
    "summarize_runs",
    "trial_specs",
    "trial_configs",
    "read_ledger",
    "ledger_events",
    "latest_outcome",
]
