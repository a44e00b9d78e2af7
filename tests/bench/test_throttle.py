"""The bench's throttle (bench/throttle.py): the token bucket's arithmetic, on given clock
readings (no sleeping, no timing), and the proxy passing bytes through unchanged."""

from __future__ import annotations

import hashlib
import os
import socket
import threading

from bench.throttle import Proxy, TokenBucket

RATE = 100 * 10**6


def test_it_lets_a_burst_through_at_once():
    bucket = TokenBucket(RATE, burst=1000, now=0.0)

    assert bucket.reserve(600, 0.0) == 0
    assert bucket.reserve(400, 0.0) == 0


def test_it_holds_bytes_over_the_burst_for_as_long_as_the_rate_takes():
    bucket = TokenBucket(RATE, burst=1000, now=0.0)

    assert bucket.reserve(1000 + RATE, 0.0) == 1.0


def test_it_makes_connections_share_the_rate():
    bucket = TokenBucket(RATE, burst=0, now=0.0)
    # Four connections each read 25 MB at the same moment: the last one's bytes go out after
    # all 100 MB, at one second, as if one connection had read them all.
    delays = [bucket.reserve(RATE // 4, 0.0) for _ in range(4)]

    assert delays == [0.25, 0.5, 0.75, 1.0]


def test_it_counts_time_that_passed_as_sent_bytes():
    bucket = TokenBucket(RATE, burst=0, now=0.0)
    bucket.reserve(RATE, 0.0)

    # Half a second later, half of the debt is paid: a new read waits for the other half too.
    assert bucket.reserve(RATE // 2, 0.5) == 1.0


def test_it_saves_no_more_than_the_burst_while_idle():
    bucket = TokenBucket(RATE, burst=1000, now=0.0)

    # An hour idle buys 1,000 bytes, not an hour's worth.
    assert bucket.reserve(1000, 3600.0) == 0
    assert bucket.reserve(RATE, 3600.0) == 1.0


def _upstream_answering_digests() -> socket.socket:
    """A server that reads a connection to its end, answers the sha256 of what it read and
    closes, on a thread of its own (one connection)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        connection, _ = listener.accept()
        with connection:
            digest = hashlib.sha256()
            while data := connection.recv(1024 * 1024):
                digest.update(data)
            connection.sendall(digest.digest())

    threading.Thread(target=answer, daemon=True).start()
    return listener


def test_it_passes_the_bytes_through_unchanged_both_ways():
    payload = os.urandom(3 * 1024 * 1024 + 17)
    upstream = _upstream_answering_digests()
    proxy = Proxy([("127.0.0.1", upstream.getsockname()[1])], rate=10**12)
    try:
        port = int(proxy.urls[0].rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)
            answer = b""
            while data := client.recv(1024):
                answer += data
    finally:
        proxy.close()
        upstream.close()

    assert answer == hashlib.sha256(payload).digest()
