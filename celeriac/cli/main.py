"""The ``celeriac`` command: a click group holding one command per module of this package.

``celeriac -A proj worker -l info`` (Celery 5 order) and ``celeriac worker -A proj -l info``
(Celery 4 order) both work: the global options are accepted before and after the command.
``run_worker_main`` and ``run_app_main`` serve ``app.worker_main()`` and ``app.start()``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

import celeriac
from celeriac.cli.amqp import amqp
from celeriac.cli.beat import beat
from celeriac.cli.call import call
from celeriac.cli.context import EX_FAILURE, EX_UNAVAILABLE, CLIContext, get_cli, global_options
from celeriac.cli.dashboard import dashboard, flower
from celeriac.cli.demo import demo
from celeriac.cli.events import events
from celeriac.cli.graph import graph
from celeriac.cli.inspect import control, inspect, status
from celeriac.cli.listing import list_
from celeriac.cli.logtool import logtool
from celeriac.cli.migrate import migrate
from celeriac.cli.migrate_imports import migrate_imports
from celeriac.cli.mistakes import explain
from celeriac.cli.multi import multi
from celeriac.cli.purge import purge
from celeriac.cli.report import report
from celeriac.cli.result import result
from celeriac.cli.shell import shell
from celeriac.cli.upgrade import upgrade
from celeriac.cli.worker import worker
from celeriac.exceptions import TransportError

if TYPE_CHECKING:
    from celeriac.app.base import Celery

__all__ = ["main", "run_app_main", "run_worker_main"]

PROG_NAME = "celeriac"
#: where the group keeps its command line for :meth:`Group.invoke` (``ctx.meta``)
_ARGV_KEY = "celeriac.argv"


#: ``celeriac --help`` lists the commands in these sections (Celery's grouping of its
#: commands: main, remote control, utilities, debugging; then celeriac's own)
#: ``celeriac --help`` lists Celery 5.7's commands as ``celery --help`` does (one
#: alphabetical "Commands" section), then celeriac's own
COMMAND_SECTIONS = {
    "Commands": ("amqp", "beat", "call", "control", "events", "graph", "inspect", "list",
                 "logtool", "migrate", "multi", "purge", "report", "result", "shell", "status",
                 "upgrade", "worker"),
    "celeriac": ("dashboard", "flower", "demo", "migrate-imports"),
}


class Group(click.Group):
    """Lists commands in sections (:data:`COMMAND_SECTIONS`), a command in none last.

    A broker or backend that cannot be reached ends any command with one line on stderr
    naming what failed (its URL, password masked) and exit status 69 (EX_UNAVAILABLE); the
    traceback shows only with ``-l debug`` / ``--loglevel=debug``.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        width = formatter.width or 80
        placed: set[str] = set()
        sections = [*COMMAND_SECTIONS.items(), ("Other Commands", tuple(self.commands))]
        for title, names in sections:
            rows = []
            for name in names:
                command = self.commands.get(name)
                if command is None or command.hidden or name in placed:
                    continue
                placed.add(name)
                rows.append((name, command.get_short_help_str(width - 6 - len(name))))
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_ARGV_KEY] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        argv: list[str] = ctx.meta.get(_ARGV_KEY, [])
        try:
            return super().invoke(ctx)
        except TransportError as exc:
            if _debug_wanted(argv):
                raise
            click.echo(f"Error: {' '.join(str(exc).split())}", err=True)
            ctx.exit(EX_UNAVAILABLE)
        except Exception as exc:
            # The user's mistakes end in one line, exit 2 (cli/mistakes.py); bugs keep tracebacks.
            mistake = explain(exc, get_cli(ctx).listed_modules())
            if mistake is None or _debug_wanted(argv):
                raise
            raise mistake from None


def _debug_wanted(argv: Sequence[str]) -> bool:
    """Whether the command line asks for tracebacks: ``--debug``, or debug logging (``-l debug``,
    ``--loglevel=DEBUG``)."""
    if "--debug" in argv:
        return True
    for i, arg in enumerate(argv):
        if arg in ("-l", "--loglevel") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(("--loglevel=", "-l")) and arg not in ("-l",):
            value = arg.split("=", 1)[1] if "=" in arg else arg[2:]
        else:
            continue
        if value.lower() == "debug":
            return True
    return False


@click.group(cls=Group, name=PROG_NAME)
@click.version_option(celeriac.__version__, "--version", prog_name=PROG_NAME,
                      message="%(version)s")
@global_options()
@click.pass_context
def main(ctx: click.Context) -> None:
    """celeriac: run and manage workers, send tasks, read results.

    \b
    Examples:
      celeriac -A proj worker -l info
      celeriac -A proj call proj.tasks.add --args '[10, 6]' --wait
      celeriac -A proj inspect registered

    The options below may also follow the command (celeriac worker -A proj).
    """
    get_cli(ctx)


for command in (worker, call, result, inspect, control, status, events, purge, demo, beat,
                dashboard, flower, shell, multi, amqp, list_, migrate, graph, upgrade,
                migrate_imports, report, logtool):
    main.add_command(command)


def _program_args(argv: Sequence[str] | None) -> list[str]:
    """``argv`` without the program name (``sys.argv[1:]`` when None)."""
    if argv is None:
        return list(sys.argv[1:])
    args = list(argv)
    if args and args[0] not in main.commands and not args[0].startswith("-") and (
        args[0].endswith((".py", PROG_NAME, "celery")) or "/" in args[0]
    ):
        args = args[1:]
    return args


def run_app_main(app: Celery, argv: Sequence[str] | None = None) -> int:
    """Run the command line for ``app`` (``app.start(argv)``); returns the exit status."""
    args = _program_args(argv)
    try:
        code = main.main(args=args, prog_name=PROG_NAME, obj=CLIContext(preset_app=app),
                         standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return EX_FAILURE
    return code if isinstance(code, int) else 0


def run_worker_main(app: Celery, argv: Sequence[str] | None = None) -> int:
    """Start a worker for ``app`` (``app.worker_main(argv)``): ``argv`` holds worker options,
    with or without the ``worker`` command name in front."""
    args = _program_args(argv)
    if "worker" not in args:
        args = ["worker", *args]
    return run_app_main(app, args)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=PROG_NAME)
