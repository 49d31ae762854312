"""Item 6 for amqp URLs: a refused connection, a wrong password and a missing vhost each give
one clear line naming the URL (password masked) and the fix; a malformed URL is refused
before anything connects."""

from __future__ import annotations

import socket
import uuid

import pytest

from celeriac.brokers import create_broker
from celeriac.exceptions import BrokerConnectionError, ImproperlyConfigured, TransportError
from tests.amqp import support
from tests.amqp.conftest import AmqpFactory
from tests.brokers.conftest import envelope


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _error_of(make_amqp: AmqpFactory, url: str) -> str:
    broker = make_amqp(url)
    with pytest.raises(BrokerConnectionError) as info:
        broker.publish(support.unique("q"), envelope())
    text = str(info.value)
    assert "\n" not in text
    return text


def test_refused_connection(make_amqp: AmqpFactory) -> None:
    text = _error_of(make_amqp, f"amqp://guest:secret-pw@127.0.0.1:{_free_port()}//")
    assert "connection refused" in text
    assert "secret-pw" not in text and "127.0.0.1" in text


def test_wrong_password(make_amqp: AmqpFactory) -> None:
    url = support.with_vhost("amqp://guest:wrong-pw@127.0.0.1:5672//", "/")
    support.amqp_url()  # skips without RabbitMQ
    text = _error_of(make_amqp, url.replace("127.0.0.1:5672", _host_port()))
    assert "refused the login of user 'guest'" in text and "password" in text
    assert "wrong-pw" not in text


def test_missing_vhost(make_amqp: AmqpFactory) -> None:
    missing = f"no-such-vhost-{uuid.uuid4().hex[:8]}"
    url = support.with_vhost(support.amqp_url(), missing)
    text = _error_of(make_amqp, url)
    assert f"virtual host '{missing}' does not exist" in text
    assert "rabbitmqctl add_vhost" in text


def test_consume_errors_are_translated_too(make_amqp: AmqpFactory) -> None:
    broker = make_amqp(f"amqp://guest:guest@127.0.0.1:{_free_port()}//")
    for call in (lambda: broker.consume(["q"], 1, 0.1), lambda: broker.queue_size("q"),
                 lambda: broker.subscribe("c")):
        # the same one line, not wrapped in another
        with pytest.raises(BrokerConnectionError, match=r"^Cannot connect to RabbitMQ at .*"
                           "connection refused"):
            call()


def test_malformed_url_is_refused_at_once() -> None:
    with pytest.raises(ImproperlyConfigured, match="Malformed AMQP URL"):
        create_broker("amqp://guest:pw@127.0.0.1:notaport//")


def test_nothing_connects_before_first_use() -> None:
    broker = create_broker(f"amqp://guest:guest@127.0.0.1:{_free_port()}//")
    broker.close()  # no connection was made, so nothing failed


def _host_port() -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(support.base_url())
    return f"{parts.hostname}:{parts.port or 5672}"


def test_a_queue_declared_otherwise_is_named_with_the_fix(make_amqp: AmqpFactory) -> None:
    queue = support.unique("declared")
    make_amqp(max_priority=9).publish(queue, envelope("first"))
    plain = make_amqp()
    with pytest.raises(TransportError) as info:
        plain.publish(queue, envelope("second"))
    text = str(info.value)
    assert "inequivalent arg 'x-max-priority'" in text and "task_queue_max_priority" in text
    assert "\n" not in text
    plain.declared_queues.add(queue)  # cleaned up with it
    # The broker still works afterwards (a new channel and connection).
    other = support.unique("other")
    plain.publish(other, envelope("ok"))
    assert [d.task_id for d in plain.consume([other], 1, 5.0)] == ["ok"]
