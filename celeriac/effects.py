"""What the end of a task asks the worker to do: records to store, messages to publish, chord
members to count.

Rules (see docs/decisions/0014-middleware-and-io-free-tracer.md):

- The tracer and the workflow planner only *build* :class:`Effects`; they do no I/O. The
  worker's executor performs them at its next flush, in this order: the task's own result and
  every record here are stored, then chord members are counted (which can add records and
  messages: the chord body, or its failure), then messages are published, and only then is
  the task's message settled. So a continuation never runs before the result it follows is
  stored, and an ``acks_late`` message is acked only once its continuation is published.
- Effects cross a process boundary (prefork), so they hold plain data only: encoded records,
  envelopes and JSON-shaped chord bodies, never a Task, a Signature bound to an app, or a
  result object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from celeriac.message import Envelope

#: ``(task_id or key, state, encoded record)``: one result-store write
Record = tuple[str, str, bytes]
#: ``(group id, chord body)``: one chord header member that finished
ChordPart = tuple[str | None, dict[str, Any]]


@dataclass(slots=True)
class Effects:
    """I/O a finished task asks for, done by the executor (see the module's rules)."""

    records: list[Record] = field(default_factory=list)
    messages: list[tuple[str, Envelope]] = field(default_factory=list)
    chord_parts: list[ChordPart] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.records or self.messages or self.chord_parts)

    def extend(self, other: Effects) -> None:
        self.records.extend(other.records)
        self.messages.extend(other.messages)
        self.chord_parts.extend(other.chord_parts)


def plain(value: Any) -> Any:
    """``value`` with every mapping turned into a ``dict`` and every sequence but text into a
    ``list`` (a Signature becomes the dict it is), so it pickles without its app."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
