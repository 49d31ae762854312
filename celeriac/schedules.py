"""When periodic tasks are due: ``schedule`` (every N seconds), ``crontab`` (wall-clock times).

Pure maths: no function here reads a clock except ``now()``, which uses the clock beat binds to
the schedule (or ``nowfun``, or the app's). ``next_run_after(cron, after)`` and
``BaseSchedule.next_due(after)`` take the moment they reason about.

Two contracts:

* Celery's: ``is_due(last_run_at) -> schedstate(is_due, next)`` where ``next`` is the number of
  seconds until the schedule should be checked again, plus ``remaining_estimate(last_run_at)``.
  A user subclass may override ``is_due``; beat then asks it (and only it) each tick.
* beat's: ``next_due(after)``, the first run time strictly after ``after`` (aware, UTC). Every
  scheduler computes the same run times from it, which lets several beats agree on each run's
  deterministic id. ``schedule`` runs on multiples of its interval counted from the Unix epoch.

Daylight saving (``crontab`` fields are wall-clock times in the schedule's time zone), as cron:

* an hour field of ``*`` means "every hour that happens": wall times skipped when clocks go
  forward do not run, wall times repeated when clocks go back run in both occurrences;
* specific hours are appointments kept once a day: a wall time skipped by the change runs at the
  first valid time after the gap (02:30 on a spring-forward day runs at 03:00), a repeated one
  runs in its first occurrence only.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, NamedTuple

from celeriac._utils.zones import zone

__all__ = [
    "BaseSchedule",
    "ParseException",
    "crontab",
    "maybe_schedule",
    "next_run_after",
    "parse_field",
    "schedstate",
    "schedule",
    "solar",
]

FIELDS: dict[str, tuple[int, int]] = {
    "minute": (0, 59),
    "hour": (0, 23),
    "day_of_week": (0, 6),
    "day_of_month": (1, 31),
    "month_of_year": (1, 12),
}
_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_NAMES: dict[str, dict[str, int]] = {
    "day_of_week": {name[:length]: number for length in (3, None)
                    for number, name in enumerate(_DAYS)},
    "month_of_year": {name[:length]: number + 1 for length in (3, None)
                      for number, name in enumerate(_MONTHS)},
}
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Wider than any clock change (DST moves 1 h, a few zones moved 2 h): how far before a moment a
# repeated wall time may lie and still come after it.
_FOLD_MARGIN = timedelta(hours=3)
# Years searched for a crontab's next run (Feb 29 on a given weekday repeats within 40 years).
_SEARCH_YEARS = 100
# Missed runs counted one by one before the count stops ("at least N").
COUNT_LIMIT = 1000


class schedstate(NamedTuple):
    """Celery's answer of ``is_due``: run now?, and seconds until the next check."""

    is_due: bool
    next: float


class ParseException(ValueError):
    """A crontab field that cannot be parsed, or a crontab that can never run."""


# -- crontab fields ------------------------------------------------------------------------------


def parse_field(spec: int | str | Iterable[int | str], field: str) -> frozenset[int]:
    """The values a crontab field matches: ``'*/15'``, ``'1-30/5'``, ``'mon-fri'``, ``'jan,jul'``,
    ``[0, 30]``, ``7``... Day of week 0 and 7 are Sunday; ranges may wrap (``'fri-mon'``)."""
    if field not in FIELDS:
        raise ValueError(f"unknown crontab field {field!r} (known: {', '.join(FIELDS)})")
    found = _parse_any(spec, field, spec)
    if field == "day_of_week" and 7 in found:
        found = (found - {7}) | {0}
    if not found:
        raise ParseException(f"crontab {field}={spec!r}: matches no value")
    return frozenset(found)


def _parse_any(spec: Any, field: str, whole: Any) -> set[int]:
    if isinstance(spec, bool | Mapping) or not isinstance(spec, int | str | Iterable):
        raise TypeError(
            f"crontab {field}: expected an int, a str or an iterable of them, "
            f"got {type(spec).__name__} {spec!r}"
        )
    if isinstance(spec, int):
        return {_in_range(spec, field, whole)}
    if isinstance(spec, str):
        found: set[int] = set()
        for part in spec.split(","):
            found |= _parse_part(part.strip(), field, whole)
        return found
    found = set()
    for item in spec:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise TypeError(f"crontab {field}={whole!r}: {item!r} is not an int or a str")
        found |= _parse_any(item, field, whole)
    return found


def _parse_part(part: str, field: str, whole: Any) -> set[int]:
    low, high = FIELDS[field]
    where = f"crontab {field}={whole!r}"
    if not part:
        raise ParseException(f"{where}: empty item")
    body, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not step_text.strip().isdigit() or int(step_text) == 0:
            raise ParseException(f"{where}: the step in {part!r} must be a whole number above 0")
        step = int(step_text)
    body = body.strip()
    if body == "*":
        start, end = low, high
    elif "-" in body.lstrip("-"):
        first, _, last = body.partition("-")
        if not first.strip() or not last.strip():
            raise ParseException(f"{where}: {body!r} is not a range like 1-5")
        start, end = _number(first, field, whole), _number(last, field, whole)
    elif body.startswith("-"):
        raise ParseException(f"{where}: {body!r} is negative (allowed: {low}-{high})")
    else:
        start = _number(body, field, whole)
        end = high if slash else start
    if start <= end:
        return set(range(start, end + 1, step))
    # A wrapping range: 'fri-mon', '22-2'.
    values = [*range(start, high + 1), *range(low, end + 1)]
    return set(values[::step])


def _number(text: str, field: str, whole: Any) -> int:
    low, high = FIELDS[field]
    top = 7 if field == "day_of_week" else high
    word = text.strip().lower()
    if word.isdigit():
        return _in_range(int(word), field, whole)
    names = _NAMES.get(field)
    if names is not None and word in names:
        return names[word]
    if names is not None:
        kind = "day" if field == "day_of_week" else "month"
        raise ParseException(
            f"crontab {field}={whole!r}: {text.strip()!r} is no {kind} name or number"
            f" ({', '.join(list(names)[:7 if kind == 'day' else 12])} or {low}-{top})"
        )
    raise ParseException(f"crontab {field}={whole!r}: {text.strip()!r} is not a number")


def _in_range(value: int, field: str, whole: Any) -> int:
    low, high = FIELDS[field]
    top = 7 if field == "day_of_week" else high
    if not low <= value <= top:
        raise ParseException(f"crontab {field}={whole!r}: {value} is out of range {low}-{top}")
    return value


# -- schedules -----------------------------------------------------------------------------------


class BaseSchedule:
    """What every schedule has: a time zone, a clock, the two contracts of the module doc."""

    def __init__(
        self, nowfun: Callable[[], datetime] | None = None, app: Any = None,
        tz: tzinfo | str | None = None,
    ) -> None:
        self.nowfun = nowfun
        self.app = app
        self._tz: tzinfo | None = zone(tz, "tz") if isinstance(tz, str) else tz
        self._clock: Callable[[], datetime] | None = None

    @property
    def tz(self) -> tzinfo:
        explicit: tzinfo | None = getattr(self, "_tz", None)
        if explicit is not None:
            return explicit
        app = getattr(self, "app", None)
        return (app.timezone if app is not None else None) or UTC

    def now(self) -> datetime:
        clock = getattr(self, "nowfun", None) or getattr(self, "_clock", None)
        if clock is not None:
            return self.maybe_make_aware(clock())
        app = getattr(self, "app", None)
        if app is not None:
            return self.maybe_make_aware(app.now())
        return datetime.now(self.tz)

    def maybe_make_aware(self, moment: datetime) -> datetime:
        """A naive datetime is taken to be in the schedule's time zone."""
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=self.tz)

    def to_local(self, moment: datetime) -> datetime:
        return self.maybe_make_aware(moment).astimezone(self.tz)

    def bind(self, app: Any, clock: Callable[[], datetime]) -> BaseSchedule:
        """A copy that reads ``clock`` (unless given ``nowfun``) and ``app``'s time zone (unless
        given an app or a zone): how beat hands its clock to schedules."""
        bound = copy.copy(self)
        if getattr(bound, "app", None) is None:
            bound.app = app
        bound._clock = clock
        return bound

    def is_due(self, last_run_at: datetime) -> schedstate:
        raise NotImplementedError(f"{type(self).__name__} must implement is_due(last_run_at)")

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        return self.next_due(self.maybe_make_aware(last_run_at)) - self.now()

    def next_due(self, after: datetime) -> datetime:
        """The first run time strictly after ``after``, as an aware UTC datetime."""
        raise NotImplementedError(f"{type(self).__name__} must implement next_due(after)")

    def due_between(
        self, after: datetime, until: datetime, limit: int = COUNT_LIMIT
    ) -> tuple[int, datetime | None]:
        """How many runs fall in ``(after, until]`` (counting stops at ``limit``) and the last
        of them (exact even past the limit), or ``(0, None)``."""
        until = self.maybe_make_aware(until).astimezone(UTC)
        count, latest = 0, None
        moment = self.next_due(self.maybe_make_aware(after))
        while moment <= until:
            count, latest = count + 1, moment
            if count >= limit:
                return count, self._last_due(moment, until)
            moment = self.next_due(moment)
        return count, latest

    def _last_due(self, floor: datetime, until: datetime) -> datetime:
        """The last run in ``[floor, until]`` (``floor`` is one): look back from ``until`` in
        growing windows so that a long gap costs a few steps, not one per missed run."""
        for window in (timedelta(hours=1), timedelta(days=1), timedelta(days=32),
                       timedelta(days=366)):
            start = max(until - window, floor)
            moment = self.next_due(start - _MICROSECOND)
            if moment <= until:
                while (following := self.next_due(moment)) <= until:
                    moment = following
                return moment
        # Runs rarer than yearly: few enough to step through.
        moment = floor
        while (following := self.next_due(moment)) <= until:
            moment = following
        return moment


class schedule(BaseSchedule):
    """Every ``run_every`` (seconds or a timedelta)."""

    def __init__(
        self, run_every: float | timedelta | None = None, relative: bool = False,
        nowfun: Callable[[], datetime] | None = None, app: Any = None,
        tz: tzinfo | str | None = None,
    ) -> None:
        super().__init__(nowfun=nowfun, app=app, tz=tz)
        if run_every is None or isinstance(run_every, bool):
            raise TypeError(
                f"schedule(run_every=...) needs seconds or a timedelta, got {run_every!r}"
            )
        every = run_every if isinstance(run_every, timedelta) else timedelta(seconds=run_every)
        if every // _MICROSECOND <= 0:
            raise ValueError(f"schedule(run_every={run_every!r}): the interval must be positive")
        self.run_every = every
        #: Celery's flag (round run times to the interval's unit); beat's runs are aligned anyway
        self.relative = relative

    @property
    def seconds(self) -> float:
        return self.run_every.total_seconds()

    @property
    def human_seconds(self) -> str:
        seconds = self.seconds
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if seconds >= size:
                amount = seconds / size
                return f"{amount:.2f} {unit}{'' if amount == 1 else 's'}"
        return f"{seconds:.2f} second{'' if seconds == 1 else 's'}"

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        end = self.maybe_make_aware(last_run_at) + self.run_every
        if self.relative:
            end = _truncate(end, self.run_every)
        return end - self.now()

    def is_due(self, last_run_at: datetime) -> schedstate:
        remaining_s = self.remaining_estimate(last_run_at).total_seconds()
        if remaining_s <= 0:
            return schedstate(True, self.seconds)
        return schedstate(False, remaining_s)

    def next_due(self, after: datetime) -> datetime:
        step_us = self.run_every // _MICROSECOND
        elapsed_us = (self.maybe_make_aware(after) - _EPOCH) // _MICROSECOND
        return _EPOCH + timedelta(microseconds=(elapsed_us // step_us + 1) * step_us)

    def due_between(
        self, after: datetime, until: datetime, limit: int = COUNT_LIMIT
    ) -> tuple[int, datetime | None]:
        step_us = self.run_every // _MICROSECOND
        first = (self.maybe_make_aware(after) - _EPOCH) // _MICROSECOND // step_us
        last = (self.maybe_make_aware(until) - _EPOCH) // _MICROSECOND // step_us
        if last <= first:
            return 0, None
        return last - first, _EPOCH + timedelta(microseconds=last * step_us)

    def __repr__(self) -> str:
        return f"<freq: {self.human_seconds}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, schedule):
            return self.run_every == other.run_every
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.run_every)


def _truncate(moment: datetime, every: timedelta) -> datetime:
    """``moment`` cut down to the unit of ``every`` (days, hours, minutes or seconds)."""
    seconds = every.total_seconds()
    if seconds >= 86400:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if seconds >= 3600:
        return moment.replace(minute=0, second=0, microsecond=0)
    if seconds >= 60:
        return moment.replace(second=0, microsecond=0)
    return moment.replace(microsecond=0)


class crontab(BaseSchedule):
    """Cron-like wall-clock times in the schedule's time zone (the app's ``timezone``).

    A day must match both ``day_of_month`` and ``day_of_week`` (as Celery; cron ORs them).
    """

    def __init__(
        self,
        minute: int | str | Iterable[int | str] = "*",
        hour: int | str | Iterable[int | str] = "*",
        day_of_week: int | str | Iterable[int | str] = "*",
        day_of_month: int | str | Iterable[int | str] = "*",
        month_of_year: int | str | Iterable[int | str] = "*",
        *,
        nowfun: Callable[[], datetime] | None = None,
        app: Any = None,
        tz: tzinfo | str | None = None,
    ) -> None:
        super().__init__(nowfun=nowfun, app=app, tz=tz)
        self._orig = (minute, hour, day_of_week, day_of_month, month_of_year)
        self.minute = parse_field(minute, "minute")
        self.hour = parse_field(hour, "hour")
        self.day_of_week = parse_field(day_of_week, "day_of_week")
        self.day_of_month = parse_field(day_of_month, "day_of_month")
        self.month_of_year = parse_field(month_of_year, "month_of_year")
        if not any(day <= _MONTH_DAYS[month - 1]
                   for month in self.month_of_year for day in self.day_of_month):
            raise ParseException(
                f"crontab day_of_month={day_of_month!r} never occurs in "
                f"month_of_year={month_of_year!r}"
            )

    @classmethod
    def from_string(cls, text: str, **options: Any) -> crontab:
        """From a cron line's five fields: ``'30 7 * * mon'`` (minute hour day month weekday)."""
        parts = text.split()
        if len(parts) != 5:
            raise ParseException(f"crontab {text!r}: expected 5 fields, got {len(parts)}")
        minute, hour, day_of_month, month_of_year, day_of_week = parts
        return cls(minute, hour, day_of_week, day_of_month, month_of_year, **options)

    @property
    def every_hour(self) -> bool:
        return len(self.hour) == 24

    def next_due(self, after: datetime) -> datetime:
        return next_run_after(self, self.maybe_make_aware(after)).astimezone(UTC)

    def is_due(self, last_run_at: datetime) -> schedstate:
        now = self.now()
        if self.next_due(last_run_at) <= now:
            return schedstate(True, (self.next_due(now) - now).total_seconds())
        return schedstate(False, (self.next_due(last_run_at) - now).total_seconds())

    def __repr__(self) -> str:
        names = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
        shown = " ".join(f"{n}={v!r}" for n, v in zip(names, self._orig, strict=True))
        return f"<crontab: {shown}>"

    def _key(self) -> tuple[frozenset[int], ...]:
        return (self.minute, self.hour, self.day_of_week, self.day_of_month, self.month_of_year)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, crontab):
            return self._key() == other._key()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._key())


def next_run_after(cron: crontab, after: datetime, tz: tzinfo | None = None) -> datetime:
    """The first time ``cron`` runs strictly after ``after``, in ``tz`` (default: the crontab's
    zone; a naive ``after`` is taken to be in it). Daylight saving as the module doc says."""
    zone = tz or cron.tz
    after_utc = (after if after.tzinfo else after.replace(tzinfo=zone)).astimezone(UTC)
    local = after_utc.astimezone(zone)
    start = local.replace(tzinfo=None, second=0, microsecond=0)
    offsets = {(after_utc + shift).astimezone(zone).utcoffset() for shift in
               (-_FOLD_MARGIN, timedelta(0), _FOLD_MARGIN)}
    # When clocks change nearby, a wall time a little before ``after`` may repeat after it, and
    # a later wall time may come first; elsewhere wall order is time order.
    margin = _FOLD_MARGIN if len(offsets) > 1 else timedelta(0)
    start -= margin
    best: datetime | None = None
    best_wall: datetime | None = None
    for wall in _wall_times(cron, start):
        if best_wall is not None and wall > best_wall + margin:
            break
        for instant in _instants(wall, zone, cron.every_hour):
            if instant > after_utc and (best is None or instant < best):
                best, best_wall = instant, instant.astimezone(zone).replace(tzinfo=None)
    if best is None:
        raise ParseException(f"{cron!r} does not run within {_SEARCH_YEARS} years of {after}")
    return best.astimezone(zone)


def _wall_times(cron: crontab, start: datetime) -> Iterator[datetime]:
    """Naive wall times ``cron`` matches, from ``start`` on, in order."""
    day: date = start.date()
    end_year = day.year + _SEARCH_YEARS
    hours, minutes = sorted(cron.hour), sorted(cron.minute)
    while day.year < end_year:
        if day.month not in cron.month_of_year:
            day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
            continue
        if day.day in cron.day_of_month and (day.weekday() + 1) % 7 in cron.day_of_week:
            first = (start.hour, start.minute) if day == start.date() else (0, 0)
            for hour in hours:
                if hour < first[0]:
                    continue
                for minute in minutes:
                    if (hour, minute) >= first:
                        yield datetime(day.year, day.month, day.day, hour, minute)
        day += timedelta(days=1)


def _instants(wall: datetime, zone: tzinfo, every_hour: bool) -> list[datetime]:
    """The UTC instants at which the wall time ``wall`` runs (see the module doc)."""
    early = wall.replace(tzinfo=zone).astimezone(UTC)
    late = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if early == late:
        return [early]
    if early < late:  # the clocks went back: this wall time happened twice
        return [early, late] if every_hour else [early]
    # The clocks went forward over this wall time: it never happened.
    return [] if every_hour else [_transition(late, early, zone)]


def _transition(before: datetime, after: datetime, zone: tzinfo) -> datetime:
    """The instant in ``(before, after]`` where ``zone`` switches to its offset at ``after``."""
    target = after.astimezone(zone).utcoffset()
    low, high = math.floor(before.timestamp()), math.ceil(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def maybe_schedule(
    value: float | timedelta | BaseSchedule | Any, relative: bool = False, app: Any = None
) -> Any:
    """A schedule from a ``beat_schedule`` value: seconds, a timedelta or a schedule object."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = timedelta(seconds=value)
    if isinstance(value, timedelta):
        return schedule(value, relative=relative, app=app)
    if not callable(getattr(value, "is_due", None)):
        raise TypeError(
            f"{value!r} is not a schedule: use seconds, a timedelta, schedule(...), crontab(...)"
            " or an object with is_due(last_run_at)"
        )
    return value


class solar(BaseSchedule):
    """Celery's sunrise/sunset schedule: not supported (yet)."""

    def __init__(self, event: str, lat: float, lon: float, **kwargs: Any) -> None:
        raise NotImplementedError(
            "solar schedules are not supported by celeriac; use crontab(...) instead"
        )
