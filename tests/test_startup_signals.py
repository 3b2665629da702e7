"""A signal during start-up ends the command even when its exception is swallowed on the way.

Ctrl-C during JAX's imports can land in a callback (its garbage-collector hook) where Python only
prints "Exception ignored" and carries on. :class:`s2ac.interrupts.StartUp` records every signal, so
the command still ends at the next check: before the run folder is written, when the loop starts and
when the command returns. Signals here are raised in this process with ``signal.raise_signal``."""

from __future__ import annotations

import signal

import pytest

from s2ac import cli, errors, interrupts, runs


@pytest.fixture
def default_handlers():
    """Python's own handlers for the duration of a test (a test worker may ignore SIGINT)."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def swallow(signum: int) -> None:
    """Deliver ``signum`` inside a callback that drops its exception, as JAX's hook does."""
    try:
        signal.raise_signal(signum)
    except KeyboardInterrupt:
        pass


@pytest.mark.parametrize("signum, expected", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, errors.Terminated)])
def test_a_swallowed_signal_is_raised_again_and_nothing_is_written(default_handlers, tmp_path, signum, expected):
    with interrupts.StartUp():
        swallow(signum)
        with pytest.raises(expected) as raised:
            runs.write_run_config(tmp_path / "run", {"algo": "sac"})
        assert type(raised.value) is expected
        assert not (tmp_path / "run").exists()
        with pytest.raises(expected):  # the loop's start checks too
            interrupts.GracefulStop().__enter__()
        interrupts.acknowledge()
        interrupts.raise_pending()  # acknowledged: nothing left to raise
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored on exit
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_an_ignored_signal_stays_ignored(default_handlers):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with interrupts.StartUp():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.raise_signal(signal.SIGINT)  # ignored: nothing recorded, nothing raised
        interrupts.raise_pending()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_the_command_line_ends_on_a_swallowed_ctrl_c(default_handlers, monkeypatch, capsys):
    def command(argv):
        swallow(signal.SIGINT)
        return 0  # the command itself never saw the signal

    monkeypatch.setitem(cli.HANDLERS, "swallowing", command)
    assert cli.main(["swallowing"]) == errors.EXIT_INTERRUPTED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: interrupted (Ctrl-C)"), err
