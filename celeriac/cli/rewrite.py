"""Source rewriting shared by ``celeriac upgrade settings`` and ``celeriac migrate-imports``.

Rules: a rewrite is a list of :data:`Edit` s, each replacing the text between two positions of
one line (``tokenize``'s 1-based rows and 0-based columns), found from tokens, so comments and
the inside of strings are never touched by accident. Files are read and written as UTF-8 with
their line endings kept.
"""

from __future__ import annotations

import difflib
import io
import tokenize
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

__all__ = ["Edit", "apply_edits", "read_source", "tokens", "unified_diff", "write_source"]


class Edit(NamedTuple):
    """Replace ``line[start_col:end_col]`` of 1-based line ``row`` with ``text``."""

    row: int
    start_col: int
    end_col: int
    text: str


def read_source(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def write_source(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def tokens(source: str) -> Iterator[tokenize.TokenInfo]:
    """The tokens of ``source`` (raises ``tokenize.TokenError`` / ``SyntaxError`` if it is not
    Python)."""
    return tokenize.generate_tokens(io.StringIO(source).readline)


def apply_edits(source: str, edits: Iterable[Edit]) -> str:
    """``source`` with every edit made (edits must not overlap)."""
    lines = source.splitlines(keepends=True)
    # right to left within a line, so earlier columns stay valid
    for edit in sorted(edits, key=lambda e: (e.row, e.start_col), reverse=True):
        line = lines[edit.row - 1]
        lines[edit.row - 1] = line[:edit.start_col] + edit.text + line[edit.end_col:]
    return "".join(lines)


def unified_diff(path: str, before: str, after: str) -> str:
    """A ``diff -u`` of the change, labelled with ``path``."""
    return "".join(difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=f"a/{path}", tofile=f"b/{path}"))
