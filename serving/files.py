"""A served file's bytes, read from its verified copy in the store: whole (hashed as it is sent,
and cut short if the copy no longer has the signed sha256) or one ``Range`` (206)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from typing import IO

from aegis_catalog import services
from aegis_catalog.lib.ranges import UnsatisfiableRange, byte_range
from aegis_catalog.lib.storage import ObjectNotFound, StorageError
from serving.names import NotServed

logger = logging.getLogger(__name__)
CHUNK = 1024 * 1024


class CopyChanged(Exception):
    """A verified copy's bytes no longer have the sha256 they were verified with."""


def requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The range a ``Range`` header asks for; None without one; NotServed (416) when it
    cannot be satisfied."""
    if not header:
        return None
    try:
        return byte_range(header, size)
    except UnsatisfiableRange as refused:
        raise NotServed(str(refused), status=416) from None


def _chunks(stream: IO[bytes], length: int) -> Iterator[bytes]:
    left = length
    while left > 0:
        chunk = stream.read(min(CHUNK, left))
        if not chunk:
            raise CopyChanged(f"the stored copy ended {left} bytes early")
        left -= len(chunk)
        yield chunk


def open_copy(
    url: str, *, size: int, span: tuple[int, int] | None, on_missing: Callable[[str], None]
) -> IO[bytes]:
    """The verified copy at ``url`` opened for ``span`` (or whole), before any answer is sent,
    so a store that fails is a clear error (503), not a connection cut after the headers. A
    copy gone from the store is reported to ``on_missing`` (the version is checked again)."""
    start, end = span or (0, size)
    try:
        stream, _total = services.served_store_for(url).open_read(url, start=start, end=end)
    except ObjectNotFound as missing:
        on_missing(str(missing))
        raise NotServed(
            f"A verified copy is missing from the store ({missing}); the version will be "
            "verified again before it is served.",
            status=503,
        ) from None
    except StorageError as failure:
        raise NotServed(f"The artifact store does not answer: {failure}", status=503) from None
    return stream


def stream_file(
    stream: IO[bytes],
    *,
    url: str,
    sha256: str,
    size: int,
    span: tuple[int, int] | None,
    on_changed: Callable[[str], None],
) -> Iterator[bytes]:
    """The bytes of the opened copy (``span``: only those). A whole file is hashed as it is
    sent; if it is not ``sha256`` the last chunk is withheld and the response is broken off (the
    server drops the connection), so the client gets fewer bytes than announced and keeps
    nothing; ``on_changed`` is told why first."""
    start, end = span or (0, size)
    digest = hashlib.sha256() if span is None else None
    try:
        pending = b""
        for chunk in _chunks(stream, end - start):
            if pending:
                yield pending
            if digest is not None:
                digest.update(chunk)
            pending = chunk
        if digest is not None and digest.hexdigest() != sha256:
            raise CopyChanged(f"the stored copy has sha256 {digest.hexdigest()}, not {sha256}")
        yield pending
    except CopyChanged as changed:
        logger.error("refused to finish serving %s: %s", url, changed)
        on_changed(str(changed))
        raise
    finally:
        stream.close()
