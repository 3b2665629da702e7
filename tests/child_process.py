"""Helpers for tests that start the command line in a child process."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """Ctrl-C's default action in the child (``preexec_fn``): a test runner's worker may ignore SIGINT,
    and a child inherits an ignored signal (Python then leaves it ignored, as a shell's background job
    does), so a test that sends the child Ctrl-C would otherwise see it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
