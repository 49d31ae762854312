"""Pid files: the one a worker, beat or events process holds, and how a launcher reads one.

Rules:

* The holder keeps an exclusive ``flock`` on its pid file for as long as it runs. The lock,
  not the file's content, says who holds it: a process that died released it, so a stale
  file is simply taken over, and of two processes starting at once exactly one gets it (the
  other is refused, naming the holder). After locking, the holder checks the path still
  names the file it locked (a holder that was leaving may have removed it) and else tries
  again.
* The holder writes its pid into the locked file in one short write; a reader may see it
  empty for that moment, which is why:
* A reader never removes a pid file. :func:`read_pid` answers the live process a file names,
  or None; a file without a number, or naming a dead process, is None and left alone (the
  next holder takes it over).
* The holder removes its pid file when it exits, and only if the file still names it.
  Processes it forks (prefork children) close their copy of the file at once, so an
  orphaned child never keeps the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
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
    """The live process the pid file ``path`` names, else None (the file is left alone)."""
    pid = _parse(path)
    if pid is not None and pid > 0 and alive(pid):
        return pid
    return None


#: the fd of the pid file this process holds (closed in forked children: see below)
_held_fds: set[int] = set()


def _close_in_child() -> None:
    # A forked child (a prefork pool process) shares the lock's open file; left open, an
    # orphaned child would keep the pid file locked after its worker died.
    for fd in list(_held_fds):
        with contextlib.suppress(OSError):
            os.close(fd)
    _held_fds.clear()


os.register_at_fork(after_in_child=_close_in_child)


def _lock(path: str) -> int | None:
    """An fd of ``path`` (created if missing) holding its exclusive lock, or None when a live
    process holds the lock. The fd is the file the path names when this returns."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the file was removed (or replaced) after we opened it: again


@contextlib.contextmanager
def hold_pidfile(path: str | None) -> Iterator[None]:
    """Hold the pid file ``path`` (nothing when None) for the block; refuse, with a
    :class:`click.ClickException`, one another live process holds."""
    if not path:
        yield
        return
    path = os.path.abspath(path)
    fd = _lock(path)
    if fd is None:
        other = _parse(path)
        who = f"running process {other}" if other else "another running process"
        raise click.ClickException(f"pidfile {path} is held by {who}")
    me = os.getpid()
    _held_fds.add(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{me}\n".encode("ascii"), 0)
        yield
    finally:
        if _parse(path) == me:
            with contextlib.suppress(OSError):
                os.unlink(path)
        _held_fds.discard(fd)
        os.close(fd)
