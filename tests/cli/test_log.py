"""``celeriac.utils.log``: Celery's log formats, the task logger, stdout redirection."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator

import pytest

from celeriac import Celery
from celeriac.cli.banner import describe_url, mask_url
from celeriac.utils.log import (
    LOG_FORMAT,
    TASK_LOG_FORMAT,
    LoggingProxy,
    TaskFormatter,
    get_logger,
    get_task_logger,
    level_number,
)


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A private logger writing through TaskFormatter to a string."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TaskFormatter(LOG_FORMAT, TASK_LOG_FORMAT))
    name = f"test.log.{uuid.uuid4().hex[:8]}"
    logger = get_task_logger(name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_task_logger_outside_a_task(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("hello %s", "there")
    line = stream.getvalue().strip()
    assert line.endswith("INFO/MainProcess] ???[???]: hello there")
    assert line.startswith("[")


def test_task_logger_inside_a_task(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    app = Celery("logtest", broker="memory://logtest", backend="memory://logtest",
                 task_always_eager=True)

    @app.task
    def speak() -> None:
        logger.warning("inside")

    result = speak.apply(task_id="the-id")
    assert result.successful()
    assert f"WARNING/MainProcess] {speak.name}[the-id]: inside" in stream.getvalue()
    app.close()


def test_plain_logger_uses_the_plain_format() -> None:
    record = get_logger("plain").makeRecord("plain", logging.ERROR, __file__, 1, "boom", (), None)
    text = TaskFormatter(LOG_FORMAT, TASK_LOG_FORMAT).format(record)
    assert text.endswith(": ERROR/MainProcess] boom")


def test_logging_proxy_writes_whole_lines() -> None:
    stream = io.StringIO()
    logger = logging.getLogger(f"test.proxy.{uuid.uuid4().hex[:8]}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    proxy = LoggingProxy(logger, "warning")
    proxy.write("part one, ")
    assert stream.getvalue() == ""
    proxy.write("part two\nsecond line\n")
    proxy.write("tail")
    proxy.flush()
    assert stream.getvalue().splitlines() == [
        "WARNING part one, part two", "WARNING second line", "WARNING tail",
    ]
    logger.removeHandler(handler)


@pytest.mark.parametrize(("text", "number"), [("info", 20), ("WARNING", 30), ("fatal", 50),
                                              ("10", 10), (40, 40)])
def test_level_number(text: str | int, number: int) -> None:
    assert level_number(text) == number


def test_mask_url() -> None:
    assert mask_url("redis://:secret@localhost:6379/0") == "redis://:**@localhost:6379/0"
    assert mask_url("amqp://user:pw@host//;amqp://u:p@h2//") == "amqp://user:**@host//;amqp://u:**@h2//"
    assert mask_url("redis://localhost/0") == "redis://localhost/0"


def test_describe_sqlite_url_names_the_file() -> None:
    shown = describe_url("sqlite:////var/tmp/x.db")
    assert shown == "sqlite:////var/tmp/x.db (file: /var/tmp/x.db)"
    assert describe_url(None) == "disabled://"
