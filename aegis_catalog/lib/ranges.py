"""HTTP ``Range: bytes=...`` requests, as file servers answer them (RFC 9110 14.1.2): one range."""

from __future__ import annotations

import re

RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


class UnsatisfiableRange(ValueError):
    """Not one ``bytes=first-last`` or ``bytes=-suffix`` range inside the file (answer 416)."""


def byte_range(header: str, size: int) -> tuple[int, int]:
    """Start and end (exclusive) of the one range ``header`` asks of a ``size``-byte file."""
    match = RANGE_RE.match(header)
    if match is None or match.group(1) == match.group(2) == "":
        raise UnsatisfiableRange("Send one byte range, bytes=first-last.")
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size
    else:
        start = int(first)
        end = min(size, int(last) + 1) if last else size
    if start >= size or start >= end:
        raise UnsatisfiableRange(f"The range {header.strip()} is outside the file ({size} bytes).")
    return start, end
