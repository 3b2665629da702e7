"""SIGINT and SIGTERM: what stops a command, and when.

* During start-up (imports, building the agent, compiling) a signal ends the command at once:
  SIGINT raises ``KeyboardInterrupt`` and SIGTERM raises :class:`s2ac.errors.Terminated`; nothing
  has been written yet (a run folder's ``config.json`` is written only once the run is going to
  train). The signal is also *recorded*: an exception raised inside a callback that swallows it
  (JAX's garbage-collector hook, a ``finally`` that returns) is raised again at the next check
  (:func:`raise_pending`: before the run folder is written, when the loop starts, and when the
  command returns), so a signal at any moment of start-up ends the command.
* While a training loop runs (:class:`GracefulStop`), a signal is recorded instead: the loop
  finishes the env step and update under way, writes a checkpoint, releases the run folder's lock
  and returns; the command then prints one line and exits with ``128 + signal`` (130 for Ctrl-C,
  143 for SIGTERM, as a shell reports them). A second signal while stopping raises at once (the
  checkpoint being written is atomic, so the previous one survives).

Only the standard library is imported here (the command line installs these handlers before JAX).
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
from typing import Any

from s2ac.errors import Terminated

SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
"""The signals handled, as the one-line messages name them."""


def exception_for(signum: int) -> KeyboardInterrupt:
    """The exception that signal ``signum`` raises outside a training loop."""
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


_pending: list[int] = []
"""Signals delivered during start-up whose exception no caller has acknowledged yet."""


def _record(signum: int, frame: Any) -> None:
    _pending.append(signum)
    raise exception_for(signum)


def raise_pending() -> None:
    """Raise again the exception of a start-up signal that something swallowed (a no-op otherwise)."""
    if _pending:
        raise exception_for(_pending[-1])


def acknowledge() -> None:
    """The caller has handled the signal's exception: :func:`raise_pending` forgets it."""
    _pending.clear()


class StartUp:
    """While active (the command line's whole run): SIGTERM raises :class:`Terminated`, and a signal's
    exception swallowed inside a callback is raised again. Ctrl-C during JAX's imports can land in its
    garbage-collector hook, where Python only prints "Exception ignored in: _xla_gc_callback" and
    carries on; here the same exception is raised again 50 ms later, from outside the hook."""

    def __init__(self) -> None:
        self._swallowed: list[type[BaseException]] = [KeyboardInterrupt]

    def _interrupt(self, signum: int, frame: Any) -> None:
        raise self._swallowed[-1]()

    def _redeliver(self, info: Any) -> None:
        if info.exc_type is None or not issubclass(info.exc_type, KeyboardInterrupt):
            return self._unraisable(info)
        self._swallowed.append(info.exc_type)
        try:
            signal.signal(signal.SIGALRM, self._interrupt)
            signal.setitimer(signal.ITIMER_REAL, 0.05)
        except ValueError:  # not the main thread: interrupt it directly
            _thread.interrupt_main()

    def __enter__(self) -> StartUp:
        self._unraisable, self._alarm = sys.unraisablehook, signal.getsignal(signal.SIGALRM)
        sys.unraisablehook = self._redeliver
        _pending.clear()
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNAL_NAMES:
                if signal.getsignal(signum) is not signal.SIG_IGN:  # an ignored signal stays ignored
                    self._previous[signum] = signal.signal(signum, _record)
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.unraisablehook = self._unraisable
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        _pending.clear()
        if signal.getsignal(signal.SIGALRM) == self._interrupt:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._alarm)


class GracefulStop:
    """While active (a context manager), SIGINT and SIGTERM set :attr:`signum` instead of raising; a
    second one raises. Inactive when ``enabled`` is false or outside the main thread."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str | None:
        return None if self.signum is None else SIGNAL_NAMES.get(self.signum, f"signal {self.signum}")

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # asked twice: stop now
            raise exception_for(signum)
        self.signum = signum

    def __enter__(self) -> GracefulStop:
        raise_pending()  # a start-up signal that something swallowed stops the run before it starts
        if self.enabled and not self._previous:  # entering again while active changes nothing
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNAL_NAMES}
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}


__all__ = [
    "GracefulStop",
    "SIGNAL_NAMES",
    "StartUp",
    "acknowledge",
    "exception_for",
    "raise_pending",
]
