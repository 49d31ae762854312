"""The pure half of ``celeriac multi``: which nodes a command line names, and each node's
worker command line. No I/O here (the host name is passed in).

Rules (as Celery's ``celery multi``):

* Node names come first: a number N means ``celery1`` .. ``celeryN`` (``--range-prefix``
  changes ``celery``); other words are node names; a name without ``@`` gets ``@HOST``
  (``--hostname``, default this machine's name); ``%h`` in a name is the host.
* Everything after the names is passed to each worker, except multi's own options
  (``--pidfile``, ``--logfile``, ``--range-prefix``, ``--hostname``, ``--executable``,
  ``-q/--quiet``, ``--verbose``, ``--nosplash``).
* ``-c:1 10``, ``-Q:1-3 images``, ``-c:image 10``: an option for some nodes only (by
  1-based position, a range, a comma list, or name); it replaces the option given to all.
* ``--pidfile`` (default ``%n.pid``) and ``--logfile`` (default ``%n%I.log``) expand ``%n``
  (the node's name before ``@``), ``%h`` (the full node name), ``%d`` (the host's domain)
  and ``%I`` (empty: a node's pool processes log to its main log file).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["MultiArgs", "Node", "expand_path", "parse_multi_args"]

DEFAULT_PIDFILE = "%n.pid"
DEFAULT_LOGFILE = "%n%I.log"
#: multi's own options that take a value
_VALUE_OPTIONS = {"--pidfile": "pidfile", "--logfile": "logfile",
                  "--range-prefix": "range_prefix", "--hostname": "hostname",
                  "--executable": "executable"}
#: multi's own flags
_FLAGS = {"-q": "quiet", "--quiet": "quiet", "--verbose": "verbose", "--nosplash": "nosplash"}
_NODE_OPTION = re.compile(r"(?P<opt>-{1,2}[A-Za-z][\w-]*):(?P<sel>[^=\s]+)(?:=(?P<val>.*))?\Z")


@dataclass
class Node:
    """One worker that multi manages."""

    name: str
    #: the worker's own arguments (after ``celeriac worker``), node options applied
    argv: list[str]
    pidfile: str
    logfile: str

    @property
    def short_name(self) -> str:
        return self.name.partition("@")[0]


@dataclass
class MultiArgs:
    """A parsed ``celeriac multi COMMAND ...`` command line."""

    names: list[str]
    worker_argv: list[str]
    pidfile: str = DEFAULT_PIDFILE
    logfile: str = DEFAULT_LOGFILE
    range_prefix: str = "celery"
    hostname: str | None = None
    executable: str | None = None
    quiet: bool = False
    verbose: bool = False
    nosplash: bool = False
    #: (option, selector, value) for options given to some nodes only
    node_options: list[tuple[str, str, str | None]] = field(default_factory=list)

    def nodes(self, host: str) -> list[Node]:
        """The nodes named, each with its final worker arguments."""
        host = self.hostname or host
        names = _node_names(self.names, self.range_prefix, host)
        return [self._node(i, name, host) for i, name in enumerate(names, start=1)]

    def _node(self, position: int, name: str, host: str) -> Node:
        argv = list(self.worker_argv)
        for option, selector, value in self.node_options:
            if _selected(selector, position, name):
                argv = _replace_option(argv, option, value)
        short = name.partition("@")[0]
        domain = host.partition(".")[2]
        return Node(name=name, argv=argv,
                    pidfile=expand_path(self.pidfile, short, name, domain),
                    logfile=expand_path(self.logfile, short, name, domain))


def expand_path(template: str, short: str, name: str, domain: str) -> str:
    return (template.replace("%n", short).replace("%h", name).replace("%d", domain)
            .replace("%I", "").replace("%i", ""))


def _node_names(words: Sequence[str], prefix: str, host: str) -> list[str]:
    if len(words) == 1 and words[0].isdigit():
        words = [f"{prefix}{i}" for i in range(1, int(words[0]) + 1)]
    return [w.replace("%h", host) if "@" in w else f"{w}@{host}" for w in words]


def _selected(selector: str, position: int, name: str) -> bool:
    for part in selector.split(","):
        low, dash, high = part.partition("-")
        if dash and low.isdigit() and high.isdigit():
            if int(low) <= position <= int(high):
                return True
        elif part.isdigit():
            if int(part) == position:
                return True
        elif part in (name, name.partition("@")[0]):
            return True
    return False


def _replace_option(argv: list[str], option: str, value: str | None) -> list[str]:
    """``argv`` without ``option`` (and its value), then ``option value`` at the end."""
    out: list[str] = []
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == option:
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            skip = bool(nxt) and not nxt.startswith("-")
            continue
        if arg.startswith(option + "="):
            continue
        out.append(arg)
    return out + ([option] if value is None else [option, value])


def parse_multi_args(args: Sequence[str]) -> MultiArgs:
    """Split ``NODES... [OPTIONS]`` into node names, multi's options and the workers' ones."""
    rest = list(args)
    names: list[str] = []
    while rest and not rest[0].startswith("-"):
        names.append(rest.pop(0))
    parsed = MultiArgs(names=names, worker_argv=[])
    i = 0
    while i < len(rest):
        arg = rest[i]
        key, eq, inline = arg.partition("=")
        if key in _VALUE_OPTIONS:
            if eq:
                value = inline
            else:
                i += 1
                value = rest[i] if i < len(rest) else ""
            setattr(parsed, _VALUE_OPTIONS[key], value)
        elif arg in _FLAGS:
            setattr(parsed, _FLAGS[arg], True)
        elif (match := _NODE_OPTION.match(arg)) is not None:
            value = match.group("val")
            if value is None and i + 1 < len(rest) and not rest[i + 1].startswith("-"):
                i += 1
                value = rest[i]
            parsed.node_options.append((match.group("opt"), match.group("sel"), value))
        else:
            parsed.worker_argv.append(arg)
        i += 1
    return parsed


def command_line(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
