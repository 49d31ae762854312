"""Issue 14 items 2 and 5 in the Python API: a misspelt ``Celery(...)`` keyword, a set
argument, a misspelt time zone, and the test suite's Redis location from the environment."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.exceptions import EncodeError, ImproperlyConfigured
from celeriac.schedules import crontab

ROOT = Path(__file__).resolve().parents[2]


# -- Celery(...) keywords -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keyword", "suggestion"),
    [("borker", "broker"), ("backnd", "backend"), ("includes", "include"),
     ("task_serialiser", "task_serializer")],
)
def test_misspelt_keyword_raises_type_error_with_the_closest_name(keyword: str,
                                                                   suggestion: str) -> None:
    with pytest.raises(TypeError) as info:
        options: dict[str, Any] = {keyword: "redis://"}
        Celery("t", **options)
    assert str(info.value) == (
        f"Celery() got an unexpected keyword argument {keyword!r}; did you mean {suggestion!r}?"
    )


def test_unrelated_keyword_raises_type_error() -> None:
    with pytest.raises(TypeError, match=r"^Celery\(\) got an unexpected keyword argument "
                                        r"'zzz_qqq'$"):
        Celery("t", zzz_qqq=1)


def test_setting_names_are_accepted_as_keywords_as_celery_does() -> None:
    app = Celery("t", broker="memory://kw", task_default_queue="fast",
                 CELERY_TASK_SERIALIZER="json", result_expires=60)
    assert app.conf.task_default_queue == "fast"
    assert app.conf.task_serializer == "json"
    assert app.conf.result_expires == 60


# -- a set argument ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [{1, 2}, frozenset({3})])
def test_set_argument_is_an_encode_error_at_the_call_site(value: Any) -> None:
    app = Celery("t", broker=f"memory://set-arg-{uuid.uuid4().hex}")

    @app.task
    def total(numbers: list[int], scale: int = 1) -> int:
        return sum(numbers) * scale

    with pytest.raises(EncodeError) as info:
        total.delay(value)
    message = str(info.value)
    assert "argument 0" in message and "pass a list" in message
    assert app.broker.queue_size("celery") == 0  # nothing was sent
    with pytest.raises(EncodeError, match=r"keyword argument 'numbers'.*pass a list"):
        total.apply_async(kwargs={"numbers": value})
    # A list still goes through, and arrives as a list.
    total.delay(sorted(value))
    assert app.broker.queue_size("celery") == 1


def test_set_result_is_stored_as_an_encode_error_failure() -> None:
    # As Celery's json: the task's result cannot be stored, the caller sees why.
    from celeriac.result_meta import build_meta, decode_meta, encode_meta_checked

    payload, error = encode_meta_checked(build_meta("tid", "SUCCESS", {1, 2}))
    assert isinstance(error, EncodeError)
    assert decode_meta(payload)["status"] == "FAILURE"


# -- time zones ----------------------------------------------------------------------------------


def test_misspelt_timezone_names_the_setting_and_the_closest_zone() -> None:
    app = Celery("t", broker="memory://tz", timezone="Europe/Lodnon")
    with pytest.raises(ImproperlyConfigured) as info:
        app.timezone  # noqa: B018
    assert str(info.value).startswith(
        "timezone='Europe/Lodnon' is not a known time zone; did you mean 'Europe/London'?"
    )


def test_misspelt_crontab_tz_names_the_argument() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^tz='Amerika/New_York' .*'America/New_York'"):
        crontab(minute=0, tz="Amerika/New_York")


def test_valid_timezone_still_works() -> None:
    assert str(Celery("t", broker="memory://tz", timezone="Asia/Shanghai").timezone) == (
        "Asia/Shanghai"
    )


# -- the test suite's Redis location (item 5) -----------------------------------------------------


def _support_values(env: dict[str, str]) -> dict[str, Any]:
    code = (
        "import json; from tests.redis import support as s; "
        "print(json.dumps([s.HOST, s.PORT, s.BROKER_DB, s.BACKEND_DB, s.REDIS_BROKER_DB, "
        "s.REDIS_BACKEND_DB, s.SPARE_DB, s.plain_url(s.SPARE_DB)]))"
    )
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env={**base, **env}, cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    values: list[Any] = json.loads(done.stdout)
    keys = ["host", "port", "broker", "backend", "redis_broker", "redis_backend", "spare", "url"]
    return dict(zip(keys, values, strict=True))


def test_redis_location_defaults_are_todays() -> None:
    assert _support_values({}) == {
        "host": "127.0.0.1", "port": 6379, "broker": 10, "backend": 11, "redis_broker": 12,
        "redis_backend": 13, "spare": 14, "url": "redis://127.0.0.1:6379/14",
    }


def test_redis_location_from_the_environment() -> None:
    values = _support_values({
        "CELERIAC_TEST_REDIS_HOST": "redis.test", "CELERIAC_TEST_REDIS_PORT": "6390",
        "CELERIAC_TEST_REDIS_DBS": "3,5,7,9,11",
    })
    assert values == {
        "host": "redis.test", "port": 6390, "broker": 3, "backend": 5, "redis_broker": 7,
        "redis_backend": 9, "spare": 11, "url": "redis://redis.test:6390/11",
    }
    assert _support_values({"CELERIAC_TEST_REDIS_DBS": "0-4"})["spare"] == 4


@pytest.mark.parametrize("text", ["1-3", "1,1,2,3,4", "a-b"])
def test_bad_database_list_is_refused(text: str) -> None:
    from tests.redis.support import parse_dbs

    with pytest.raises(ValueError):
        parse_dbs(text)


#: a test database named by number where a connection is made (URLs that are only text, as
#: in masking tests, are fine)
_NUMBERED_DB = re.compile(r"(?:redis_url|plain_url)\(\d|(?<![?&])\bdb=\d|\{PORT\}/\d")


def test_no_test_module_names_a_redis_database_by_number() -> None:
    # Every test reaches the test Redis through tests/redis/support.py (item 5). Issue 13's
    # directories are checked by their own authors.
    theirs = {"amqp", "postgres", "sql", "rpc", "pairs", "support"}
    offenders = []
    for path in (ROOT / "tests").rglob("*.py"):
        relative = path.relative_to(ROOT / "tests")
        if relative.parts[0] in theirs or relative == Path("cli/test_mistakes_api.py"):
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            if _NUMBERED_DB.search(line.split("#")[0]):
                offenders.append(f"{relative}:{lineno}: {line.strip()}")
    assert offenders == [], "\n".join(offenders)
