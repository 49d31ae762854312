"""A TCP proxy in front of the test Redis, to stage outages without restarting the shared
server: ``down()`` refuses and drops connections as a restarting server does, ``up()`` listens
on the same port again."""

from __future__ import annotations

import socket
import threading
import time

from tests.redis.support import HOST, PORT

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
