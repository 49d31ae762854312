"""crontab: parsing (with clear errors), next-run maths, daylight saving both ways."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from celeriac.schedules import ParseException, crontab, next_run_after, parse_field

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SHANGHAI = ZoneInfo("Asia/Shanghai")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")

# -- parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "spec", "expected"),
    [
        ("minute", "*", set(range(60))),
        ("minute", 5, {5}),
        ("minute", "*/15", {0, 15, 30, 45}),
        ("minute", "1-30/5", {1, 6, 11, 16, 21, 26}),
        ("minute", "5/20", {5, 25, 45}),
        ("minute", "1,13,30-45,50-59/2", {1, 13, *range(30, 46), 50, 52, 54, 56, 58}),
        ("minute", [0, "30"], {0, 30}),
        ("minute", range(0, 10, 3), {0, 3, 6, 9}),
        ("minute", " 7 , 8 ", {7, 8}),
        ("hour", "*/3", {0, 3, 6, 9, 12, 15, 18, 21}),
        ("hour", "0,8-17/2", {0, 8, 10, 12, 14, 16}),
        ("hour", "22-2", {22, 23, 0, 1, 2}),
        ("day_of_week", "*", set(range(7))),
        ("day_of_week", 1, {1}),
        ("day_of_week", "mon-fri", {1, 2, 3, 4, 5}),
        ("day_of_week", "MON-Fri", {1, 2, 3, 4, 5}),
        ("day_of_week", "sun", {0}),
        ("day_of_week", "sunday", {0}),
        ("day_of_week", 7, {0}),
        ("day_of_week", "5-7", {5, 6, 0}),
        ("day_of_week", "fri-mon", {5, 6, 0, 1}),
        ("day_of_week", "sat,sun", {6, 0}),
        ("day_of_week", "thu,fri", {4, 5}),
        ("day_of_week", "*/2", {0, 2, 4, 6}),
        ("day_of_month", "1", {1}),
        ("day_of_month", "2-30/2", set(range(2, 31, 2))),
        ("day_of_month", "*", set(range(1, 32))),
        ("month_of_year", "jan,jul", {1, 7}),
        ("month_of_year", "March-may", {3, 4, 5}),
        ("month_of_year", "*/3", {1, 4, 7, 10}),
        ("month_of_year", "nov-feb", {11, 12, 1, 2}),
    ],
)
def test_parse_field(field: str, spec: Any, expected: set[int]) -> None:
    assert parse_field(spec, field) == frozenset(expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"minute": 60}, "crontab minute=60: 60 is out of range 0-59"),
        ({"minute": "60"}, "60 is out of range 0-59"),
        ({"minute": -1}, "-1 is out of range 0-59"),
        ({"minute": "-1"}, "'-1' is negative"),
        ({"minute": "*/0"}, "the step in '*/0' must be a whole number above 0"),
        ({"minute": "*/x"}, "the step in '*/x'"),
        ({"minute": ""}, "empty item"),
        ({"minute": "1,,2"}, "empty item"),
        ({"minute": "abc"}, "'abc' is not a number"),
        ({"hour": "24"}, "crontab hour='24': 24 is out of range 0-23"),
        ({"hour": "1-"}, "'1-' is not a range like 1-5"),
        ({"day_of_week": "mnday"}, "'mnday' is no day name or number (sun, mon"),
        ({"day_of_week": 8}, "8 is out of range 0-7"),
        ({"day_of_month": 0}, "0 is out of range 1-31"),
        ({"day_of_month": "32"}, "32 is out of range 1-31"),
        ({"month_of_year": "13"}, "13 is out of range 1-12"),
        ({"month_of_year": "foo"}, "'foo' is no month name or number (jan, feb"),
        ({"day_of_month": 31, "month_of_year": "feb,apr"}, "never occurs in month_of_year"),
        ({"day_of_month": 30, "month_of_year": 2}, "day_of_month=30 never occurs"),
    ],
)
def test_parse_errors_name_the_field_and_the_problem(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ParseException) as info:
        crontab(**kwargs)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("spec", [1.5, None, True, {"a": 1}, [object()]])
def test_wrong_types_raise_type_error(spec: Any) -> None:
    with pytest.raises(TypeError, match="crontab minute"):
        crontab(minute=spec)


def test_unknown_field() -> None:
    with pytest.raises(ValueError, match="unknown crontab field 'second'"):
        parse_field("*", "second")


def test_from_string_uses_cron_field_order() -> None:
    cron = crontab.from_string("30 7 1-7 * mon")
    assert cron == crontab(minute=30, hour=7, day_of_month="1-7", day_of_week=1)
    with pytest.raises(ParseException, match="expected 5 fields, got 2"):
        crontab.from_string("30 7")


def test_equality_hash_and_repr() -> None:
    assert crontab(minute="0,30") == crontab(minute=[30, 0])
    assert hash(crontab(minute="0,30")) == hash(crontab(minute=[30, 0]))
    assert crontab(minute=1) != crontab(minute=2)
    assert "minute=30" in repr(crontab(minute=30)) and "day_of_week=1" in repr(
        crontab(minute=30, day_of_week=1))


def test_feb_29_is_possible() -> None:
    cron = crontab(0, 0, day_of_month=29, month_of_year=2, tz=UTC)
    assert next_run_after(cron, datetime(2025, 1, 1, tzinfo=UTC)) == datetime(
        2028, 2, 29, tzinfo=UTC)


# -- next run ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        (crontab(), datetime(2024, 5, 6, 10, 0, 30), datetime(2024, 5, 6, 10, 1)),
        (crontab(), datetime(2024, 5, 6, 10, 1), datetime(2024, 5, 6, 10, 2)),
        (crontab(minute=0, hour=0), datetime(2024, 5, 6, 0, 0), datetime(2024, 5, 7, 0, 0)),
        (crontab(minute="*/15"), datetime(2024, 5, 6, 10, 7), datetime(2024, 5, 6, 10, 15)),
        (crontab(minute=0, hour="*/3"), datetime(2024, 5, 6, 22, 0), datetime(2024, 5, 7, 0, 0)),
        # 2024-05-06 is a Monday.
        (crontab(hour=7, minute=30, day_of_week=1), datetime(2024, 5, 6, 7, 30),
         datetime(2024, 5, 13, 7, 30)),
        (crontab(hour=7, minute=30, day_of_week="sat,sun"), datetime(2024, 5, 6),
         datetime(2024, 5, 11, 7, 30)),
        (crontab(0, 0, day_of_month=31), datetime(2024, 4, 1), datetime(2024, 5, 31)),
        (crontab(0, 0, day_of_month=1, month_of_year="jan,jul"), datetime(2024, 5, 6),
         datetime(2024, 7, 1)),
        (crontab(0, 0, day_of_month="1-7", day_of_week="mon"), datetime(2024, 5, 7),
         datetime(2024, 6, 3)),
        (crontab(59, 23, day_of_month=31, month_of_year=12), datetime(2024, 12, 31, 23, 59),
         datetime(2025, 12, 31, 23, 59)),
    ],
)
def test_next_run_after(cron: crontab, after: datetime, expected: datetime) -> None:
    result = next_run_after(cron, after.replace(tzinfo=UTC))
    assert result == expected.replace(tzinfo=UTC)
    assert result.tzinfo is UTC


def test_naive_after_is_taken_in_the_crontab_zone() -> None:
    cron = crontab(minute=0, hour=9, tz="Asia/Shanghai")
    result = next_run_after(cron, datetime(2024, 5, 6, 8, 0))
    assert result == datetime(2024, 5, 6, 9, 0, tzinfo=SHANGHAI)
    assert result.tzinfo == SHANGHAI


def test_monday_20_20_in_shanghai() -> None:
    cron = crontab(hour=20, minute=20, day_of_week=1, tz="Asia/Shanghai")
    # Sunday 2024-05-05 23:00 UTC is already Monday 07:00 in Shanghai.
    after = datetime(2024, 5, 5, 23, 0, tzinfo=UTC)
    first = next_run_after(cron, after)
    assert first == datetime(2024, 5, 6, 20, 20, tzinfo=SHANGHAI)
    assert first.astimezone(UTC) == datetime(2024, 5, 6, 12, 20, tzinfo=UTC)
    assert next_run_after(cron, first) == datetime(2024, 5, 13, 20, 20, tzinfo=SHANGHAI)
    # Monday 20:20 in UTC is another instant: the zone matters.
    utc_cron = crontab(hour=20, minute=20, day_of_week=1, tz=UTC)
    assert next_run_after(utc_cron, after) == datetime(2024, 5, 6, 20, 20, tzinfo=UTC)


def test_the_app_timezone_is_used() -> None:
    class App:
        timezone = SHANGHAI

    cron = crontab(hour=20, minute=20, day_of_week=1, app=App())
    assert cron.tz == SHANGHAI
    assert cron.next_due(datetime(2024, 5, 6, tzinfo=UTC)) == datetime(
        2024, 5, 6, 12, 20, tzinfo=UTC)


# -- daylight saving -------------------------------------------------------------------------------


def _matches(cron: crontab, wall: datetime) -> bool:
    return (wall.minute in cron.minute and wall.hour in cron.hour
            and wall.day in cron.day_of_month and wall.month in cron.month_of_year
            and (wall.weekday() + 1) % 7 in cron.day_of_week)


def reference_runs(cron: crontab, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The documented rule, minute by minute in real (UTC) time."""
    runs: set[datetime] = set()
    moment = start
    while moment < end:
        local = moment.astimezone(zone)
        wall = local.replace(tzinfo=None)
        if _matches(cron, wall) and (cron.every_hour or local.fold == 0):
            runs.add(moment)
        following = moment + timedelta(minutes=1)
        jump = following.astimezone(zone).utcoffset() - local.utcoffset()  # type: ignore[operator]
        if jump > timedelta(0) and not cron.every_hour:
            minutes = int(jump / timedelta(minutes=1))
            skipped = (wall + timedelta(minutes=n) for n in range(1, minutes + 1))
            if any(_matches(cron, w) for w in skipped):
                runs.add(following)
        moment = following
    return sorted(runs)


def computed_runs(cron: crontab, start: datetime, end: datetime) -> Iterator[datetime]:
    moment = start - timedelta(microseconds=1)
    while (moment := next_run_after(cron, moment).astimezone(UTC)) < end:
        yield moment


DST_DAYS = [
    (BERLIN, datetime(2024, 3, 30, 12, tzinfo=UTC)),
    (BERLIN, datetime(2024, 10, 26, 12, tzinfo=UTC)),
    (NEW_YORK, datetime(2024, 3, 9, 18, tzinfo=UTC)),
    (NEW_YORK, datetime(2024, 11, 2, 18, tzinfo=UTC)),
    (LORD_HOWE, datetime(2024, 4, 6, 0, tzinfo=UTC)),
    (LORD_HOWE, datetime(2024, 10, 5, 0, tzinfo=UTC)),
]
CRONS = [
    {"minute": 30, "hour": 2},
    {"minute": "0,30", "hour": 2},
    {"minute": 0, "hour": "1-3"},
    {"minute": "*/15", "hour": 2},
    {"minute": 30},
    {"minute": "*/20"},
    {"minute": 45, "hour": "*/1"},
    {"minute": 0, "hour": "0-23"},
]


@pytest.mark.parametrize(("zone", "start"), DST_DAYS, ids=lambda v: str(v)[:10])
@pytest.mark.parametrize("fields", CRONS, ids=repr)
def test_matches_the_minute_by_minute_reference_across_dst(
    zone: ZoneInfo, start: datetime, fields: dict[str, Any]
) -> None:
    cron = crontab(**fields, tz=zone)
    end = start + timedelta(hours=36)
    assert list(computed_runs(cron, start, end)) == reference_runs(cron, zone, start, end)


@pytest.mark.parametrize(
    ("zone", "day", "expected_local"),
    [
        # Spring forward: 02:30 does not exist; the run comes at the end of the gap, once.
        (BERLIN, datetime(2024, 3, 31), datetime(2024, 3, 31, 3, 0)),
        (NEW_YORK, datetime(2024, 3, 10), datetime(2024, 3, 10, 3, 0)),
        # Fall back: 02:30 (Berlin) / 01:30 (New York) happen twice; the first one runs.
        (BERLIN, datetime(2024, 10, 27), datetime(2024, 10, 27, 2, 30)),
        (NEW_YORK, datetime(2024, 11, 3), datetime(2024, 11, 3, 1, 30)),
    ],
)
def test_a_daily_job_runs_exactly_once_on_dst_days(
    zone: ZoneInfo, day: datetime, expected_local: datetime
) -> None:
    hour = expected_local.hour if expected_local.minute == 30 else 2
    cron = crontab(minute=30, hour=hour, tz=zone)
    start = day.replace(tzinfo=zone).astimezone(UTC)
    end = (day + timedelta(days=1)).replace(tzinfo=zone).astimezone(UTC)
    runs = list(computed_runs(cron, start, end))
    assert len(runs) == 1
    local = runs[0].astimezone(zone)
    assert local.replace(tzinfo=None) == expected_local
    assert local.fold == 0


def test_an_hourly_job_runs_in_both_repeated_hours() -> None:
    cron = crontab(minute=30, tz=BERLIN)
    start = datetime(2024, 10, 27, 0, 0, tzinfo=BERLIN).astimezone(UTC)
    runs = list(computed_runs(cron, start, start + timedelta(hours=5)))
    gaps = {b - a for a, b in itertools.pairwise(runs)}
    assert gaps == {timedelta(hours=1)}
    assert len(runs) == 5  # 00:30, 01:30, 02:30 CEST, 02:30 CET, 03:30


def test_an_hourly_job_skips_the_missing_hour() -> None:
    cron = crontab(minute=30, tz=BERLIN)
    start = datetime(2024, 3, 31, 0, 0, tzinfo=BERLIN).astimezone(UTC)
    end = start + timedelta(hours=4)
    runs = [r.astimezone(BERLIN).hour for r in computed_runs(cron, start, end)]
    assert runs == [0, 1, 3, 4]
