"""Fixtures of the storage tests: a proxy to the S3 server that drops chosen requests."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from devservers.seaweedfs import SeaweedS3


class DroppingProxy:
    """A TCP proxy to the S3 server that drops chosen requests without answering: a transient
    network failure. ``drop`` counts connections (1 = the first), closed as soon as their first
    request starts arriving; ``drop_puts`` counts PUT requests (part and object uploads) over
    all connections, whichever connection carries them, so it does not depend on how many
    connections the client happens to open or reuse."""

    def __init__(
        self, target_port: int, drop: set[int], drop_puts: set[int] | frozenset[int] = frozenset()
    ) -> None:
        self.target_port = target_port
        self.drop = drop
        self.drop_puts = drop_puts
        self.connections = 0
        self.puts = 0
        self.dropped = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.accept_forever, daemon=True)
        self.thread.start()

    def accept_forever(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            if self.connections in self.drop:
                client.recv(1024)
                client.close()
                self.dropped += 1
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for source, sink, requests in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self.pump, args=(source, sink, requests), daemon=True
                ).start()

    def drops(self, data: bytes) -> bool:
        # HTTP/1.1 without pipelining: a request on a kept-alive connection starts a new read.
        if not data.startswith(b"PUT "):
            return False
        with self.lock:
            self.puts += 1
            if self.puts not in self.drop_puts:
                return False
            self.dropped += 1
            return True

    def pump(self, source: socket.socket, sink: socket.socket, requests: bool) -> None:
        try:
            while data := source.recv(65536):
                if requests and self.drops(data):
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def proxy_factory(seaweedfs: SeaweedS3) -> Iterator[object]:
    proxies: list[DroppingProxy] = []
    port = int(seaweedfs.endpoint_url.rsplit(":", 1)[1])

    def make(drop: set[int], drop_puts: set[int] | frozenset[int] = frozenset()) -> DroppingProxy:
        proxy = DroppingProxy(port, drop, drop_puts)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()
