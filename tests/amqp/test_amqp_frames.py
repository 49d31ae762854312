"""Buffered frame reading (celeriac/_amqp/frames.py) and the settle frames the consumer writes
itself: hostile byte streams on a real socket pair, then real RabbitMQ traffic (bodies larger
than the read size and than a frame, acks and nacks by ``multiple``) and the system calls a
drain costs."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac._amqp import frames
from celeriac._amqp.frames import FrameBuffer
from celeriac.brokers.amqp import AMQPBroker
from celeriac.message import Envelope
from tests.amqp.conftest import AmqpFactory


def frame(frame_type: int, channel: int, payload: bytes, end: int = 0xCE) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + bytes([end])


class Transport:
    """What FrameBuffer uses of py-amqp's transport: ``sock``, ``_read_buffer``, ``connected``."""

    def __init__(self, sock: socket.socket, leftover: bytes = b"") -> None:
        self.sock = sock
        self._read_buffer = leftover
        self.connected = True


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_frames_split_anywhere_come_out_whole_and_in_order(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    sent = [frame(1, 1, b"m" * 12), frame(2, 1, b"h" * 300), frame(3, 1, b"b" * 70_000),
            frame(8, 0, b"")]
    stream = b"".join(sent)
    reader = FrameBuffer(Transport(ours))

    def trickle() -> None:  # cut inside headers, payloads and before the end octet
        for cut in (3, 9, 20, 319, 330, 40_000, len(stream) - 1, len(stream)):
            theirs.sendall(stream[trickle.at:cut])  # type: ignore[attr-defined]
            trickle.at = cut  # type: ignore[attr-defined]
            time.sleep(0.005)

    trickle.at = 0  # type: ignore[attr-defined]
    writer = threading.Thread(target=trickle)
    writer.start()
    got = [reader.read_frame() for _ in sent]
    writer.join()
    assert got == [(1, 1, b"m" * 12), (2, 1, b"h" * 300), (3, 1, b"b" * 70_000), (8, 0, b"")]
    assert not reader.frame_ready()


def test_a_timeout_mid_frame_keeps_its_bytes(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    whole = frame(1, 3, b"x" * 100)
    theirs.sendall(whole[:50])
    reader = FrameBuffer(Transport(ours))
    reader.receive(1.0)  # what arrived is buffered, the frame is not whole
    assert not reader.frame_ready()
    with pytest.raises(TimeoutError):
        reader.receive(0.05)
    assert not reader.frame_ready()
    theirs.sendall(whole[50:])
    reader.receive(1.0)
    assert reader.frame_ready()
    assert reader.read_frame() == (1, 3, b"x" * 100)


def test_bytes_left_by_the_handshake_are_read_first(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    whole = frame(1, 0, b"abc")
    transport = Transport(ours, leftover=whole[:5])
    reader = FrameBuffer(transport)
    theirs.sendall(whole[5:] + frame(1, 0, b"def"))
    assert reader.read_frame() == (1, 0, b"abc")
    assert reader.read_frame() == (1, 0, b"def")
    assert transport._read_buffer == b""


def test_a_wrong_frame_end_and_a_closed_socket_are_errors(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    import amqp

    ours, theirs = pair
    transport = Transport(ours)
    reader = FrameBuffer(transport)
    theirs.sendall(frame(1, 0, b"abc", end=0x00))
    with pytest.raises(amqp.exceptions.UnexpectedFrame):
        reader.read_frame()
    theirs.sendall(frame(1, 0, b"abc")[:6])
    theirs.close()
    with pytest.raises(OSError, match="unexpectedly closed"):
        reader.read_frame()


def _envelope(i: int, body: bytes) -> Envelope:
    return Envelope(body=body, headers={"id": f"t{i}", "task": "t"},
                    properties={"correlation_id": f"t{i}"})


def test_bodies_larger_than_a_read_and_a_frame_arrive_intact(make_amqp: AmqpFactory) -> None:
    broker: AMQPBroker = make_amqp()
    queue = "frames-big"
    bodies = [b"s", bytes(range(256)) * 300, b"L" * 1_000_000, b"", b"t" * 65_529]
    broker.publish_many((queue, _envelope(i, body)) for i, body in enumerate(bodies))
    got: list[Any] = []
    deadline = time.monotonic() + 10
    while len(got) < len(bodies) and time.monotonic() < deadline:
        got += broker.consume([queue], 10, 1.0)
    assert [d.envelope.body for d in got] == bodies
    broker.ack(got)
    assert broker.queue_size(queue) == 0


def test_acks_and_requeues_settle_exactly_the_deliveries_named(make_amqp: AmqpFactory) -> None:
    """The consumer writes basic.ack / basic.nack frames itself: a wrong bit or tag would ack
    a message it should requeue, or leave one unacked."""
    broker: AMQPBroker = make_amqp()
    queue = "frames-settle"
    broker.publish_many((queue, _envelope(i, b"%d" % i)) for i in range(10))
    held = broker.consume([queue], 10, 2.0)
    assert len(held) == 10
    broker.ack(held[0:3])  # a run from the lowest: one frame with multiple
    broker.requeue([held[4], held[6]])  # single tags, requeued: redelivered
    broker.ack([held[3], held[5], held[9]])  # the new lowest, then gaps
    again = broker.consume([queue], 10, 2.0)
    assert sorted(d.envelope.body for d in again) == [b"4", b"6"]
    assert all(d.redelivered for d in again)
    broker.ack(again)
    broker.close()  # unacked 7 and 8 go back on close
    back = make_amqp().consume([queue], 10, 2.0)
    assert sorted(d.envelope.body for d in back) == [b"7", b"8"]


class CountingSocket:
    """A real socket that counts ``recv`` calls."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.recvs = 0

    def recv(self, n: int) -> bytes:
        self.recvs += 1
        return self._sock.recv(n)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def test_a_claim_reads_many_messages_per_recv(make_amqp: AmqpFactory) -> None:
    broker: AMQPBroker = make_amqp()
    queue = "frames-count"
    broker.publish_many((queue, _envelope(i, b"x" * 200)) for i in range(200))
    consumer = broker._consumer
    with consumer.lock:
        consumer.ensure_declared([queue])
    frames_of = consumer._conn._celeriac_frames
    counting = CountingSocket(consumer._conn.transport.sock)
    frames_of._transport = Transport(counting)  # type: ignore[arg-type]
    got: list[Any] = []
    while len(got) < 200:
        batch = broker.consume([queue], 100, 2.0)
        assert batch
        got += batch
        broker.ack(batch)
    # py-amqp's own reader made three recv calls per frame, nine per message (1,800 here)
    assert counting.recvs < 60, counting.recvs
    assert [d.envelope.body for d in got] == [b"x" * 200] * 200


def test_tls_transports_keep_py_amqps_reader() -> None:
    class SSLTransport:
        _read_buffer = b""

    class Conn:
        transport = SSLTransport()

    assert frames.install(Conn()) is None
    assert not hasattr(Conn.transport, "read_frame")


def test_an_idle_wait_times_out_in_time_and_the_connection_still_works(
    make_amqp: AmqpFactory,
) -> None:
    broker: AMQPBroker = make_amqp()
    queue = "frames-idle"
    assert broker.queue_size(queue) == 0  # connects the consumer
    conn = broker._consumer._conn
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        conn.drain_events(timeout=0.3)
    assert 0.25 <= time.monotonic() - started < 3.0
    with pytest.raises(TimeoutError):
        conn.drain_events(timeout=0)
    broker.publish(queue, _envelope(1, b"after"))
    got = broker.consume([queue], 1, 2.0)
    assert [d.envelope.body for d in got] == [b"after"]
    broker.ack(got)


KILLED_CONSUMER = """
import os, signal, sys, time
from celeriac.brokers.amqp import AMQPBroker
broker = AMQPBroker(sys.argv[1])
got = broker.consume([sys.argv[2]], 200, 5.0)  # claimed, handed over, not acked
# then the rest pushed to a consumer and read into the frame buffer, never handled
channel = broker._consumer.channel()
channel.basic_qos(0, 100, False)
channel.basic_consume(sys.argv[2], callback=lambda message: None, no_ack=False)
frames = broker._consumer._conn._celeriac_frames
deadline = time.monotonic() + 5
while not frames.frame_ready() and time.monotonic() < deadline:
    frames.receive(0.5)
print(len(got), frames.frame_ready(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_consumer_killed_with_deliveries_read_loses_none(
    make_amqp: AmqpFactory, amqp_url: str
) -> None:
    """Frames read into the buffer are the process's only copy until acked: a SIGKILL must
    give every claimed message back (RabbitMQ redelivers unacked messages of a closed
    connection), none lost, none acked."""
    broker: AMQPBroker = make_amqp()
    queue = "frames-killed"
    broker.publish_many((queue, _envelope(i, b"%d" % i)) for i in range(300))
    done = subprocess.run([sys.executable, "-c", KILLED_CONSUMER, amqp_url, queue],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == -9, done.stderr
    assert done.stdout.split() == ["200", "True"]
    got: list[Any] = []
    deadline = time.monotonic() + 20
    while len(got) < 300 and time.monotonic() < deadline:
        got += broker.consume([queue], 300, 1.0)
    assert sorted(int(d.envelope.body) for d in got) == list(range(300))
    assert sum(d.redelivered for d in got) >= 201  # the claimed and the buffered ones
    broker.ack(got)
