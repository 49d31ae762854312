"""Running a command detached: ``worker -D``, ``beat --detach`` and ``celeriac multi``.

Rules:

* A detached process is a new ``python -m celeriac ...`` in a new session (no controlling
  terminal, so the shell's signals and hang-ups do not reach it), stdin from /dev/null, its
  stdout and stderr appended to its log file. ``--executable`` names that Python.
* The launcher returns once the process has written its pid file (it writes it itself,
  refusing a pid file held by a live process): success, or the process exited first and
  the launcher says so, naming the log file. So ``Type=forking`` with ``PIDFile=`` fits.
* Only a command line that names its app can detach (``-A`` or ``$CELERIAC_APP``): an app
  passed in by ``app.worker_main()`` exists in this process only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence

import click

from celeriac.cli.context import APP_ENVVARS, CLIContext
from celeriac.cli.pidfile import read_pid

__all__ = ["detach", "reruns_app", "spawn_detached", "wait_for_pidfile"]

#: how long a launcher waits for the pid file, in seconds
START_TIMEOUT_S = 60.0
POLL_S = 0.1
#: where the celeriac group keeps its command line (celeriac.cli.main)
ARGV_KEY = "celeriac.argv"


def spawn_detached(argv: Sequence[str], logfile: str) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, output appended to ``logfile`` (directories made)."""
    os.makedirs(os.path.dirname(os.path.abspath(logfile)), exist_ok=True)
    with open(logfile, "ab") as log:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)


def wait_for_pidfile(process: subprocess.Popen[bytes], pidfile: str,
                     timeout_s: float = START_TIMEOUT_S) -> bool:
    """Whether ``process`` wrote its pid to ``pidfile`` before exiting or ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if read_pid(pidfile) == process.pid:
            return True
        time.sleep(POLL_S)
    return False


def reruns_app(cli: CLIContext) -> bool:
    """Whether a new process given this command line loads the same app (not so for an app
    handed to ``app.worker_main()`` without ``-A``)."""
    named = cli.app_name or any(os.environ.get(var) for var in APP_ENVVARS)
    return bool(named) or cli.preset_app is None


def _without(args: Sequence[str], flags: Sequence[str],
             valued: Sequence[str] = ()) -> list[str]:
    """``args`` without ``flags`` and without the options ``valued`` with their values."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in flags:
            continue
        elif arg in valued:
            skip = True
        elif not any(arg.startswith(f"{name}=") for name in valued if name.startswith("--")):
            out.append(arg)
    return out


def detach(ctx: click.Context, program: str, *, pidfile: str, logfile: str,
           given_pidfile: bool, given_logfile: bool, executable: str | None,
           named_app: bool, logs_itself: bool = True) -> None:
    """Re-run this command line detached (without ``-D``/``--detach``) and exit: 0 once the
    pid file is written, 1 if the process ended first. A command that does not
    ``logs_itself`` (``events --dump`` prints) gets no ``--logfile``: its output is the log."""
    if not named_app:
        raise click.UsageError(f"--detach needs the app named on the command line: "
                               f"`celeriac -A proj {program} --detach`")
    # The child starts in this process's directory, which --workdir has already made the
    # work directory: given again, a relative one would be looked up inside itself.
    args = _without(ctx.meta.get(ARGV_KEY) or sys.argv[1:], ("-D", "--detach"),
                    ("--workdir",) + (() if logs_itself else ("-f", "--logfile")))
    if not given_pidfile:
        args += ["--pidfile", pidfile]
    if not given_logfile and logs_itself:
        args += ["--logfile", logfile]
    held = read_pid(pidfile)
    if held is not None:
        raise click.ClickException(f"pidfile {os.path.abspath(pidfile)} is held by running "
                                   f"process {held}")
    process = spawn_detached([executable or sys.executable, "-m", "celeriac", *args], logfile)
    if not wait_for_pidfile(process, pidfile):
        click.echo(f"celeriac {program}: the detached process ended before it started "
                   f"(exit status {process.poll()}); see {logfile}", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"celeriac {program} detached: pid {process.pid}, pid file {pidfile}, "
               f"log {logfile}", err=True)
    raise click.exceptions.Exit(0)
