"""A TCP proxy in front of Redis that counts a client's round trips.

Method (the same for every system ``bench speed`` measures): the worker under test connects to
the proxy's port instead of Redis's; the producer keeps the direct port, so every connection the
proxy sees is the worker's (broker, result backend, pub/sub, heartbeats alike). Bytes are
forwarded unchanged both ways. Per connection the proxy counts **write bursts**: a burst starts
when the client sends bytes after the server last sent bytes on that connection (or as the
first bytes of the connection), and lasts until the server answers. So:

* one command and its reply is one round trip;
* a pipeline (MULTI/EXEC, many XACKs, a batch of SETs) sent before reading any reply is one
  round trip, however many commands and TCP segments it holds;
* a blocking read (BRPOP, XREADGROUP BLOCK) is one round trip however long it waits;
* a write-behind command (sent without waiting for its reply) counts as its own round trip
  when its reply arrives before the client's next write, and joins the next burst otherwise:
  what is counted is the conversation's turns, not the client's waits;
* messages the server pushes on its own (pub/sub deliveries) start no burst.

Round trips per task = bursts over all the worker's connections from its start until the
last result is stored, divided by the tasks drained. Start-up (connects, declarations, Celery's
mingle) is included, as it is in the drain rate.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class _Conversation:
    """One client connection's burst count; ``awaiting`` is True while the client has spoken
    since the server last did."""

    def __init__(self) -> None:
        self.bursts = 0
        self.awaiting = False


class CountingProxy:
    """Forwards ``127.0.0.1:<port>`` to ``host:port_upstream`` and counts write bursts per
    connection (see the module docstring). Threads are daemons; ``close()`` stops accepting
    and drops every connection."""

    def __init__(self, host: str, upstream_port: int) -> None:
        self._upstream = (host, upstream_port)
        self._lock = threading.Lock()
        self._conversations: list[_Conversation] = []
        self._sockets: list[socket.socket] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def round_trips(self) -> int:
        """Write bursts so far, summed over every connection."""
        with self._lock:
            return sum(c.bursts for c in self._conversations)

    def connections(self) -> int:
        """Connections accepted so far."""
        with self._lock:
            return len(self._conversations)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _hang_up(sock)
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._upstream)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conversation = _Conversation()
            with self._lock:
                self._conversations.append(conversation)
                self._sockets += [client, upstream]
            threading.Thread(
                target=self._pump, args=(client, upstream, conversation, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, conversation, False), daemon=True
            ).start()

    def _pump(
        self,
        source: socket.socket,
        sink: socket.socket,
        conversation: _Conversation,
        from_client: bool,
    ) -> None:
        try:
            while True:
                data = source.recv(262144)
                if not data:
                    break
                # the turn is recorded before the bytes move on, so a reply can never be
                # counted ahead of the request that asked for it
                with self._lock:
                    if from_client and not conversation.awaiting:
                        conversation.bursts += 1
                    conversation.awaiting = from_client
                sink.sendall(data)
        except OSError:
            pass
        _hang_up(source)
        _hang_up(sink)


def _hang_up(sock: socket.socket) -> None:
    """Shut both directions of ``sock`` (the other pump thread then sees the end), whether or
    not it is still connected."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
