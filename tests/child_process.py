"""Helpers for tests that start the command line in a child process."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """Ctrl-C's default action in the child (``preexec_fn``): a test runner's worker may ignore or block
    SIGINT, and a child inherits both an ignored signal (Python then leaves it ignored, as a shell's
    background job does) and the signal mask, so a test that sends the child Ctrl-C could see it lost."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
