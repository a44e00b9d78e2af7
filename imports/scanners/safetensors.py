"""Proving a file is safetensors: the whole header parsed and checked against the file.

A safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the tensor bytes. Its loader reads no code, so a file proven to
be safetensors needs no pickle scan; "proven" means every rule the format's own loader enforces
holds, not that the first bytes look right (a pickle can be crafted to start like a header).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

# Bytes per element of each dtype the safetensors format defines.
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit


class NotSafetensors(ValueError):
    """The file is not a valid safetensors file; the message says which rule fails."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise NotSafetensors("the header names a key twice")
    return dict(pairs)


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The parsed JSON header and the size of the data part after it."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        length = header_length(handle.read(8), size)
        raw = handle.read(length)
    return parse_header(raw), size - 8 - length


def header_length(prefix: bytes, size: int) -> int:
    """The header length the first 8 bytes of a ``size``-byte file give, if it fits."""
    if len(prefix) < 8:
        raise NotSafetensors("shorter than the 8-byte header length")
    length = int.from_bytes(prefix[:8], "little")
    if not 2 <= length <= min(size - 8, MAX_HEADER_BYTES):
        raise NotSafetensors(f"a header length of {length:,} bytes does not fit the file")
    return length


def parse_header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as error:
        raise NotSafetensors(f"the header is not JSON: {error}") from None
    except RecursionError:
        raise NotSafetensors("the header's JSON nests too deeply to read") from None
    if not isinstance(header, dict):
        raise NotSafetensors("the header is not a JSON object")
    return header


def _tensor_range(name: str, entry: Any) -> tuple[int, int]:
    """A tensor's byte range, checked against its dtype and shape."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise NotSafetensors(f"tensor {name!r} is not {{dtype, shape, data_offsets}}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPE_SIZES:
        raise NotSafetensors(f"tensor {name!r} has an unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(type(size) is int and size >= 0 for size in shape):
        raise NotSafetensors(f"tensor {name!r} has an invalid shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(type(value) is int and value >= 0 for value in offsets)
        or offsets[0] > offsets[1]
    ):
        raise NotSafetensors(f"tensor {name!r} has invalid data offsets {offsets!r}")
    if offsets[1] - offsets[0] != math.prod(shape) * DTYPE_SIZES[dtype]:
        raise NotSafetensors(
            f"tensor {name!r}: {offsets[1] - offsets[0]:,} bytes do not hold a {dtype} "
            f"tensor of shape {shape}"
        )
    return offsets[0], offsets[1]


def check_safetensors(path: Path) -> int:
    """The number of tensors of a valid safetensors file; NotSafetensors says why it is not.

    Checks what the format's loader checks: the header parses, its metadata is strings, each
    tensor's bytes match its dtype and shape, and the byte ranges tile the data part exactly
    (no gap, no overlap, nothing after the last tensor).
    """
    header, data_size = read_header(path)
    return _check_header(header, data_size)


def proven_by_head(size: int, head: bytes | memoryview) -> bool:
    """Whether a ``size``-byte file whose first bytes are ``head`` is proven safetensors by
    them: its whole header is in ``head`` and passes every check of ``check_safetensors``
    (the data part is known by its size; its bytes are the tensors, which no loader runs)."""
    try:
        length = header_length(bytes(head[:8]), size)
        if 8 + length > len(head):
            return False  # the header goes on past what was given
        _check_header(parse_header(bytes(head[8 : 8 + length])), size - 8 - length)
    except NotSafetensors:
        return False
    return True


def _check_header(header: dict[str, Any], data_size: int) -> int:
    """The number of tensors of a header whose tensors' bytes take ``data_size`` bytes."""
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in metadata.items()
    ):
        raise NotSafetensors("__metadata__ is not a map of strings")
    ranges = sorted(_tensor_range(name, entry) for name, entry in header.items())
    end = 0
    for start, stop in ranges:
        if start != end:
            raise NotSafetensors(f"the tensors' bytes overlap or leave a gap at offset {start:,}")
        end = stop
    if end != data_size:
        raise NotSafetensors(f"the tensors cover {end:,} of the file's {data_size:,} data bytes")
    return len(ranges)


def safetensors_problem(path: Path, name: str) -> str | None:
    """Why a file named ``*.safetensors`` is not a valid safetensors file (None when it is,
    and for other names): its loader would refuse it, or read tensors out of other tensors'
    bytes."""
    if not name.lower().endswith(".safetensors"):
        return None
    try:
        check_safetensors(path)
    except NotSafetensors as error:
        return str(error)
    except OSError as error:
        return f"it cannot be read ({error.strerror or error})"
    return None


def is_safetensors(path: Path) -> bool:
    try:
        check_safetensors(path)
    except (NotSafetensors, OSError):
        return False
    return True
