"""One periodic task as beat sees it: what to send, on which schedule, and when it last ran."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celeriac.exceptions import ImproperlyConfigured
from celeriac.schedules import BaseSchedule, maybe_schedule, schedstate

__all__ = ["ScheduleEntry"]

#: the keys of a ``beat_schedule`` entry
ENTRY_KEYS = frozenset({"task", "schedule", "args", "kwargs", "options", "relative"})


@dataclass
class ScheduleEntry:
    """A ``beat_schedule`` entry plus its state (the time of the last run, how many runs)."""

    name: str
    task: str
    schedule: Any
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    relative: bool = False
    #: when the last run was due (``next_due`` schedules) or sent (``is_due`` ones), UTC
    last_run_at: datetime | None = None
    total_run_count: int = 0

    @classmethod
    def from_spec(
        cls,
        name: str,
        spec: Mapping[str, Any],
        *,
        app: Any = None,
        clock: Callable[[], datetime] | None = None,
    ) -> ScheduleEntry:
        """Parse one ``beat_schedule`` value; the schedule gets ``app``'s zone and ``clock``."""
        where = f"beat_schedule[{name!r}]"
        if not isinstance(spec, Mapping):
            raise ImproperlyConfigured(f"{where} must be a dict, got {type(spec).__name__}")
        unknown = set(spec) - ENTRY_KEYS
        if unknown:
            raise ImproperlyConfigured(
                f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}"
                f" (known: {', '.join(sorted(ENTRY_KEYS))})"
            )
        task = spec.get("task")
        if not isinstance(task, str) or not task:
            raise ImproperlyConfigured(f"{where} needs 'task': the name of a task")
        if spec.get("schedule") is None:
            raise ImproperlyConfigured(f"{where} needs 'schedule': seconds, timedelta or crontab")
        args = spec.get("args") or ()
        if not isinstance(args, list | tuple):
            raise ImproperlyConfigured(
                f"{where}: 'args' must be a list or tuple, got {args!r}"
                " (a one-item tuple needs a trailing comma: ('x',))"
            )
        kwargs = spec.get("kwargs") or {}
        options = spec.get("options") or {}
        for key, value in (("kwargs", kwargs), ("options", options)):
            if not isinstance(value, Mapping):
                raise ImproperlyConfigured(f"{where}: {key!r} must be a dict, got {value!r}")
        relative = bool(spec.get("relative", False))
        try:
            schedule = maybe_schedule(spec["schedule"], relative=relative)
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"{where}: {exc}") from exc
        if isinstance(schedule, BaseSchedule) and clock is not None:
            schedule = schedule.bind(app, clock)
        return cls(name, task, schedule, tuple(args), dict(kwargs), dict(options), relative)

    @property
    def uses_is_due(self) -> bool:
        """Whether beat must ask ``is_due`` each tick: a schedule whose own class (not one of
        ours) overrides ``is_due`` without ``next_due``."""
        return _overrides_is_due(self.schedule)

    @property
    def fingerprint(self) -> str:
        """Changes when the schedule does (then the stored last run no longer applies)."""
        sched = self.schedule
        cls = type(sched)
        own_repr: object = cls.__repr__  # mypy deems the two callables never identical
        shown = repr(sched) if own_repr is not object.__repr__ else ""
        zone = getattr(sched, "tz", "") if isinstance(sched, BaseSchedule) else ""
        return f"{cls.__module__}.{cls.__qualname__}|{shown}|{zone}"

    def is_due(self) -> schedstate:
        """Celery's ``entry.is_due()``: the schedule's answer for the last run."""
        last = self.last_run_at
        if last is None:
            last = self.schedule.now()
        state: schedstate = self.schedule.is_due(last)
        return state

    def __repr__(self) -> str:
        call = ", ".join([*map(repr, self.args), *(f"{k}={v!r}" for k, v in self.kwargs.items())])
        return f"<ScheduleEntry: {self.name} {self.task}({call}) {self.schedule!r}>"


def _owner(cls: type, attribute: str) -> type:
    return next(klass for klass in cls.__mro__ if attribute in vars(klass))


def _overrides_is_due(sched: Any) -> bool:
    if not isinstance(sched, BaseSchedule):
        return True
    cls = type(sched)
    is_due_owner, next_due_owner = _owner(cls, "is_due"), _owner(cls, "next_due")
    return is_due_owner is not next_due_owner and issubclass(is_due_owner, next_due_owner)
