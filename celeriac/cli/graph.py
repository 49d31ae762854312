"""``celeriac graph workers|bootsteps``: Graphviz ``dot`` text, as ``celery graph``.

``graph workers`` draws the workers that answer (``inspect active_queues``) and the queues
each consumes; pipe it to ``dot -Tpng``. ``graph bootsteps`` prints one line: celeriac's
worker has no bootsteps (its start order is written in docs/worker.md).
"""

from __future__ import annotations

import json

import click

from celeriac.cli.context import CLIContext, global_options, pass_cli
from celeriac.cli.options import not_applicable

__all__ = ["graph", "workers_dot"]


def _quote(text: str) -> str:
    return json.dumps(text)  # a dot ID in double quotes with the same escapes as JSON


def workers_dot(queues_by_worker: dict[str, list[str]]) -> str:
    """A dot digraph: a box per worker, an ellipse per queue, an edge queue -> worker."""
    lines = ["digraph workers {", "  rankdir=LR;"]
    queues = sorted({q for names in queues_by_worker.values() for q in names})
    for name in queues:
        lines.append(f"  {_quote('queue:' + name)} [label={_quote(name)}, shape=ellipse];")
    for worker in sorted(queues_by_worker):
        lines.append(f"  {_quote(worker)} [shape=box];")
        for name in sorted(queues_by_worker[worker]):
            lines.append(f"  {_quote('queue:' + name)} -> {_quote(worker)};")
    lines.append("}")
    return "\n".join(lines)


@click.group()
def graph() -> None:
    """Graphviz dot output: graph workers (graph bootsteps: not applicable)."""


@graph.command()
@global_options(hidden=True)
def bootsteps() -> None:
    """Not applicable: celeriac's worker has no bootsteps."""
    not_applicable("graph bootsteps", "celeriac's worker has no bootsteps to draw",
                   "its start order is in docs/worker.md; `celeriac graph workers` draws "
                   "workers and queues", fatal=True)


@graph.command()
@click.option("-t", "--timeout", type=float, default=1.0, show_default=True,
              help="Seconds to wait for the workers' replies.")
@global_options(hidden=True)
@pass_cli
def workers(cli: CLIContext, timeout: float) -> None:
    """Draw the running workers and the queues they consume (dot text on stdout).

    \b
    Example:
      celeriac -A proj graph workers | dot -Tpng -o workers.png
    """
    replies = cli.app.control.broadcast("active_queues", reply=True, timeout=timeout) or []
    found: dict[str, list[str]] = {}
    for reply in replies:
        for worker, queues in reply.items():
            found[worker] = [str(q.get("name")) for q in queues if isinstance(q, dict)] \
                if isinstance(queues, list) else []
    cli.echo(workers_dot(found))
