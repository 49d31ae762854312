"""Files named on the command line (``--pidfile``, ``--logfile``): Celery's node-name
expansion, and their directories.

Rules:

* A worker's ``--pidfile`` and ``--logfile`` expand as Celery's worker expands them, from
  its node name ``name@host``: ``%n`` the name, ``%h`` the host, ``%d`` the host's domain,
  ``%i`` the process index (``0``: the main process) and ``%I`` the index after a ``-``
  (nothing in the main process; a prefork child logs to its parent's file). ``multi``
  expands its own templates first (:mod:`celeriac.cli.multi_nodes`).
* A missing directory of such a file is created, as ``multi`` does; one that cannot be is one
  line naming the option and the reason, exit status 2.
"""

from __future__ import annotations

import os

from celeriac.cli.mistakes import Mistake

__all__ = ["make_parent_dir", "node_format"]


def node_format(template: str | None, nodename: str) -> str | None:
    """``template`` with the node ``nodename``'s fields expanded (None stays None)."""
    if template is None:
        return None
    name, at, host = nodename.partition("@")
    if not at:
        name, host = "celeriac", nodename
    domain = host.partition(".")[2]
    return (template.replace("%n", name).replace("%h", host).replace("%d", domain)
            .replace("%i", "0").replace("%I", ""))


def make_parent_dir(option: str, path: str | None) -> None:
    """Create the directory ``path`` (given to ``option``) goes in, if it is missing."""
    if not path:
        return
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise Mistake(f"{option} {path}: cannot create the directory {parent}: "
                      f"{exc.strerror or exc}") from None
