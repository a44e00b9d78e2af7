"""The second pickle scanner: fickling (Trail of Bits), run over every pickle picklescan reads.

picklescan matches the globals a pickle imports against a list of dangerous ones, so a callable
missing from its list is only "suspicious"; fickling decompiles the pickle to the Python it
would run and judges the imports and calls with its own lists (``pkgutil``, ``_posixsubprocess``,
``torch.storage._load_from_bytes``, ``code``, ...). A callable either one calls dangerous is
dangerous (``imports.scanners.pickles``).

fickling keeps every opcode it reads, argument included. What it is given here is a skeleton of
each pickle stream: byte-string arguments longer than ``BULK_BYTES`` (tensor data inside a raw
pickle) are skipped on disk and written as empty ones, which changes nothing about what the
pickle imports or calls. PyTorch's zip format is read member by member (``*.pkl``), a ``.npy``
after its header; a legacy ``torch.save`` file ends its pickles with raw storage bytes, where
reading stops.
"""

from __future__ import annotations

import io
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from imports.scanners.base import library_version

BULK_BYTES = 64 * 1024
# Opcodes whose argument is a length and that many bytes, by the width of the length.
_BULK_OPCODES = {b"B": 4, b"\x8e": 8}  # BINBYTES, BINBYTES8
_TRIGGER_IMPORT = re.compile(r"^from (\S+) import (\S+)$")
MAX_PICKLES = 64  # stacked pickles in one file (legacy torch.save writes five)


@dataclass(frozen=True)
class Opinion:
    """fickling's verdict on one file: "safe", "suspicious" or "dangerous", and why."""

    verdict: str
    detail: str
    callables: tuple[str, ...] = ()


class _Skeleton:
    """Reads a pickle stream for ``pickletools.genops``, keeping the bytes it reads except a
    bulk byte string's contents, which are skipped on disk and recorded as empty."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.kept = bytearray()

    def read(self, size: int = -1) -> Any:
        if size > BULK_BYTES and self._bulk_length_kept(size):
            self.raw.seek(size, io.SEEK_CUR)
            return _Elided(size)
        data = self.raw.read(size)
        self.kept += data
        return data

    def _bulk_length_kept(self, size: int) -> bool:
        """Whether the bytes kept end with a BINBYTES opcode and this length: then the length
        is rewritten as zero."""
        for code, width in _BULK_OPCODES.items():
            tail = self.kept[-(width + 1) :]
            if tail[:1] == code and int.from_bytes(tail[1:], "little") == size:
                self.kept[-width:] = bytes(width)
                return True
        return False

    def readline(self, size: int = -1) -> bytes:
        line = self.raw.readline(size)
        self.kept += line
        return line

    def tell(self) -> int:
        return self.raw.tell()


class _Elided(int):
    """The bytes of a skipped argument: only their count, for genops' length check."""

    def __len__(self) -> int:
        return int(self)


def _skeletons(stream: IO[bytes]) -> Iterator[bytes]:
    """Each pickle in the stream, as a skeleton, until the stream ends or stops being one."""
    import pickletools

    for index in range(MAX_PICKLES):
        reader = _Skeleton(stream)
        try:
            for _op in pickletools.genops(reader):  # type: ignore[arg-type]
                pass
        except Exception:
            if index == 0:
                raise  # not even one pickle: fickling cannot follow the stream
            return  # raw bytes after the pickles (legacy torch.save)
        yield bytes(reader.kept)
        if not stream.read(1):
            return
        stream.seek(-1, io.SEEK_CUR)


def _numpy_objects(handle: IO[bytes]) -> bool:
    """Read a ``.npy`` header: True (positioned at its pickle) when it holds Python objects,
    False for plain array data, which is no pickle."""
    import numpy as np

    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        _, _, dtype = np.lib.format.read_array_header_1_0(handle)
    else:
        _, _, dtype = np.lib.format.read_array_header_2_0(handle)
    return bool(dtype.hasobject)


def _payload(handle: IO[bytes]) -> IO[bytes] | None:
    """The handle positioned at its pickle, or None when it holds none (plain ``.npy``)."""
    if handle.read(6) == b"\x93NUMPY":
        handle.seek(0)
        return handle if _numpy_objects(handle) else None
    handle.seek(0)
    return handle


def _streams(path: Path) -> Iterator[tuple[str, IO[bytes]]]:
    """The pickle streams of a file: a zip's members (``*.pkl``, ``*.npy``), each copied to a
    temporary file first (bounded memory, seekable), or the file itself."""
    if not zipfile.is_zipfile(path):
        with path.open("rb") as handle:
            if (payload := _payload(handle)) is not None:
                yield "", payload
        return
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith((".pkl", ".pickle", ".npy")):
                continue
            with tempfile.TemporaryFile() as copy:
                with archive.open(info) as member:
                    shutil.copyfileobj(member, copy, 1024 * 1024)
                copy.seek(0)
                if (payload := _payload(copy)) is not None:
                    yield info.filename, payload


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    """fickling's analyses that can call a pickle (likely) overtly malicious: its lists of
    unsafe imports (general and ML), bad calls and evals, scanner deactivation, expansion
    attacks. Those that can only say "likely unsafe" or less (any import outside the standard
    library, unused variables, odd protocol markers) are left out: they are not a verdict here,
    and the unused-variable pass alone costs most of the time on a large state dict."""
    from fickling import analysis

    return analysis.Analyzer(
        [
            analysis.ResourceExhaustionAnalysis(),
            analysis.UnsafeImports(),
            analysis.UnsafeImportsML(),
            analysis.BadCalls(),
            analysis.OvertlyBadEvals(),
            analysis.ScannerDeactivation(),
        ]
    )


def _judge(skeleton: bytes) -> tuple[int, list[str], list[str]]:
    """fickling's severity (0-5) for one pickle, its messages at LIKELY_UNSAFE and above, and
    the callables its overtly-malicious findings name."""
    from fickling.analysis import Severity, check_safety
    from fickling.fickle import Pickled

    results = check_safety(Pickled.load(skeleton, fail_on_decode_error=False), _analyzer())
    messages, callables = [], []
    for result in results.results:
        if result.severity >= Severity.LIKELY_OVERTLY_MALICIOUS:
            messages.append(str(result))
            match = _TRIGGER_IMPORT.match(result.trigger or "")
            if match:
                callables.append(f"{match.group(1)}.{match.group(2)}")
    return results.severity.severity, messages, callables


def fickling_opinion(path: Path) -> Opinion:
    """fickling's verdict on a file known to be pickle content. Dangerous: an import or call
    fickling calls (likely) overtly malicious, or a stream it cannot follow; safe otherwise
    (its "likely unsafe" for any import outside the standard library, ``torch._utils``
    included, is not a verdict: picklescan's list of known globals answers that)."""
    worst, messages, callables = 0, [], []
    try:
        for member, stream in _streams(path):
            for skeleton in _skeletons(stream):
                severity, found, named = _judge(skeleton)
                worst = max(worst, severity)
                messages += [f"{member}: {text}" if member else text for text in found]
                callables += named
    except Exception as error:
        if isinstance(error, OSError) and error.errno is not None:
            raise  # the disk, not the bytes
        return Opinion("dangerous", f"fickling could not follow the pickle stream ({error})")
    if worst >= 4:
        unique = sorted(set(callables))
        return Opinion("dangerous", "; ".join(dict.fromkeys(messages)), tuple(unique))
    return Opinion("safe", "no import or call fickling calls malicious")


def scanner_name() -> str:
    return library_version("fickling")
