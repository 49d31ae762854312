"""Help laid out as Celery's, and the one-line answer to an option that cannot apply.

Rules:

* A :class:`SectionedCommand` prints its options under titled sections (``Worker Options``,
  ``Pool Options``, ``Daemonization Options``...), as ``celery <command> --help`` does, in
  the order given; a parameter not named in :attr:`SectionedCommand.sections` goes under
  ``Options``, last unless ``Options`` is one of the sections given (``inspect`` lists it
  first, as Celery does).
* An option of Celery's that cannot apply here is still accepted. :func:`not_applicable`
  prints one line on stderr: the option, why it cannot apply, what to do instead. Where going
  on would do something else than the user asked, the command stops with exit
  status 2 (a usage error, e.g. ``--pool-start-method spawn``); otherwise it goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = [
    "EX_USAGE_ERROR",
    "SectionedCommand",
    "executable_note",
    "executable_option",
    "not_applicable",
]

F = TypeVar("F", bound=Callable[..., Any])

#: click's exit status for a usage error (what a not-applicable fatal option ends with)
EX_USAGE_ERROR = 2


class SectionedCommand(click.Command):
    """A command whose ``--help`` groups its options under Celery's section titles."""

    def __init__(self, *args: Any, sections: dict[str, tuple[str, ...]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: section title -> the parameter names it lists, in the order given
        self.sections = dict(sections or {})

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        owner = {name: title for title, names in self.sections.items() for name in names}
        grouped: dict[str, list[tuple[str, str]]] = {title: [] for title in self.sections}
        rest: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            title = owner.get(param.name or "")
            (grouped[title] if title else rest).append(record)
        if "Options" in grouped:
            grouped["Options"].extend(rest)
            rest = []
        for title, records in [*grouped.items(), ("Options", rest)]:
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


def not_applicable(option: str, why: str, instead: str, *, fatal: bool = False) -> None:
    """One line naming ``option``, why it cannot apply and what to do instead; with
    ``fatal`` the command ends with exit status 2."""
    click.echo(f"celeriac: {option}: {why}; {instead}.", err=True)
    if fatal:
        raise click.exceptions.Exit(EX_USAGE_ERROR)


def executable_option(program: str) -> Callable[[F], F]:
    """Celery's ``--executable``: the Python a detached process runs under."""
    return click.option("--executable", metavar="PYTHON",
                        help=f"Python executable of the detached {program} (with --detach).")


def executable_note(program: str, value: str | None) -> None:
    """One line for ``--executable`` without ``--detach``: nothing re-runs, so it changes
    nothing."""
    if value:
        not_applicable(
            f"--executable {value}",
            f"celeriac {program} runs in the foreground here and never re-runs itself",
            f"start it with that interpreter ({value} -m celeriac {program} ...) or add "
            "--detach",
        )
