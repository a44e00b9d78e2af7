"""Fewer malloc arenas, for a process whose threads pass large buffers between them.

glibc gives each thread that allocates under contention an arena of its own, up to eight per
CPU. An import's threads (downloads, packager, compressors, uploads) each allocate and free
buffers of a few MiB that other threads made, and every arena keeps the high-water mark of
what passed through it: the process's resident memory grows by tens of MiB that hold nothing.
Two arenas keep it near what is in use, for no measurable CPU (the hot work runs in C on
large buffers, outside malloc). Plain Python; a no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_ARENA_MAX = -8  # glibc's malloc.h


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it)
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(count: int) -> bool:
    """Let threads share at most ``count`` malloc arenas (those that exist stay); whether it
    took effect. Arenas are made when threads first allocate, so call it before starting
    them."""
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, max(1, count)) == 1)
