"""Brokers, result backends and coordination stores never import one another (issue 9: shared
client code lives in ``celeriac._redis`` and ``celeriac._utils``)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "celeriac"
SERVICES = ("brokers", "backends", "coordination")


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_services_do_not_import_each_other() -> None:
    crossings = []
    for service in SERVICES:
        others = [f"celeriac.{o}" for o in SERVICES if o != service]
        for path in sorted((PACKAGE / service).rglob("*.py")):
            for module in imported_modules(path):
                if any(module == o or module.startswith(o + ".") for o in others):
                    crossings.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert crossings == []
