"""The README and the docs: generated results tables match the committed results, the README stays
an index (size, links), and every page is in the site."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from s2ac import docs_tables

ROOT = Path(__file__).resolve().parent.parent
README_LIMIT = 8192


def test_committed_tables_equal_what_the_results_files_give():
    assert docs_tables.stale_regions(ROOT) == [], "run: python -m s2ac.docs_tables"


def _copy_project(dest: Path) -> Path:
    """README.md and the results files its tables read, in a scratch repository root."""
    (dest / "docs").mkdir(parents=True)
    shutil.copy(ROOT / "README.md", dest / "README.md")
    for rel in (docs_tables.MUJOCO, docs_tables.MULTIGOAL):
        (dest / rel).parent.mkdir(parents=True)
        shutil.copy(ROOT / rel, dest / rel)
    return dest


def test_an_edited_results_number_makes_its_table_stale(tmp_path):
    root = _copy_project(tmp_path)
    assert docs_tables.stale_regions(root) == []
    path = root / docs_tables.MUJOCO
    summary = json.loads(path.read_text())
    row = next(r for r in summary["final_table"] if r["env_id"] == "Hopper-v5" and r["method"].startswith("sac "))
    row["deterministic"]["mean"] += 100.0
    path.write_text(json.dumps(summary))
    assert docs_tables.stale_regions(root) == ["README.md: table mujoco-headline"]
    assert docs_tables.main(["--root", str(root), "--check"]) == 1
    assert docs_tables.main(["--root", str(root)]) == 0  # regenerating writes the new number
    assert docs_tables.stale_regions(root) == []
    assert f"{row['deterministic']['mean']:.0f} ± " in (root / "README.md").read_text()


def test_an_unknown_table_name_is_one_line_with_the_close_match(tmp_path):
    with pytest.raises(ValueError, match="unknown table 'mujoco-finall'; did you mean 'mujoco-final'"):
        docs_tables.render("<!-- table:mujoco-finall -->\n<!-- /table -->", tmp_path, "page.md")


def test_readme_is_an_index():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= README_LIMIT
    assert readme.count("<!-- table:") >= 1


def test_readme_links_point_at_files_that_exist():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert local, "the README links the docs"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert missing == []


def test_every_docs_page_is_in_the_nav_or_a_report():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = [str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")]
    missing = [p for p in pages if not p.startswith("reports/") and f": {p}" not in nav]
    assert missing == []


def _load_docs_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_site_drops_the_test_options_of_a_fence_and_keeps_its_language():
    hooks = _load_docs_module("hooks")
    page = '```bash skip="needs a Ray cluster"\nray start\n```\n```python\nx = 1\n```\n'
    assert hooks.on_page_markdown(page) == "```bash\nray start\n```\n```python\nx = 1\n```\n"


def test_rst_docstrings_become_markdown():
    rst = _load_docs_module("griffe_rst")
    text = "See :func:`~s2ac.stein.svgd_step` and :class:`SVGDResult`.\nThe step::\n\n    a <- a + eps phi\n\nDone."
    assert rst.rst_to_markdown(text) == (
        "See `s2ac.stein.svgd_step` and `SVGDResult`.\nThe step:\n\n```text\na <- a + eps phi\n```\n\nDone."
    )
    assert rst.rst_to_markdown("Notation:\n* one\n* two") == "Notation:\n\n* one\n* two"
