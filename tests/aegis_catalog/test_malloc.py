"""aegis_catalog.lib.malloc: with the limit, threads share that many malloc arenas; without it,
glibc gives each new thread one of its own (counted by glibc's own malloc_stats)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import ctypes, sys, threading
sys.path.insert(0, {root!r})
from aegis_catalog.lib.malloc import limit_arenas
if {limit} is not None:
    assert limit_arenas({limit})
all_in = threading.Barrier(6)
def allocate():
    kept = [bytearray(100_000) for _ in range(5)]  # larger than pymalloc's blocks: malloc's
    all_in.wait()  # every thread alive at once (an ended thread's arena goes to the next)
threads = [threading.Thread(target=allocate) for _ in range(6)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL(None).malloc_stats()  # to stderr, one "Arena N:" per arena
"""

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's (CI runs on glibc)"
)


def arenas(limit: int | None) -> int:
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=str(ROOT), limit=limit)],
        capture_output=True,
        text=True,
        check=True,
    )
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


def test_threads_share_the_arenas_the_limit_allows():
    assert arenas(None) > 2  # each thread its own: what the limit is there to stop
    assert 1 <= arenas(2) <= 2
