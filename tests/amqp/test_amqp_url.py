"""AMQP URL forms as Celery users write them (no server needed)."""

from __future__ import annotations

import pytest

from celeriac._amqp.connection import parse_url
from celeriac.brokers import broker_class
from celeriac.brokers.amqp import AMQPBroker


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://guest:guest@127.0.0.1:5672//", "/"),
        ("amqp://guest:guest@127.0.0.1:5672/", "/"),
        ("amqp://guest:guest@127.0.0.1:5672", "/"),
        ("amqp://guest:guest@127.0.0.1:5672/%2F", "/"),
        ("amqp://guest:guest@127.0.0.1:5672/prod", "prod"),
        ("pyamqp://u:p@h/my%2Fvhost", "my/vhost"),
    ],
)
def test_vhosts(url: str, vhost: str) -> None:
    assert parse_url(url).virtual_host == vhost


def test_defaults_and_tls() -> None:
    plain = parse_url("amqp://")
    assert (plain.host, plain.port, plain.userid, plain.password) == (
        "localhost", 5672, "guest", "guest")
    assert plain.ssl is False
    tls = parse_url("amqps://u:p%40ss@rabbit.example")
    assert (tls.port, tls.ssl, tls.password) == (5671, True, "p@ss")
    assert "p@ss" not in tls.display and "p%40ss" not in tls.display
    options = parse_url("amqp://h/", {"broker_use_ssl": {"ca_certs": "/ca.pem"}})
    assert options.ssl == {"ca_certs": "/ca.pem"}


def test_query_options_lose_to_transport_options() -> None:
    params = parse_url("amqp://h//?heartbeat=30&connect_timeout=2", {"connect_timeout": 5})
    assert params.options["heartbeat"] == 30.0
    assert params.options["connect_timeout"] == 5


@pytest.mark.parametrize("scheme", ["amqp", "amqps", "pyamqp"])
def test_schemes_are_served_by_the_amqp_broker(scheme: str) -> None:
    assert broker_class(f"{scheme}://h//") is AMQPBroker
