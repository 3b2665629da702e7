"""The shape of the package: imports run one way, nothing private crosses a module boundary,
functions stay short, and the registry is the one list of algorithms."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

import s2ac
from s2ac import agents

PACKAGE = Path(s2ac.__file__).parent
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path) -> list[tuple[str, list[str], int]]:
    """``(module, names, line)`` of every ``s2ac`` import in ``path``, function-level ones included;
    ``from pkg import sub`` counts as an import of the submodule ``pkg.sub`` where one exists."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "s2ac"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against the importing package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            if base.split(".")[0] != "s2ac":
                continue
            names = [a.name for a in node.names]
            for name in names:
                sub = f"{base}.{name}"
                out.append((sub, [], node.lineno) if sub in MODULES else (base, [name], node.lineno))
    return out


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for mod, path in MODULES.items():
        graph[mod] = {m for m, _, _ in imported_modules(path) if m in MODULES and m != mod}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (depth-first search with colours)."""
    colour, stack = dict.fromkeys(graph, 0), []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if colour[nxt] == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if colour[nxt] == 0 and (cycle := visit(nxt)):
                return cycle
        colour[node] = 2
        stack.pop()
        return None

    for node in graph:
        if colour[node] == 0 and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_anywhere_in_the_package():
    graph = import_graph()
    assert len(graph) > 30  # the scan sees the package
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_leaves_and_layers():
    graph = import_graph()
    assert graph["s2ac.types"] == set() and graph["s2ac.checks"] == set()
    assert not {m for m in graph["s2ac.config"] if m.startswith("s2ac.agents")}, "config must name no agent"
    assert "s2ac.agents.common" not in graph["s2ac.replay"]


def test_no_module_imports_a_private_name_of_another():
    found = [
        f"{module}:{line} imports {name} from {target}"
        for module, path in MODULES.items()
        for target, names, line in imported_modules(path)
        for name in names
        if name.startswith("_")
    ]
    assert not found, found


def function_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function from its ``def`` to its end, its docstring not counted (documentation is
    not length to cut)."""
    n = node.end_lineno - node.lineno + 1
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        if isinstance(body[0].value.value, str):
            n -= body[0].end_lineno - body[0].lineno + 1
    return n


def test_function_length_counts_code_not_docstrings():
    tree = ast.parse('def f():\n    """Doc.\n\n    More.\n    """\n    x = 1\n    return x\n')
    assert function_lines(tree.body[0]) == 3


def test_no_function_longer_than_60_lines():
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = function_lines(node)
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {n} lines")
    assert not long, long


def test_every_registered_algorithm_has_a_cli_choice_an_api_class_and_a_bench_choice():
    from s2ac import bench, cli

    assert agents.ALGOS == tuple(agents.REGISTRY) and len(agents.ALGOS) == 10
    bench_choices = set(typing.get_args(typing.get_type_hints(bench.BenchUpdate)["algo"]))
    for name, spec in agents.REGISTRY.items():
        assert name in cli.ALGOS
        assert name in bench_choices
        api_class = getattr(s2ac, spec.api_name)
        assert api_class.algo == name and spec.api_name in s2ac.__all__
        config = agents.make_agent_config(name, "quick", "Pendulum-v1")
        assert agents.algo_of_config(config) == name
        assert isinstance(config, spec.config_class)


def test_unknown_algorithm_names_its_close_matches():
    with pytest.raises(ValueError, match="did you mean 's2ac'"):
        agents.algo_spec("s2c")
