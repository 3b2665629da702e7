"""Run the code blocks of the README and the docs, at a tiny budget.

A page's ``python`` and ``bash`` blocks run in page order in one scratch folder, so a block may use
what an earlier block of the same page wrote (a run folder). Python blocks are executed in this
process; a shell line ``s2ac ...`` runs :func:`s2ac.cli.main` in this process too, and
``python ...`` as a subprocess. Anything else in an unskipped shell block is an error: a block that
cannot run in a test says why in its info string, ```` ```bash skip="reason" ````.

With ``S2AC_DOCS_TINY=1`` (the default here) step counts shrink: ``--total-steps N`` and
``learn(total_timesteps=N)`` become ``tiny_steps(N)`` (300 + N / 1000 at most), training runs evaluate one episode, and
``s2ac eval --episodes N`` runs one. ``S2AC_DOCS_TINY=0`` runs every block as written.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
SKIP = re.compile(r'\bskip="(?P<reason>[^"]+)"')
RUN_LANGUAGES = {"python", "bash", "sh", "shell"}
NOT_PAGES = ("docs/reports/",)  # the experiments' own reports (a link to results/), not documentation


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    language: str
    code: str
    skip: str | None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[str]:
    """README.md and every Markdown page under docs/, as paths relative to the repository root."""
    found = ["README.md"] + [str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").rglob("*.md"))]
    return [p for p in found if not p.startswith(NOT_PAGES)]


def blocks(page: str, text: str | None = None) -> list[Block]:
    """The runnable blocks of ``page`` (``text`` overrides its contents)."""
    text = (ROOT / page).read_text() if text is None else text
    out = []
    for m in FENCE.finditer(text):
        info = m.group("info").strip()
        language = info.split(" ", 1)[0] if info else ""
        if language not in RUN_LANGUAGES:
            continue
        skip = SKIP.search(info)
        line = text.count("\n", 0, m.start()) + 1
        out.append(Block(page, line, language, m.group("body"), skip.group("reason") if skip else None))
    return out


def tiny() -> bool:
    return os.environ.get("S2AC_DOCS_TINY", "1") not in ("", "0")


def tiny_steps(n: int) -> int:
    """A step count small enough for a test, still ordered like the original (a resume goes further)."""
    return min(n, 300 + n // 1000)


def shrink_cli(argv: list[str]) -> list[str]:
    """``argv`` of an ``s2ac`` command with its step and episode counts shrunk."""
    argv = list(argv)
    for flag, new in (("--total-steps", tiny_steps), ("--episodes", lambda n: 1)):
        if flag in argv and argv.index(flag) + 1 < len(argv):
            i = argv.index(flag) + 1
            argv[i] = str(new(int(argv[i])))
    if argv[:1] == ["train"] and not {"--help", "--help-all"} & set(argv):
        for flag, value in (("--train.eval-episodes", "1"), ("--train.log-every", "100")):
            argv += [] if flag in argv else [flag, value]
    return argv


def shell_commands(code: str) -> list[list[str]]:
    """The commands of a shell block: continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n", " ", code)
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


def run_shell(block: Block) -> None:
    from s2ac import cli

    for words in shell_commands(block.code):
        program, args = words[0], words[1:]
        if program == "s2ac":
            try:
                rc = cli.main(shrink_cli(args) if tiny() else args)
            except SystemExit as done:  # --help and --help-all exit as argparse does
                rc = done.code or 0
            assert rc == 0, f"{block.where}: `{shlex.join(words)}` exited with {rc}"
        elif program == "python":
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
            done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, f"{block.where}: `{shlex.join(words)}` failed:\n{done.stderr[-2000:]}"
        else:
            raise AssertionError(
                f'{block.where}: no runner for `{program}`; run it with s2ac or python, or mark the block skip="why"'
            )


@contextlib.contextmanager
def tiny_learn():
    """``Algorithm.learn`` with ``total_timesteps`` shrunk by :func:`tiny_steps` (nothing else changes)."""
    from s2ac.api import Algorithm

    original = Algorithm.learn

    def learn(self, total_timesteps, *args, **kwargs):
        return original(self, tiny_steps(int(total_timesteps)), *args, **kwargs)

    Algorithm.learn = learn
    try:
        yield
    finally:
        Algorithm.learn = original


def run_python(block: Block, namespace: dict) -> None:
    code = compile(block.code, block.where, "exec")
    with tiny_learn() if tiny() else contextlib.nullcontext():
        exec(code, namespace)


def run_page(page: str, workdir: Path, text: str | None = None) -> list[str]:
    """Run every runnable block of ``page`` in ``workdir``; returns the skipped ones with their reasons."""
    skipped, namespace = [], {"__name__": "__docs_example__"}
    previous = Path.cwd()
    os.chdir(workdir)
    try:
        for block in blocks(page, text):
            if block.skip:
                skipped.append(f"{block.where}: {block.skip}")
            elif block.language == "python":
                run_python(block, namespace)
            else:
                run_shell(block)
    finally:
        os.chdir(previous)
    return skipped
