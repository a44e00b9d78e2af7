"""A rate-limited TCP proxy for the bench's network-bound figures, in a process of its own.

    python bench/throttle.py RATE NAME=HOST:PORT[,HOST:PORT...] [NAME=...]

RATE is bytes per second. Each NAME is one proxy: one listening port on 127.0.0.1 per
upstream address, and one token bucket shared by every connection to any of its ports, in
both directions, so the *aggregate* rate through it is RATE (the Hub double's API and CDN
listeners share one, as one host's link would). The bytes pass untouched (the Host header a
client sends is the proxy's address: what SigV4 signs is what S3 receives). Prints one JSON
line {NAME: ["http://127.0.0.1:PORT", ...]} (in the order given) when listening; stops when
stdin closes. The bytes move in pieces of up to 256 KiB through the kernel alone (splice(2):
Linux), so the proxy costs little CPU; `Throttle.cpu_seconds` tells how little.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

CHUNK = 256 * 1024
# A short burst (about 10 ms at 100 MB/s) over the rate: free bytes the size of a few reads,
# so a late timer does not cost throughput, and nothing that shows in a GiB transfer.
BURST = 4 * CHUNK


class ThrottleFailed(RuntimeError):
    """The throttle's process stopped before it said where it listens."""


class TokenBucket:
    """Bytes allowed at `rate` per second, for every connection of one proxy.

    `reserve` takes a read's bytes at once and says how long to hold them: the tokens may go
    below zero, and the next caller then waits for its own bytes and for the debt before it,
    so whatever the number of connections, the bytes released up to any moment stay within
    `burst + rate * elapsed`.
    """

    def __init__(self, rate: float, *, burst: int = BURST, now: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError(f"the rate must be positive, got {rate}")
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now

    def reserve(self, count: int, now: float) -> float:
        """Take `count` bytes at time `now` (seconds); the seconds to wait before sending them."""
        now = max(now, self.updated)
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= count
        return max(0.0, -self.tokens / self.rate)


class Proxy:
    """One proxy: a listening socket on 127.0.0.1 (any free port) per upstream, and one
    bucket for all their connections, each direction of each connection on a thread of its own.

    The bytes go through the kernel only (splice(2) through a pipe, Linux), never copied into
    Python, so relaying costs little CPU: the proxy must not take the CPU the measured steps
    need on a small machine.
    """

    def __init__(self, upstreams: list[tuple[str, int]], rate: float) -> None:
        self.bucket = TokenBucket(rate, now=time.monotonic())
        self.lock = threading.Lock()
        self.listeners: list[socket.socket] = []
        for upstream in upstreams:
            listener = socket.create_server(("127.0.0.1", 0))
            self.listeners.append(listener)
            threading.Thread(target=self._accept, args=(listener, upstream), daemon=True).start()

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{listener.getsockname()[1]}" for listener in self.listeners]

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()

    def _accept(self, listener: socket.socket, upstream: tuple[str, int]) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _relay(self, client: socket.socket, upstream: tuple[str, int]) -> None:
        with client:
            try:
                server = socket.create_connection(upstream)
            except OSError:
                return
            with server:
                for end in (client, server):
                    end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                answers = threading.Thread(target=self._pipe, args=(server, client), daemon=True)
                answers.start()
                self._pipe(client, server)
                answers.join()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        """Copy one direction at the bucket's rate, then half-close it."""
        read_end, write_end = os.pipe()
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, CHUNK)
        try:
            while count := os.splice(source.fileno(), write_end, CHUNK):
                self._wait_for(count)
                while count:
                    count -= os.splice(read_end, target.fileno(), count)
            target.shutdown(socket.SHUT_WR)
        except OSError:
            # A reset on either side: shutting both down ends the other direction too.
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
        finally:
            os.close(read_end)
            os.close(write_end)

    def _wait_for(self, count: int) -> None:
        with self.lock:
            delay = self.bucket.reserve(count, time.monotonic())
        if delay > 0:
            time.sleep(delay)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main() -> None:
    rate, *arguments = sys.argv[1:]
    proxies = {}
    for argument in arguments:
        name, _, addresses = argument.partition("=")
        upstreams = [_address(address) for address in addresses.split(",")]
        proxies[name] = Proxy(upstreams, float(rate))
    print(json.dumps({name: proxy.urls for name, proxy in proxies.items()}), flush=True)
    sys.stdin.read()
    for proxy in proxies.values():
        proxy.close()


class Throttle:
    """The proxies of `python bench/throttle.py`, started in a process of their own.

    `upstreams` maps a proxy's name to the base URLs it fronts (one port each);
    `urls[name]` are the proxy's URLs, in the same order.
    """

    def __init__(self, bytes_per_second: int, upstreams: dict[str, list[str]]) -> None:
        self.bytes_per_second = bytes_per_second
        arguments = [
            f"{name}={','.join(url.removeprefix('http://').rstrip('/') for url in urls)}"
            for name, urls in upstreams.items()
        ]
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(bytes_per_second), *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()
        if not ready:
            raise ThrottleFailed(
                f"bench/throttle.py {' '.join(arguments)} stopped before listening"
            )
        self.urls: dict[str, list[str]] = json.loads(ready)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the proxy process has used so far."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


if __name__ == "__main__":
    main()
