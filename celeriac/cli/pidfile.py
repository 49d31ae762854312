"""Pid files: the one a worker, beat or events process holds, and how a launcher reads one.

Rules:

* A pid file appears whole or not at all: the holder writes its pid to a private file beside
  it and links that file into place (``link`` fails if the name exists), so a reader never
  sees a file that is empty or half written, and two processes starting at once cannot both
  take it.
* A pid file naming a live process other than ours is refused; one naming a dead process is
  stale and is replaced.
* A reader removes a pid file only when it names a process that is gone. A file it cannot
  parse is left alone: it may belong to a process whose link is a moment old, or to a human.
* The holder removes its pid file when it exits, and only if the file still names it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import click

__all__ = ["alive", "hold_pidfile", "read_pid"]


def alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parse(path: str) -> int | None:
    """The pid ``path`` holds, or None when there is no such file or it holds no number."""
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def read_pid(path: str) -> int | None:
    """The live process the pid file ``path`` names, else None. A file naming a process that
    is gone is removed; a file without a number is left as it is."""
    pid = _parse(path)
    if pid is None:
        return None
    if pid > 0 and alive(pid):
        return pid
    with contextlib.suppress(OSError):
        os.unlink(path)
    return None


def _link_whole(path: str, pid: int) -> bool:
    """Put a file holding ``pid`` at ``path`` in one step; False if ``path`` exists."""
    private = f"{path}.{pid}.tmp"
    with open(private, "w", encoding="ascii") as handle:
        handle.write(f"{pid}\n")
    try:
        os.link(private, path)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: create-exclusive, then write
        return _create_whole(path, pid)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(private)
    return True


def _create_whole(path: str, pid: int) -> bool:
    """``path`` created exclusively holding ``pid`` (one short write); False if it exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(f"{pid}\n")
    return True


@contextlib.contextmanager
def hold_pidfile(path: str | None) -> Iterator[None]:
    """Hold the pid file ``path`` (nothing when None) for the block; refuse, with a
    :class:`click.ClickException`, one that names another live process."""
    if not path:
        yield
        return
    path = os.path.abspath(path)
    me = os.getpid()
    while not _link_whole(path, me):
        other = _parse(path)
        if other == me:
            break
        if other is not None and other > 0 and alive(other):
            raise click.ClickException(f"pidfile {path} is held by running process {other}")
        # stale (its process is gone) or not a pid file we can read: ours replaces it
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    try:
        yield
    finally:
        if _parse(path) == me:
            with contextlib.suppress(OSError):
                os.unlink(path)
