"""``celeriac shell``: a Python shell with the app, its tasks and celeriac's names loaded.

As ``celery shell``: IPython when installed (else bpython, else the standard REPL), or the
one asked for with ``--ipython`` / ``--bpython`` / ``--python``. The namespace holds ``app``
(also as ``celery``), the canvas names (``chain``, ``group``, ``chord``, ``chunks``,
``signature``...), ``Task``, ``AsyncResult`` and each of the app's tasks under its short
name (``add`` for ``proj.tasks.add``) unless ``--without-tasks``. ``--eventlet`` and
``--gevent`` print one line: celeriac has no green-thread pools.
"""

from __future__ import annotations

import code
import importlib.util
from typing import Any

import click

import celeriac
from celeriac.app.base import Celery
from celeriac.cli.context import CLIContext, global_options, pass_cli
from celeriac.cli.options import SectionedCommand, not_applicable
from celeriac.result import AsyncResult

__all__ = ["namespace", "shell"]

#: celeriac's own names put in the shell, as Celery's shell puts Celery's
CELERIAC_NAMES = ("Celery", "Signature", "Task", "chain", "chord", "chunks", "group",
                  "maybe_signature", "shared_task", "signature", "states", "subtask",
                  "xmap", "xstarmap")
#: task names under these prefixes are the built-ins (celery.map...), not the user's
_BUILTIN_PREFIXES = ("celery.", "celeriac.")


def namespace(app: Celery, with_tasks: bool = True) -> dict[str, Any]:
    """What the shell starts with."""
    names: dict[str, Any] = {name: getattr(celeriac, name) for name in CELERIAC_NAMES}
    names.update(app=app, celery=app, celeriac=celeriac, AsyncResult=AsyncResult)
    if with_tasks:
        for name, task in sorted(app.tasks.items()):
            if not name.startswith(_BUILTIN_PREFIXES):
                names[name.rpartition(".")[2]] = task
    return names


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _banner(names: dict[str, Any]) -> str:
    tasks = sorted(k for k, v in names.items() if k not in CELERIAC_NAMES and
                   hasattr(v, "delay") and k not in ("app", "celery"))
    return (f"celeriac {celeriac.__version__} shell: app={names['app'].main!r}; "
            f"tasks: {', '.join(tasks) or '(none)'}")


def _run_ipython(names: dict[str, Any]) -> None:
    from IPython import start_ipython

    start_ipython(  # type: ignore[no-untyped-call]
        argv=["--no-banner", "--no-confirm-exit"], user_ns=names, display_banner=False)


def _run_bpython(names: dict[str, Any]) -> None:
    import bpython

    bpython.embed(names)


def _run_python(names: dict[str, Any]) -> None:
    code.interact(banner="", local=names, exitmsg="")


@click.command(cls=SectionedCommand, sections={"Shell Options": (
    "ipython", "bpython", "python", "without_tasks", "eventlet", "gevent")})
@click.option("-I", "--ipython", is_flag=True, help="Use IPython.")
@click.option("-B", "--bpython", is_flag=True, help="Use bpython.")
@click.option("--python", is_flag=True, help="Use the standard Python shell.")
@click.option("-T", "--without-tasks", is_flag=True, help="Don't put the tasks in the shell.")
@click.option("--eventlet", is_flag=True, help="Not supported (no eventlet pool).")
@click.option("--gevent", is_flag=True, help="Not supported (no gevent pool).")
@global_options(hidden=True)
@pass_cli
def shell(cli: CLIContext, ipython: bool, bpython: bool, python: bool, without_tasks: bool,
          eventlet: bool, gevent: bool) -> None:
    """Start a Python shell with the app, its tasks and celeriac's names loaded.

    \b
    Example:
      celeriac -A proj shell
      >>> add.delay(2, 2).get(timeout=10)
    """
    for flag, name in ((eventlet, "--eventlet"), (gevent, "--gevent")):
        if flag:
            not_applicable(name, "celeriac has no green-thread pools to patch for",
                           "leave it out (the threads pool runs I/O-bound tasks)")
    names = namespace(cli.app, with_tasks=not without_tasks)
    if ipython and not _installed("IPython"):
        raise click.UsageError("--ipython: IPython is not installed (pip install ipython)")
    if bpython and not _installed("bpython"):
        raise click.UsageError("--bpython: bpython is not installed (pip install bpython)")
    cli.echo(_banner(names), err=True)
    if python:
        _run_python(names)
    elif ipython or (not bpython and _installed("IPython")):
        _run_ipython(names)
    elif bpython or _installed("bpython"):
        _run_bpython(names)
    else:
        _run_python(names)
