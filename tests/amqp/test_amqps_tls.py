"""``amqps://`` for real: RabbitMQ behind a TLS front (tests/support/tls.py) with a private CA.

The broker verifies the server with the CA from ``broker_use_ssl`` (Celery's setting, or the
same key in the transport options), a worker started from an app with that setting runs tasks
over it, and a server it cannot verify is refused in one line.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from celeriac import Celery
from celeriac.exceptions import BrokerConnectionError, ImproperlyConfigured
from tests.amqp import support
from tests.amqp.conftest import AmqpFactory
from tests.brokers.conftest import envelope
from tests.redis.support import BACKEND_DB, redis_url
from tests.support.tls import TlsFront, make_certs
from tests.support.workers import WorkerProcess


class Tls:
    def __init__(self, front: TlsFront, ca: Path) -> None:
        self.front = front
        self.ca = ca

    def url(self, host: str = "127.0.0.1") -> str:
        """This run's vhost on the TLS front."""
        parts = urlsplit(support.amqp_url())
        return parts._replace(scheme="amqps", netloc=f"guest:guest@{host}:{self.front.port}"
                              ).geturl()

    def options(self) -> dict[str, object]:
        return {"ca_certs": str(self.ca), "cert_reqs": ssl.CERT_REQUIRED}


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[Tls]:
    upstream = urlsplit(support.amqp_url())
    ca, cert, key = make_certs(tmp_path)
    front = TlsFront((upstream.hostname or "127.0.0.1", upstream.port or 5672), cert, key)
    try:
        yield Tls(front, ca)
    finally:
        front.close()


def test_publish_and_claim_over_tls_with_a_private_ca(tls: Tls, make_amqp: AmqpFactory) -> None:
    broker = make_amqp(tls.url(), broker_use_ssl=tls.options())
    queue = support.unique("tls")
    broker.publish(queue, envelope("over-tls"))
    claimed = broker.consume([queue], 10, 5)
    assert [d.task_id for d in claimed] == ["over-tls"]
    broker.ack(claimed)
    assert broker.queue_size(queue) == 0
    assert tls.front.handshakes >= 1


def test_the_host_name_is_checked(tls: Tls, make_amqp: AmqpFactory) -> None:
    # the certificate names 127.0.0.1 and localhost, not this
    options = {**tls.options(), "server_hostname": "rabbit.example.com"}
    broker = make_amqp(tls.url(), broker_use_ssl=options)
    with pytest.raises(BrokerConnectionError) as info:
        broker.publish(support.unique("tls"), envelope())
    text = str(info.value)
    assert "\n" not in text and text.startswith("TLS to RabbitMQ at")
    assert "rabbit.example.com" in text and "guest:guest" not in text
    # amqps:// with the CA (cert_reqs by name) and the URL's own host: accepted
    named = make_amqp(tls.url(), broker_use_ssl={"ca_certs": str(tls.ca),
                                                 "cert_reqs": "required"})
    named.publish(support.unique("tls"), envelope())


def test_cert_reqs_none_skips_the_checks(tls: Tls, make_amqp: AmqpFactory) -> None:
    broker = make_amqp(tls.url(), broker_use_ssl={"cert_reqs": ssl.CERT_NONE})
    queue = support.unique("tls")
    broker.publish(queue, envelope("unchecked"))
    assert [d.task_id for d in broker.consume([queue], 1, 5)] == ["unchecked"]


def test_an_ssl_context_is_refused_in_one_line(make_amqp: AmqpFactory) -> None:
    with pytest.raises(ImproperlyConfigured, match="py-amqp ignores: give a dict"):
        make_amqp(support.amqp_url(), broker_use_ssl=ssl.create_default_context())


def test_a_server_it_cannot_verify_is_refused_in_one_line(tls: Tls,
                                                          make_amqp: AmqpFactory) -> None:
    broker = make_amqp(tls.url())  # amqps:// with the system's CAs: ours is not among them
    with pytest.raises(BrokerConnectionError) as info:
        broker.publish(support.unique("tls"), envelope())
    text = str(info.value)
    assert "\n" not in text and "certificate verify failed" in text
    assert tls.front.handshakes == 0


def test_amqps_to_a_plain_port_is_one_line(make_amqp: AmqpFactory) -> None:
    parts = urlsplit(support.amqp_url())
    broker = make_amqp(parts._replace(scheme="amqps").geturl(),
                       broker_use_ssl={"cert_reqs": ssl.CERT_NONE}, connect_timeout=5)
    with pytest.raises(BrokerConnectionError) as info:
        broker.publish(support.unique("tls"), envelope())
    assert "\n" not in str(info.value)


TASKS = """
import os, ssl
from celeriac import Celery

app = Celery("tlstasks", broker=os.environ["T_BROKER"], backend=os.environ["T_BACKEND"])
app.conf.broker_use_ssl = {"ca_certs": os.environ["T_CA"], "cert_reqs": ssl.CERT_REQUIRED}

@app.task
def add(x, y):
    return x + y
"""


def test_a_worker_runs_tasks_over_tls_from_the_app_setting(tls: Tls, tmp_path: Path) -> None:
    (tmp_path / "tlstasks.py").write_text(TASKS)
    backend = redis_url(BACKEND_DB)
    env = {"T_BROKER": tls.url(), "T_BACKEND": backend, "T_CA": str(tls.ca)}
    app = Celery("tlsclient", broker=tls.url(), backend=backend)
    app.conf.broker_use_ssl = tls.options()
    worker = WorkerProcess(tmp_path, "tlstasks", env=env, pool="solo")
    try:
        worker.ready()
        before = tls.front.handshakes
        assert app.send_task("tlstasks.add", (20, 22)).get(timeout=30) == 42
        assert tls.front.handshakes > before  # the client's own connection
    finally:
        worker.stop()
        app.close()
        support.cleanup(app.broker)
