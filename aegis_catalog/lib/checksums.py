"""Checksum lists in the format of coreutils ``sha256sum`` (what ``sha256sum -c`` reads).

An artifact's ``MANIFEST.sha256`` is written by the packager (`imports.packaging`) and read by
the verifier (`registry.verify`) with these two functions, so both agree on every byte.
A name holding a backslash, a newline or a carriage return is escaped as coreutils does: the
line starts with ``\\`` and those characters are written ``\\\\``, ``\\n`` and ``\\r``.

Plain Python: no Django, no network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_SHA256_LINE = re.compile(r"^(\\?)([0-9a-f]{64}) [ *](.+)$")
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\\\": "\\", "\\n": "\n", "\\r": "\r"}


class ChecksumListError(ValueError):
    """The text is not a sha256sum checksum list; the message names the line."""


def _escaped(name: str) -> tuple[str, str]:
    if not any(char in name for char in _ESCAPES):
        return "", name
    return "\\", "".join(_ESCAPES.get(char, char) for char in name)


def format_sha256sums(entries: Iterable[tuple[str, str]]) -> bytes:
    """``<sha256>  <name>`` lines, in the order given, as UTF-8 (``sha256sum`` text mode)."""
    lines = []
    for name, digest in entries:
        prefix, escaped = _escaped(name)
        lines.append(f"{prefix}{digest}  {escaped}\n")
    return "".join(lines).encode("utf-8")


def _unescape(name: str, number: int) -> str:
    result, index = [], 0
    while index < len(name):
        pair = name[index : index + 2]
        if name[index] == "\\":
            if pair not in _UNESCAPES:
                raise ChecksumListError(f"line {number}: unknown escape {pair!r} in the name")
            result.append(_UNESCAPES[pair])
            index += 2
        else:
            result.append(name[index])
            index += 1
    return "".join(result)


def parse_sha256sums(data: bytes) -> dict[str, str]:
    """``name -> sha256`` of a checksum list; a malformed line or a repeated name is refused."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ChecksumListError(f"the checksum list is not UTF-8 ({error})") from error
    if text and not text.endswith("\n"):
        raise ChecksumListError("the checksum list does not end with a newline")
    digests: dict[str, str] = {}
    # Only "\n" ends a line (str.splitlines would also split names at "\x0c" and the like).
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        match = _SHA256_LINE.match(line)
        if match is None:
            raise ChecksumListError(f"line {number} is not '<sha256>  <name>': {line[:80]!r}")
        escaped, digest, name = match.groups()
        if escaped:
            name = _unescape(name, number)
        if name in digests:
            raise ChecksumListError(f"line {number}: {name!r} is listed twice")
        digests[name] = digest
    return digests
