"""``celeriac migrate-imports DIR``: rewrite ``celery`` imports to ``celeriac`` in Python files.

Rules:

* Only import statements change, found with :mod:`ast` and rewritten token by token
  (:mod:`tokenize`), so strings, comments and the rest of the code are untouched.
* ``from celery[.mod] import a, b`` -> ``from celeriac[.mod] import a, b``;
  ``import celery.mod as m`` -> ``import celeriac.mod as m``. The names the code uses stay
  bound: ``import celery`` -> ``import celeriac as celery`` and ``import celery.mod`` ->
  ``import celeriac.mod, celeriac as celery``.
* ``from kombu import Queue, Exchange`` (the queue declarations Celery's documentation
  uses) -> ``from celeriac import Queue, Exchange``; a ``from kombu import`` of anything
  else is left as it is, with one line.
* A statement naming a module or a name celeriac does not have is left as it is, with one
  line saying so (``file:line: ...``), so nothing is rewritten into an ImportError.
* A dry run by default: prints a unified diff; ``--write`` changes the files.
* Files that are not valid Python are reported and skipped; ``.git``, virtualenvs and
  ``__pycache__`` are not entered.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import tokenize
from collections.abc import Iterator
from pathlib import Path

import click

from celeriac.cli.rewrite import (
    Edit,
    apply_edits,
    read_source,
    tokens,
    unified_diff,
    write_source,
)

__all__ = ["migrate_imports", "migrate_source"]

OLD = "celery"
NEW = "celeriac"
#: what ``from kombu import ...`` may name to be rewritten (celeriac.queues has them)
KOMBU_NAMES = frozenset({"Queue", "Exchange"})
_SKIP_DIRS = frozenset({".git", ".hg", ".tox", ".nox", "__pycache__", "node_modules",
                        ".venv", "venv", "env", "site-packages", "build", "dist"})


def _counterpart(module: str) -> str | None:
    """``celery.result`` -> ``celeriac.result`` when celeriac has that module, else None."""
    new = NEW + module[len(OLD):]
    try:
        return new if importlib.util.find_spec(new) is not None else None
    except (ImportError, ValueError):
        return None


def _missing_names(module: str, names: list[str]) -> list[str]:
    mod = importlib.import_module(module)
    return [name for name in names if name != "*" and not hasattr(mod, name)
            and _counterpart_submodule(module, name) is None]


def _counterpart_submodule(module: str, name: str) -> str | None:
    try:
        return module if importlib.util.find_spec(f"{module}.{name}") is not None else None
    except (ImportError, ValueError):
        return None


def _is_celery(module: str | None) -> bool:
    return module is not None and (module == OLD or module.startswith(OLD + "."))


def _span(node: ast.stmt, toks: list[tokenize.TokenInfo]) -> list[tokenize.TokenInfo]:
    start = (node.lineno, node.col_offset)
    end = (node.end_lineno or node.lineno, node.end_col_offset or 0)
    return [t for t in toks if t.start >= start and t.end <= end
            and t.type not in (tokenize.NL, tokenize.COMMENT)]


def _dotted_names(span: list[tokenize.TokenInfo]) -> Iterator[tuple[int, int]]:
    """``(first, last)`` token indexes of each dotted name after ``import`` or ``,``."""
    i = 0
    while i < len(span):
        tok = span[i]
        prev = span[i - 1].string if i else ""
        if tok.type == tokenize.NAME and prev in ("import", ",", "from"):
            j = i
            while j + 2 < len(span) and span[j + 1].string == "." and \
                    span[j + 2].type == tokenize.NAME:
                j += 2
            yield i, j
            i = j + 1
        else:
            i += 1


def _rewrite_import(node: ast.Import, span: list[tokenize.TokenInfo], path: str,
                    notes: list[str]) -> list[Edit]:
    edits: list[Edit] = []
    for first, last in _dotted_names(span):
        dotted = "".join(t.string for t in span[first:last + 1])
        if not _is_celery(dotted):
            continue
        if _counterpart(dotted) is None:
            notes.append(f"{path}:{span[first].start[0]}: {dotted} has no celeriac "
                         "counterpart; left as it is")
            continue
        head = span[first]
        edits.append(Edit(head.start[0], head.start[1], head.end[1], NEW))
        aliased = last + 1 < len(span) and span[last + 1].string == "as"
        if not aliased:
            tail = span[last]
            keep_name = " as celery" if dotted == OLD else ", celeriac as celery"
            edits.append(Edit(tail.end[0], tail.end[1], tail.end[1], keep_name))
    return edits


def _rewrite_from(node: ast.ImportFrom, span: list[tokenize.TokenInfo], path: str,
                  notes: list[str]) -> list[Edit]:
    module = node.module or ""
    new = _counterpart(module)
    missing = _missing_names(new, [a.name for a in node.names]) if new else []
    if new is None or missing:
        what = module if new is None else f"{', '.join(missing)} from {module}"
        notes.append(f"{path}:{node.lineno}: {what}: celeriac has no counterpart; "
                     "left as it is")
        return []
    head = span[1]  # the token after ``from``
    return [Edit(head.start[0], head.start[1], head.end[1], NEW)]


def _rewrite_kombu(node: ast.ImportFrom, span: list[tokenize.TokenInfo], path: str,
                   notes: list[str]) -> list[Edit]:
    others = [a.name for a in node.names if a.name not in KOMBU_NAMES]
    if others:
        notes.append(f"{path}:{node.lineno}: {', '.join(others)} from kombu: celeriac has no "
                     "counterpart; left as it is")
        return []
    head = span[1]  # ``kombu``
    return [Edit(head.start[0], head.start[1], head.end[1], NEW)]


def migrate_source(source: str, path: str = "<string>") -> tuple[str, list[str]]:
    """``(rewritten source, notes)``; raises SyntaxError for a file that is not Python."""
    tree = ast.parse(source, filename=path)
    toks = list(tokens(source))
    edits: list[Edit] = []
    notes: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(_is_celery(a.name) for a in node.names):
            edits += _rewrite_import(node, _span(node, toks), path, notes)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_celery(node.module):
            edits += _rewrite_from(node, _span(node, toks), path, notes)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "kombu":
            edits += _rewrite_kombu(node, _span(node, toks), path, notes)
    return apply_edits(source, edits), notes


def python_files(root: Path) -> Iterator[Path]:
    """``root`` itself if it is a file, else the ``*.py`` files under it, sorted."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*.py")):
        if not _SKIP_DIRS.intersection(path.relative_to(root).parts[:-1]):
            yield path


@click.command(name="migrate-imports")
@click.argument("directory", type=click.Path(exists=True, path_type=Path))
@click.option("--write", is_flag=True, help="Change the files (default: print a diff only).")
def migrate_imports(directory: Path, write: bool) -> None:
    """Rewrite `celery` imports to `celeriac` in the Python files under DIRECTORY.

    \b
    A dry run unless --write: prints the diff it would apply.
    Example:
      celeriac migrate-imports proj/            # show the diff
      celeriac migrate-imports proj/ --write    # apply it
    """
    changed = 0
    for path in python_files(directory):
        try:
            before = read_source(path)
            after, notes = migrate_source(before, str(path))
        except (SyntaxError, UnicodeDecodeError, tokenize.TokenError) as exc:
            click.echo(f"{path}: skipped, not valid Python ({exc})", err=True)
            continue
        for note in notes:
            click.echo(note, err=True)
        if after == before:
            continue
        changed += 1
        if write:
            write_source(path, after)
            click.echo(f"rewrote {path}")
        else:
            click.echo(unified_diff(str(path), before, after), nl=False)
    word = "file" if changed == 1 else "files"
    if write:
        click.echo(f"{changed} {word} changed.", err=True)
    else:
        click.echo(f"{changed} {word} would change (run again with --write to apply).",
                   err=True)
