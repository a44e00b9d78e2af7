"""Helpers the storage tests share: random files, directory listings, progress, feeding."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from pathlib import Path

MiB = 1024 * 1024


def write_random_file(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def files_in(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


class ProgressRecorder:
    def __init__(self) -> None:
        self.total = 0
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, amount: int) -> None:
        with self.lock:
            self.total += amount
            self.calls += 1


def feed(upload, data: bytes, piece: int) -> None:
    for start in range(0, len(data), piece):
        upload.write(data[start : start + piece])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
