"""Every Python and shell block of the README and the docs runs (tests/docs_examples.py), so a renamed
class, function or flag fails here."""

from __future__ import annotations

import time

import docs_examples as ex
import pytest

PAGES = [p for p in ex.pages() if any(not b.skip for b in ex.blocks(p))]


def test_collector_finds_the_blocks_and_their_skip_reasons():
    text = 'x\n```python\nprint(1)\n```\n```bash skip="needs a cluster"\nray start\n```\n```text\nnot run\n```\n'
    found = ex.blocks("README.md", text)
    assert [(b.language, b.line, b.skip) for b in found] == [("python", 2, None), ("bash", 5, "needs a cluster")]
    assert ex.shell_commands("s2ac train --algo sac \\\n  --seed 1   # why\n\n# only a comment\n") == [
        ["s2ac", "train", "--algo", "sac", "--seed", "1"]
    ]


def test_tiny_budget_shrinks_steps_and_episodes_in_order():
    argv = ex.shrink_cli(["train", "--algo", "sac", "--total-steps", "6000"])
    tiny_schedule = ["--train.eval-episodes", "1", "--train.log-every", "100"]
    assert argv == ["train", "--algo", "sac", "--total-steps", "306", *tiny_schedule]
    assert ex.shrink_cli(["eval", "runs/x", "--episodes", "10"]) == ["eval", "runs/x", "--episodes", "1"]
    assert ex.tiny_steps(4000) < ex.tiny_steps(6000) and ex.tiny_steps(150) == 150


def test_an_unknown_program_in_a_block_fails_with_its_place(tmp_path):
    with pytest.raises(AssertionError, match=r"README.md:2: no runner for `make`"):
        ex.run_page("README.md", tmp_path, "\n```bash\nmake demo\n```\n")


def test_a_renamed_class_fails_the_block(tmp_path):
    with pytest.raises(ImportError, match="S2ACAmortized"):
        ex.run_page("README.md", tmp_path, "```python\nfrom s2ac import S2ACAmortized\n```\n")


@pytest.mark.filterwarnings("ignore:all .* steps of this learn:UserWarning")  # the tiny budget is all random
@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    start = time.perf_counter()
    skipped = ex.run_page(page, tmp_path)
    print(f"{page}: {time.perf_counter() - start:.1f} s; skipped: {skipped}")
