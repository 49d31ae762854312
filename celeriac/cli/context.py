"""What every command shares: the lazily loaded app, the global options, output helpers.

Global options (``-A``, ``-b``, ``--result-backend``, ``--workdir``, ``--config``, ``-C``,
``-q``) are accepted before the command (Celery 5: ``celeriac -A proj worker``) and after it
(Celery 4: ``celeriac worker -A proj``); :func:`global_options` adds the second spelling to a
command. The app is loaded on first use, so ``--help`` never imports user code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from celeriac.app.base import Celery
from celeriac.cli.discovery import find_app
from celeriac.contrib.django import fixup as django_fixup

F = TypeVar("F", bound=Callable[..., Any])

#: environment variables naming the app when -A is not given (Celery reads CELERY_APP)
APP_ENVVARS = ("CELERIAC_APP", "CELERY_APP")

# Process exit statuses from sysexits.h, as Celery uses them.
EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 64
EX_UNAVAILABLE = 69


@dataclass
class CLIContext:
    """``ctx.obj`` of every command."""

    app_name: str | None = None
    broker: str | None = None
    result_backend: str | None = None
    config: str | None = None
    #: accepted for Celery compatibility (celeriac has one loader)
    loader: str | None = None
    workdir: str | None = None
    #: ``--skip-checks`` (Celery: skip Django's system checks; celeriac runs none)
    skip_checks: bool = False
    no_color: bool = False
    quiet: bool = False
    #: ``--debug``: a mistake shows its traceback instead of one line (celeriac/cli/mistakes.py)
    debug: bool = False
    #: True when no app was named (no -A, $CELERIAC_APP, preset app): the default app is used
    default_app: bool = False
    preset_app: Celery | None = None
    _app: Celery | None = field(default=None, repr=False)

    @property
    def app(self) -> Celery:
        """The application: ``-A``, else ``$CELERIAC_APP``/``$CELERY_APP``, else the app given
        to ``app.start()``/``worker_main()``, else a default app."""
        if self._app is None:
            self._app = self._load()
        return self._app

    def _load(self) -> Celery:
        name = self.app_name or next(
            (os.environ[var] for var in APP_ENVVARS if os.environ.get(var)), None
        )
        if self.app_name is None and self.preset_app is not None:
            app = self.preset_app
        elif name:
            # AppNotFound goes up to the group, which prints it as one line (cli/mistakes.py).
            app = find_app(name)
        else:
            app = Celery("default")
            self.default_app = True
        changed = False
        if self.config:
            app.config_from_object(self.config)
            changed = True
        if self.broker:
            app.conf.broker_url = self.broker
            changed = True
        if self.result_backend:
            app.conf.result_backend = self.result_backend
            changed = True
        if changed:
            # Connections made at import time were made to the old URLs.
            app.close()
        # A Django project: django.setup() before the app finalizes (autodiscover), database
        # connections handled around tasks; nothing otherwise.
        django_fixup.install(app)
        return app

    def listed_modules(self) -> list[str]:
        """The modules the loaded app is told to import (``include``, ``imports``, ``-I``);
        none when no app was loaded."""
        if self._app is None:
            return []
        conf = self._app.conf
        return [*(conf.include or ()), *(conf.imports or ())]

    def set_workdir(self, path: str) -> None:
        try:
            os.chdir(path)
        except OSError as exc:
            raise click.BadParameter(str(exc), param_hint="'--workdir'") from None
        self.workdir = path

    # -- output -----------------------------------------------------------------------------------
    def echo(self, message: str = "", *, err: bool = False, nl: bool = True) -> None:
        click.echo(message, err=err, nl=nl, color=False if self.no_color else None)

    def secho(self, message: str, *, err: bool = False, **styles: Any) -> None:
        if self.no_color:
            click.echo(message, err=err, color=False)
        else:
            click.secho(message, err=err, **styles)

    def say(self, message: str, *, err: bool = False) -> None:
        """Informational output, silenced by ``-q``."""
        if not self.quiet:
            self.echo(message, err=err)

    def ok(self, message: str) -> str:
        return message if self.no_color else click.style(message, fg="green")

    def error(self, message: str) -> str:
        return message if self.no_color else click.style(message, fg="red")


def get_cli(ctx: click.Context) -> CLIContext:
    return ctx.ensure_object(CLIContext)


pass_cli = click.make_pass_decorator(CLIContext, ensure=True)


def _store(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None or value is False:
            return
        cli = get_cli(ctx)
        if name == "workdir":
            cli.set_workdir(value)
        elif name == "loader":
            click.echo(f"celeriac: --loader {value}: celeriac has one loader; configure the app "
                       "with --config MODULE or app.config_from_object().", err=True)
        elif name == "skip_checks":
            # Celery's spelling of the same switch, for code that reads it
            os.environ["SKIP_CHECKS"] = "1"
            cli.skip_checks = True
        else:
            setattr(cli, name, value)

    return callback


def _app_option(*decls: str, name: str, help_text: str, flag: bool = False,
                hidden: bool = False, envvar: Any = None) -> Callable[[F], F]:
    return click.option(
        *decls,
        name,
        callback=_store(name),
        expose_value=False,
        is_eager=True,
        is_flag=flag,
        default=False if flag else None,
        help=help_text,
        hidden=hidden,
        envvar=envvar,
        show_envvar=False,
    )


def global_options(hidden: bool = False) -> Callable[[F], F]:
    """The options every command accepts (visible on the main group, hidden on commands)."""
    options = [
        _app_option("-A", "--app", name="app_name", hidden=hidden,
                    help_text="The application: module, module:attr or module:factory()."),
        _app_option("-b", "--broker", name="broker", hidden=hidden,
                    help_text="Broker URL (default: sqlite:///celeriac.db)."),
        _app_option("--result-backend", name="result_backend", hidden=hidden,
                    help_text="Result backend URL (default: the broker's)."),
        _app_option("--loader", name="loader", hidden=hidden,
                    help_text="Accepted for Celery compatibility (celeriac has one loader)."),
        _app_option("--config", name="config", hidden=hidden,
                    help_text="Module to load configuration from."),
        _app_option("--workdir", name="workdir", hidden=hidden,
                    help_text="Change to this directory before loading the app."),
        _app_option("-C", "--no-color", name="no_color", flag=True, hidden=hidden,
                    help_text="Disable colours in the output."),
        _app_option("-q", "--quiet", name="quiet", flag=True, hidden=hidden,
                    help_text="Print less."),
        _app_option("--debug", name="debug", flag=True, hidden=hidden,
                    help_text="Show the traceback of an error (as -l debug does), not one line."),
        _app_option("--skip-checks", name="skip_checks", flag=True, hidden=hidden,
                    help_text="Skip Django's system checks (celeriac runs none at start)."),
    ]

    def decorate(fun: F) -> F:
        for option in reversed(options):
            fun = option(fun)
        return fun

    return decorate


# ParamType is generic in recent click only; subscripting it fails on older click at run time
class CommaSeparatedList(click.ParamType):  # type: ignore[type-arg]
    """``-Q a,b`` (repeatable: ``-Q a -Q b``) -> ``['a', 'b']``."""

    name = "comma separated list"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        return [part.strip() for part in str(value).split(",") if part.strip()]


COMMA_SEPARATED_LIST = CommaSeparatedList()


def flatten(values: Any) -> list[str]:
    """Merge repeated comma-separated options into one list, keeping order, dropping repeats."""
    merged: list[str] = []
    for value in values or ():
        for item in value if isinstance(value, list) else [value]:
            if item not in merged:
                merged.append(item)
    return merged


def to_json(value: Any, indent: int | None = None) -> str:
    """JSON text for a result or a reply; values JSON cannot express are shown by ``repr``."""
    return json.dumps(value, indent=indent, default=repr, sort_keys=indent is not None)
