"""``--uid``, ``--gid`` and ``--umask`` of ``worker``, ``beat`` and ``events``, as Celery's.

Rules: the umask is set first (an octal number, ``022``); then, when ``--uid`` or ``--gid``
is given, the process changes to that group (the user's own group when only ``--uid`` is
given) and that user, names or numbers, dropping root's supplementary groups. Only root may
do so; anyone else asking for another user gets one line and exit 2, as does an unknown user
or group. With ``--detach`` this happens in the detached process. After the change the
process checks that it cannot become root again.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Callable
from typing import Any, TypeVar

import click

from celeriac.cli.options import not_applicable

__all__ = ["drop_privileges", "owner_options", "parse_umask"]

F = TypeVar("F", bound=Callable[..., Any])


def owner_options() -> Callable[[F], F]:
    """``--uid``, ``--gid``, ``--umask`` (values passed as ``uid``, ``gid``, ``umask``)."""
    options = [
        click.option("--uid", help="Drop privileges to this user (name or id; needs root)."),
        click.option("--gid", help="Drop privileges to this group (name or id; needs root)."),
        click.option("--umask", help="Create files with this umask (octal, e.g. 022)."),
    ]

    def decorate(fun: F) -> F:
        for option in reversed(options):
            fun = option(fun)
        return fun

    return decorate


def parse_umask(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an octal umask such as 022",
                                 param_hint="'--umask'") from None
    if not 0 <= value <= 0o777:
        raise click.BadParameter(f"{text!r} is not between 000 and 777", param_hint="'--umask'")
    return value


def _user(spec: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwuid(int(spec)) if spec.isdigit() else pwd.getpwnam(spec)
    except KeyError:
        not_applicable(f"--uid {spec}", "there is no such user on this machine",
                       "name an existing user (see /etc/passwd)", fatal=True)
        raise  # not reached: not_applicable(fatal=True) exits


def _group(spec: str) -> int:
    try:
        return int(spec) if spec.isdigit() else grp.getgrnam(spec).gr_gid
    except KeyError:
        not_applicable(f"--gid {spec}", "there is no such group on this machine",
                       "name an existing group (see /etc/group)", fatal=True)
        raise


def drop_privileges(uid: str | None, gid: str | None, umask: str | None) -> None:
    """Apply ``--umask``, then become ``--gid`` / ``--uid`` (see the module rules)."""
    if umask:
        os.umask(parse_umask(umask))
    if not uid and not gid:
        return
    user = _user(uid) if uid else None
    group_id = _group(gid) if gid else (user.pw_gid if user else os.getgid())
    user_id = user.pw_uid if user else os.getuid()
    if (user_id, group_id) == (os.getuid(), os.getgid()):
        return
    if os.geteuid() != 0:
        what = f"--uid {uid}" if uid else f"--gid {gid}"
        not_applicable(what, f"only root can change user or group (this is uid {os.geteuid()})",
                       "start it as root, or leave the option out", fatal=True)
    if user is not None:
        os.initgroups(user.pw_name, group_id)
    else:
        os.setgroups([group_id])
    os.setgid(group_id)
    os.setuid(user_id)
    if user_id != 0:
        try:
            os.setuid(0)
        except PermissionError:
            return
        raise click.ClickException("could still become root after dropping privileges; "
                                   "refusing to run")
