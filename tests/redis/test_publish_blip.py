"""Publishing through a broker outage on real Redis: the producer talks to Redis through a small
TCP proxy that the test closes for ~2 s (refusing and dropping connections, as a restarting
server does) and opens again. The shared server itself is never restarted."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from celeriac import Celery
from celeriac.brokers import create_broker
from celeriac.exceptions import BrokerConnectionError
from tests.redis.support import HOST, PORT, REDIS_BROKER_DB, drop_keys, redis_url, unique_prefix

#: this module's database (prefixed keys, deleted afterwards); 10-14 are the tests', 15 the
#: benchmarks' (they flush it)
DB = 14
GRACE_S = 0.2


class Proxy:
    """Forwards 127.0.0.1:<port> to the test Redis. ``down()`` stops forwarding requests, lets
    replies to requests already forwarded drain for ``GRACE_S``, then drops every connection and
    refuses new ones until ``up()`` listens on the same port again."""

    def __init__(self) -> None:
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._forwarding = threading.Event()
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._forwarding.set()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        self._forwarding.clear()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        time.sleep(GRACE_S)
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if not self._forwarding.is_set():
                client.close()
                continue
            upstream = socket.create_connection((HOST, PORT))
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, request: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data or (request and not self._forwarding.is_set()):
                    break  # a request read after down() is dropped, never forwarded
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.down()


@pytest.fixture
def prefix() -> Iterator[str]:
    redis_url(REDIS_BROKER_DB)  # skips (fails in CI) without a server
    value = unique_prefix()
    yield value
    drop_keys(f"redis://{HOST}:{PORT}/{DB}?global_keyprefix={value}")


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    server = Proxy()
    yield server
    server.close()


def _app(proxy: Proxy, prefix: str) -> Celery:
    return Celery("blip", broker=f"redis://127.0.0.1:{proxy.port}/{DB}?global_keyprefix={prefix}")


def test_delay_rides_through_a_two_second_outage_exactly_once(proxy: Proxy, prefix: str) -> None:
    app = _app(proxy, prefix)
    echo = app.task(name="blip.echo")(lambda i: i)
    count = 400
    sent: list[str] = []
    errors: list[BaseException] = []

    def produce() -> None:
        for i in range(count):
            try:
                sent.append(echo.delay(i).id)
            except BaseException as exc:  # every failure is the finding
                errors.append(exc)
            time.sleep(0.005)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        deadline = time.monotonic() + 30
        while len(sent) < count // 4 and time.monotonic() < deadline:
            time.sleep(0.005)
        proxy.down()
        time.sleep(2.0)
        during = len(sent)
        proxy.up()
        producer.join(60)
    finally:
        app.close()
    assert not producer.is_alive()
    assert errors == []
    assert during < count, "the outage must fall inside the run"

    direct = create_broker(f"redis://{HOST}:{PORT}/{DB}?global_keyprefix={prefix}")
    try:
        assert direct.queue_size("celery") == count
        stored = [d.envelope.task_id for d in direct.consume(["celery"], 2 * count, 1.0)]
    finally:
        direct.close()
    assert sorted(stored) == sorted(sent)


def test_delay_raises_about_the_bound_after_when_the_broker_stays_down(
    proxy: Proxy, prefix: str
) -> None:
    app = _app(proxy, prefix)
    app.conf.task_publish_retry_policy = {"timeout": 1.0}
    echo = app.task(name="blip.echo")(lambda i: i)
    try:
        echo.delay(0)
        proxy.down()
        started = time.monotonic()
        with pytest.raises(BrokerConnectionError):
            echo.delay(1)
        elapsed_s = time.monotonic() - started
    finally:
        app.close()
    assert 1.0 <= elapsed_s < 8.0
