"""Exit codes of the command line, and the one line that reports each failure (``docs/failures.md``).

:func:`exit_code` maps an exception to the code of :data:`EXIT_CODES`, :func:`one_line` gives the
message ``s2ac`` prints on stderr (what failed, where, what to do), and :func:`warning_line` the
same for a warning.
"""

from __future__ import annotations

import errno
import os
import signal

# Only the standard library here: the command line imports this module before JAX, so that an
# argument error or a signal during start-up is answered without it.


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or belongs to another configuration."""


class TrainingDiverged(RuntimeError):
    """A loss or statistic became non-finite; the last good checkpoint is kept."""


class RunFolderLocked(RuntimeError):
    """Another live process (or another training loop of this one) is writing the run folder."""


class NotEnoughMemory(MemoryError):
    """The estimated memory of a run exceeds what the machine has available; nothing was written."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what SLURM, Kubernetes and ``kill`` send) outside a training loop: it ends the command
    as Ctrl-C does, with exit code :data:`EXIT_TERMINATED`."""


EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_CHECKPOINT = 3
EXIT_DIVERGED = 4
EXIT_LOCKED = 5
EXIT_OS = 6
EXIT_MEMORY = 7
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, as a shell reports a process ended by SIGTERM

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "an unexpected error (rerun with --debug for the traceback); a sweep with failed trials",
    EXIT_USAGE: "usage or config error (a bad flag or value, a batch larger than the buffer, a run folder in the way)",
    EXIT_CHECKPOINT: "checkpoint or resume problem (no checkpoint yet, every checkpoint corrupt, another config)",
    EXIT_DIVERGED: "training diverged (a non-finite loss, observation or reward); the last good checkpoint is kept",
    EXIT_LOCKED: "the run folder is in use by another process",
    EXIT_OS: "operating-system or filesystem error (not a folder, read-only, disk full, ...), naming the path",
    EXIT_MEMORY: "not enough memory for the run's estimate, or an allocation failed",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); a training run first finishes its update and writes a checkpoint",
    EXIT_TERMINATED: "terminated (SIGTERM, e.g. a preemption); a training run first finishes its update and "
    "writes a checkpoint",
}
"""Exit code -> meaning, as ``s2ac --help`` lists them."""


class UsageExit(SystemExit):
    """Exit with code 2 after a usage message was printed; ``str()`` is the message."""

    def __init__(self, message: str):
        super().__init__(EXIT_USAGE)
        self.message = message

    def __str__(self) -> str:
        return self.message


_OS_HINTS = {
    errno.EEXIST: "it exists and is not a folder; choose another path",
    errno.ENOTDIR: "a part of that path is a file, not a folder; choose another path",
    errno.EACCES: "choose a folder you can write, or fix its permissions",
    errno.EPERM: "choose a folder you can write, or fix its permissions",
    errno.EROFS: "the filesystem is read-only; choose another path",
    errno.ENOSPC: "free some disk space, then rerun (add --resume to continue from the last checkpoint)",
    errno.EFBIG: "a file-size limit was reached; raise it (ulimit -f), then rerun (with --resume to continue)",
    errno.EDQUOT: "the disk quota is exhausted; free some space, then rerun (with --resume to continue)",
    errno.ENOENT: "check the path",
}


def _is_os_error(err: BaseException) -> bool:
    """An error the operating system raised (it has an errno), not a message of ours in an OSError type."""
    return isinstance(err, OSError) and err.errno is not None


def _is_device_oom(err: BaseException) -> bool:
    return type(err).__name__ in ("XlaRuntimeError", "JaxRuntimeError") and "RESOURCE_EXHAUSTED" in str(err)


def exit_code(err: BaseException) -> int:
    """The exit code of :data:`EXIT_CODES` for ``err``."""
    if isinstance(err, Terminated):
        return EXIT_TERMINATED
    if isinstance(err, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(err, RunFolderLocked):
        return EXIT_LOCKED
    if isinstance(err, TrainingDiverged):
        return EXIT_DIVERGED
    if isinstance(err, MemoryError) or _is_device_oom(err):
        return EXIT_MEMORY
    if isinstance(err, CheckpointError):
        return EXIT_CHECKPOINT
    if _is_os_error(err):
        return EXIT_OS
    if isinstance(err, (ValueError, OSError)):
        return EXIT_USAGE
    return EXIT_INTERNAL


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def one_line(err: BaseException) -> str:
    """What ``s2ac`` prints for ``err``: one line, starting with ``error:``."""
    if isinstance(err, KeyboardInterrupt):
        what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted (Ctrl-C)"
        done = "files already written are complete (a run writes none before it trains)"
        return f"error: {what} before the command finished; {done}"
    if _is_os_error(err):
        name = errno.errorcode.get(err.errno, str(err.errno))
        where = f"{err.filename}" + (f" -> {err.filename2}" if err.filename2 else "") if err.filename else "a file"
        reason = err.strerror or os.strerror(err.errno)
        hint = _OS_HINTS.get(err.errno)
        return f"error: {where}: {reason} ({name})" + (f"; {hint}" if hint else "")
    if isinstance(err, MemoryError) and not isinstance(err, NotEnoughMemory):
        detail = _first_line(str(err))
        return f"error: out of memory{': ' + detail if detail else ''}; lower train.buffer_size or agent.batch_size"
    if _is_device_oom(err):
        return f"error: the accelerator ran out of memory ({_first_line(str(err))[:300]}); lower agent.batch_size"
    text = _first_line(str(err))
    if exit_code(err) == EXIT_INTERNAL:
        return f"error: {type(err).__name__}: {text} (unexpected; rerun with --debug for the traceback)"
    return f"error: {text}" if text else f"error: {type(err).__name__}"


def warning_line(message: Warning | str, category: type[Warning]) -> str:
    """A warning as one line: ``warning: <text>``."""
    return f"warning: {_first_line(str(message))}"


def exit_codes_help() -> str:
    """The exit-code table for ``s2ac --help``."""
    return "exit codes:\n" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items())


__all__ = [
    "CheckpointError",
    "NotEnoughMemory",
    "RunFolderLocked",
    "Terminated",
    "TrainingDiverged",
    "EXIT_TERMINATED",
    "EXIT_CODES",
    "EXIT_CHECKPOINT",
    "EXIT_DIVERGED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_LOCKED",
    "EXIT_MEMORY",
    "EXIT_OS",
    "EXIT_USAGE",
    "UsageExit",
    "exit_code",
    "exit_codes_help",
    "one_line",
    "warning_line",
]
