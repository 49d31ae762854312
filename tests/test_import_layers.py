"""No import cycles in celeriac, and no import hidden in a function to dodge one.

docs/decisions/0013-import-layers.md: the layers are enforced by import-linter (the contracts in
``pyproject.toml``, run here too), but import-linter only sees module-level imports; an import
inside a function is how a cycle hides. So this test reads every module with ``ast`` and builds
the graph of ALL celeriac imports, those inside functions included (``if TYPE_CHECKING:``
blocks excluded: they never run), then asserts:

* the graph between units has no cycle (a unit is a top-level module, ``celeriac.task``, or a
  subpackage, ``celeriac.canvas``; the package root ``celeriac`` is a unit of its own);
* no function imports from celeriac, except the allow-list below, each with its reason.
"""

from __future__ import annotations

import ast
import importlib.metadata
import itertools
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import celeriac
from celeriac import Celery
from celeriac.app.base import _command_line
from celeriac.cli.main import run_worker_main
from celeriac.exceptions import ImproperlyConfigured

ROOT = Path(celeriac.__file__).parent
REPO = ROOT.parent

#: (importing module, imported module) pairs allowed inside a function. Each says why; a pair
#: dodging a cycle does not belong here: break the cycle instead.
FUNCTION_IMPORTS_ALLOWED: Mapping[tuple[str, str], str] = {
    # Lazy loads at the edges (not cycles): the CLI imports the demo app and beat only for the
    # command that needs them.
    ("celeriac.cli.demo", "celeriac.beat"): "loaded only by `celeriac demo --beat`",
    ("celeriac.cli.demo", "celeriac.cli.demo_app"): "defines tasks on import: only for the demo",
    ("celeriac.cli.demo", "celeriac.cli.demo_dashboard"):
        "loads urllib, http and ssl (~6.5 MB of RSS in every worker): only for its demo step",
    ("celeriac.cli.demo", "celeriac.cli.demo_django"):
        "loads urllib, http and ssl (~6.5 MB of RSS in every worker): only for its demo step",
    # The web stack (dashboard extra) loads only for `celeriac dashboard`, and
    # celeriac.dashboard.history/.collector import without it.
    ("celeriac.cli.dashboard", "celeriac.dashboard.app"): "Starlette: only for the command",
    ("celeriac.cli.dashboard", "celeriac.dashboard.security"): "Starlette: only for the command",
    ("celeriac.dashboard", "celeriac.dashboard.app"): "the history store loads without Starlette",
    # redis-py (redis extra) loads only when beat keeps its schedule in Redis.
    ("celeriac.beat.store", "celeriac._redis.client"): "needs redis-py: only for a Redis broker",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The celeriac modules an import statement loads (``from celeriac import canvas`` loads
    ``celeriac.canvas``; ``from celeriac import __version__`` loads the root)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == "celeriac":
                yield alias.name
        return
    if node.level or not node.module or node.module.split(".")[0] != "celeriac":
        return
    for alias in node.names:
        sub = f"{node.module}.{alias.name}"
        yield sub if sub in MODULES else node.module


def imports_of(tree: ast.AST) -> Iterator[tuple[str, bool, int]]:
    """(imported module, inside a function?, line) for each celeriac import that can run."""

    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[str, bool, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    yield from walk(other, in_function)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in _targets(child):
                    yield target, in_function, child.lineno
            inner = in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            yield from walk(child, inner)

    yield from walk(tree, False)


IMPORTS = {
    name: list(imports_of(ast.parse(path.read_text(), str(path))))
    for name, path in MODULES.items()
}


def unit_of(module: str) -> str:
    """``celeriac.canvas.send`` -> ``celeriac.canvas``; ``celeriac.task`` -> itself."""
    return ".".join(module.split(".")[:2])


def unit_graph(imports: Mapping[str, list[tuple[str, bool, int]]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, found in imports.items():
        edges = graph.setdefault(unit_of(module), set())
        for target, _, _ in found:
            if unit_of(target) != unit_of(module):
                edges.add(unit_of(target))
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle as a path (first node repeated at the end), or None."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def _witnesses(cycle: list[str]) -> list[str]:
    """For each edge of the cycle, the import statements that make it."""
    lines: list[str] = []
    for src, dst in itertools.pairwise(cycle):
        for module, found in IMPORTS.items():
            for target, in_function, line in found:
                if unit_of(module) == src and unit_of(target) == dst:
                    where = " (inside a function)" if in_function else ""
                    text = f"  {MODULES[module].relative_to(REPO)}:{line} -> {target}{where}"
                    if text not in lines:
                        lines.append(text)
    return lines


def test_no_cycle_between_units() -> None:
    cycle = find_cycle(unit_graph(IMPORTS))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or []) + "\n" + "\n".join(
        _witnesses(cycle or [])
    )


def test_find_cycle_reports_the_path() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "from celeriac import states\n"
        "if TYPE_CHECKING:\n    from celeriac.app.base import Celery\n"
        "def f():\n    from celeriac.task import Task\n"
    )
    assert list(imports_of(tree)) == [("celeriac.states", False, 2), ("celeriac.task", True, 6)]


def test_no_function_level_imports() -> None:
    found = sorted(
        f"{MODULES[module].relative_to(REPO)}:{line}: imports {target} inside a function"
        for module, imports in IMPORTS.items()
        for target, in_function, line in imports
        if in_function and (module, target) not in FUNCTION_IMPORTS_ALLOWED
    )
    assert not found, "\n".join(
        [*found, "import at module level (break the cycle: docs/decisions/0013-import-layers.md)"]
    )


def test_allow_list_has_no_stale_entries() -> None:
    used = {(m, t) for m, found in IMPORTS.items() for t, in_function, _ in found if in_function}
    assert set(FUNCTION_IMPORTS_ALLOWED) <= used, set(FUNCTION_IMPORTS_ALLOWED) - used


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter not installed")
def test_import_linter_contracts() -> None:
    run = subprocess.run(
        ["lint-imports", "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


# -- the core finds the CLI as an installed component (ADR 0013) -----------------------------------


def test_app_finds_the_cli_through_the_console_script() -> None:
    assert _command_line("run_worker_main") is run_worker_main


def test_app_without_an_installed_cli_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **_: [])
    app = Celery(broker="memory://no-cli", set_as_current=False)
    with pytest.raises(ImproperlyConfigured, match="python -m celeriac"):
        app.start(["--help"])
