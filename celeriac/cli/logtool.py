"""``celeriac logtool stats|traces|errors|incomplete|debug FILE...``: read worker log files.

As ``celery logtool``. A record starts with ``[YYYY-MM-DD HH:MM:SS...`` (the default
``worker_log_format``); lines that do not are the previous record's continuation (a
traceback). Task records are the worker's ``Task NAME[ID] received``, ``... succeeded in
Ns: RESULT``, ``... raised unexpected: ERROR``, ``... retry: ...``, ``... rejected: ...``
and ``... ignored``; everything else is skipped.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click

__all__ = ["LogReport", "logtool", "read_logs"]

_RECORD_START = re.compile(r"\[\d{4}-\d\d-\d\d[ T]\d\d:\d\d")
_TASK = re.compile(
    r"\] Task (?P<name>[\w.:-]+)\[(?P<id>[^\]]+)\] "
    r"(?P<what>received|succeeded in [\d.]+s|raised unexpected|retry|rejected|ignored)"
    r"(?::\s?(?P<rest>.*))?")
_OUTCOMES = {"succeeded": "success", "raised": "error", "retry": "retry",
             "rejected": "rejected", "ignored": "ignored"}


@dataclass
class TaskRecord:
    kind: str  # received, success, error, retry, rejected, ignored
    name: str
    task_id: str
    line: str
    detail: str = ""
    trace: list[str] = field(default_factory=list)


def _records(lines: Iterator[str]) -> Iterator[TaskRecord]:
    current: TaskRecord | None = None
    for raw in lines:
        line = raw.rstrip("\n")
        if not _RECORD_START.match(line):
            if current is not None and current.kind == "error":
                current.trace.append(line)
            continue
        if current is not None:
            yield current
            current = None
        match = _TASK.search(line)
        if match is None:
            continue
        what = match.group("what")
        kind = "received" if what == "received" else _OUTCOMES[what.split()[0]]
        current = TaskRecord(kind, match.group("name"), match.group("id"), line,
                             match.group("rest") or "")
    if current is not None:
        yield current


def read_logs(paths: Sequence[Path]) -> Iterator[TaskRecord]:
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as handle:
            yield from _records(iter(handle))


@dataclass
class LogReport:
    counts: Counter[str] = field(default_factory=Counter)
    received_by_name: Counter[str] = field(default_factory=Counter)
    pending: dict[str, TaskRecord] = field(default_factory=dict)
    errors: list[TaskRecord] = field(default_factory=list)

    def add(self, record: TaskRecord) -> None:
        self.counts[record.kind] += 1
        if record.kind == "received":
            self.received_by_name[record.name] += 1
            self.pending[record.task_id] = record
            return
        if record.kind != "retry":
            self.pending.pop(record.task_id, None)
        if record.kind == "error":
            self.errors.append(record)


def _report(files: Sequence[Path]) -> LogReport:
    report = LogReport()
    for record in read_logs(files):
        report.add(record)
    return report


_FILES = click.argument("files", nargs=-1, required=True,
                        type=click.Path(exists=True, dir_okay=False, path_type=Path))


@click.group()
def logtool() -> None:
    """Read worker log files: stats, traces, errors, incomplete, debug."""


@logtool.command()
@_FILES
def stats(files: tuple[Path, ...]) -> None:
    """Task totals and the tasks received most.

    \b
    Example:
      celeriac logtool stats worker1.log worker2.log
    """
    report = _report(files)
    c = report.counts
    click.echo("Report\n======")
    click.echo(f"Task total: {c['received']}")
    click.echo(f"Task errors: {c['error']}")
    click.echo(f"Task success: {c['success']}")
    click.echo(f"Task retries: {c['retry']}")
    click.echo(f"Task completed: {c['success'] + c['error'] + c['rejected'] + c['ignored']}")
    click.echo("Tasks\n=====")
    for name, count in report.received_by_name.most_common():
        click.echo(f"{name}: {count}")


@logtool.command()
@_FILES
def traces(files: tuple[Path, ...]) -> None:
    """Print the traceback of each failed task."""
    for record in _report(files).errors:
        click.echo(f"{record.name}[{record.task_id}]: {record.detail}")
        for line in record.trace:
            click.echo(line)


@logtool.command()
@_FILES
def errors(files: tuple[Path, ...]) -> None:
    """Print the log line of each failed task."""
    for record in _report(files).errors:
        click.echo(record.line)


@logtool.command()
@_FILES
def incomplete(files: tuple[Path, ...]) -> None:
    """Print the ids of tasks received but never finished (lost, or still running)."""
    for task_id, record in _report(files).pending.items():
        click.echo(f"{task_id} {record.name}")


@logtool.command()
@_FILES
def debug(files: tuple[Path, ...]) -> None:
    """Print each task record found, classified (to check what the other commands read)."""
    for record in read_logs(files):
        click.echo(f"{record.kind:<9} {record.name}[{record.task_id}] {record.detail}".rstrip())
