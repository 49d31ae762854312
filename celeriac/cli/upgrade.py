"""``celeriac upgrade settings FILE``: rewrite old uppercase setting names to the new ones.

As Celery's command: ``CELERYD_CONCURRENCY = 4`` becomes ``worker_concurrency = 4``; with
``--django`` or ``--compat`` the new name is written in the Django style,
``CELERY_WORKER_CONCURRENCY``. The original is kept as ``FILE.orig`` unless ``--no-backup``.

Unlike Celery's (which replaces text anywhere on a line), only Python names and string
literals that are exactly an old name are rewritten (``CELERYD_CONCURRENCY = 4``,
``conf.update(BROKER_URL=...)``, ``{"BROKER_URL": ...}``); comments, longer names that
merely contain an old one, and other text stay as they are. The mapping is
:data:`celeriac.config.OLD_TO_NEW`.
"""

from __future__ import annotations

import ast
import tokenize
from pathlib import Path

import click

from celeriac.cli.options import SectionedCommand
from celeriac.cli.rewrite import Edit, apply_edits, read_source, tokens, write_source
from celeriac.config import OLD_TO_NEW

__all__ = ["new_setting_name", "upgrade", "upgrade_source"]

DJANGO_NAMESPACE = "CELERY"


def new_setting_name(old: str, django_style: bool) -> str | None:
    """The name ``old`` becomes, or None when it is no old setting name (or stays as is)."""
    new = OLD_TO_NEW.get(old)
    if new is None:
        return None
    if django_style:
        upper = new.upper()
        new = upper if upper.startswith(DJANGO_NAMESPACE) else f"{DJANGO_NAMESPACE}_{upper}"
    return None if new == old else new


def _string_body(token: str) -> tuple[str, str, str] | None:
    """``('"', 'BROKER_URL', '"')`` for a plain one-line string literal, else None."""
    for quote in ('"', "'"):
        if len(token) >= 2 and token[0] == quote and token[-1] == quote and "\n" not in token:
            return quote, token[1:-1], quote
    return None


def upgrade_source(source: str, django_style: bool) -> tuple[str, int]:
    """``(new source, names changed)``; raises SyntaxError for a file that is not Python."""
    ast.parse(source)
    edits: list[Edit] = []
    for tok in tokens(source):
        if tok.type == tokenize.NAME:
            new = new_setting_name(tok.string, django_style)
            if new is not None:
                edits.append(Edit(tok.start[0], tok.start[1], tok.end[1], new))
        elif tok.type == tokenize.STRING:
            parts = _string_body(tok.string)
            new = new_setting_name(parts[1], django_style) if parts else None
            if parts and new is not None:
                edits.append(Edit(tok.start[0], tok.start[1], tok.end[1],
                                  f"{parts[0]}{new}{parts[2]}"))
    return apply_edits(source, edits), len(edits)


@click.group()
def upgrade() -> None:
    """Upgrade a project from older Celery versions (upgrade settings FILE)."""


@upgrade.command(name="settings", cls=SectionedCommand,
                 sections={"Upgrading Options": ("django", "compat", "no_backup")})
@click.argument("filename", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--django", is_flag=True,
              help="Django project: write CELERY_-prefixed uppercase names.")
@click.option("--compat", is_flag=True,
              help="Keep uppercase names (CELERY_ prefix), readable by old and new versions.")
@click.option("--no-backup", is_flag=True, help="Don't keep the original as FILE.orig.")
def settings(filename: Path, django: bool, compat: bool, no_backup: bool) -> None:
    """Rewrite old setting names (CELERYD_CONCURRENCY) in FILE to new ones (worker_concurrency).

    \b
    Example:
      celeriac upgrade settings proj/celeryconfig.py
      celeriac upgrade settings proj/settings.py --django
    """
    click.echo(f"processing {filename}...", err=True)
    before = read_source(filename)
    try:
        after, changed = upgrade_source(before, django or compat)
    except (tokenize.TokenError, SyntaxError) as exc:
        raise click.ClickException(f"{filename} is not valid Python: {exc}") from None
    if not changed:
        click.echo("Does not seem to require any changes :-)")
        return
    if not no_backup:
        backup = filename.with_name(filename.name + ".orig")
        click.echo(f"writing backup to {backup}...", err=True)
        write_source(backup, before)
    write_source(filename, after)
    click.echo(f"Changes to your settings have been made! ({changed} "
               f"name{'' if changed == 1 else 's'} renamed)")
