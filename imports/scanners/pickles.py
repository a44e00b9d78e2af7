"""The pickle scanners (picklescan, then fickling): which files are pickle content, and what
loading them runs.

A file is pickle content when its name says so (``imports.formats``), when its first bytes do
(pickle protocol 2+, a zip holding a ``.pkl`` as PyTorch writes it, numpy's magic), or when
picklescan finds imports in it: a protocol-0 pickle starts with plain text (``cos`` ...) and
can be called anything.
"""

from __future__ import annotations

import errno
import logging
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from imports.formats import is_pickle_format
from imports.scanners.base import library_version
from imports.scanners.safetensors import is_safetensors
from imports.scanners.second_pickle import Opinion, fickling_opinion

SCANNER = "picklescan + fickling"
_RANK = {"safe": 0, "suspicious": 1, "dangerous": 2}
# picklescan names the module a pickle imports as written in the pickle: os.system pickled on
# Linux reads "posix.system". Shown with the name people know.
_MODULE_ALIASES = {"posix": "os", "nt": "os", "__builtin__": "builtins"}
# What torch.save writes for the tensors and parameters of a state dict beyond picklescan's own
# safe list (1.0.5 knows torch._utils._rebuild_tensor_v2 and the storages): they rebuild a
# tensor from the storage and arguments the pickle gives them, and any callable among those
# arguments is a global of the pickle, judged on its own. Not unknown, so not suspicious.
CHECKPOINT_GLOBALS = frozenset(
    {
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._tensor._rebuild_from_type_v2",
        "torch.Size",
        "torch.device",
        *(f"torch.{dtype}" for dtype in (
            "float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
            "uint8", "bool",
        )),
    }
)  # fmt: skip
UNPARSEABLE = "the pickle stream could not be parsed to its end, so what loading it runs is unknown"


@dataclass(frozen=True)
class ScanVerdict:
    path: str
    scanner: str
    verdict: str  # "safe", "suspicious", "dangerous"
    detail: str = ""
    globals: tuple[str, ...] = ()  # the offending imports: dangerous and suspicious ones
    # "extension", "magic bytes", "zip with pickle" or "imports in its bytes"
    detected_by: str = "extension"
    sha256: str = ""
    # Each scanner's own verdict: (scanner and version, verdict, detail).
    opinions: tuple[tuple[str, str, str], ...] = ()


def pickle_content(path: Path) -> str:
    """How a file is recognised as pickle-based by its first bytes, or "" when it is not.

    Pickle protocol 2+ starts with PROTO (0x80, then the protocol number), unless the file is
    proven safetensors (whose header length can start with those bytes); PyTorch's zip format
    is a zip archive holding a ``*.pkl`` (``data.pkl``); numpy's ``.npy`` can hold pickled
    objects. Names do not matter here: a pickle called ``weights.dat`` is found.
    """
    with path.open("rb") as handle:
        head = handle.read(16)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "" if is_safetensors(path) else "magic bytes"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return ""
        if any(name.endswith((".pkl", ".pickle", "/data.pkl")) for name in names):
            return "zip with pickle"
    if head.startswith(b"\x93NUMPY"):
        return "magic bytes"
    return ""


def _display_global(name: str) -> str:
    module, _, attribute = name.partition(".")
    alias = _MODULE_ALIASES.get(module)
    return f"{name} ({alias}.{attribute})" if alias else name


def _picklescan(path: Path) -> tuple[Any, bool]:
    """picklescan's result for the file, and whether it could not parse a stream to its end."""
    from picklescan.scanner import ScanResult, scan_file_path

    unparseable: list[str] = []

    class _ParseFailures(logging.Handler):
        # picklescan reports a stream it cannot parse only in its log.
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if str(path) in message and (
                "could not parse" in message or "parsing pickle" in message
            ):
                unparseable.append(message)

    handler = _ParseFailures(level=logging.WARNING)
    scanner_log = logging.getLogger("picklescan")
    # What picklescan logs goes into the verdict, not the worker's log: every file that is
    # not a pickle would otherwise log "could not parse".
    propagate, scanner_log.propagate = scanner_log.propagate, False
    scanner_log.addHandler(handler)
    try:
        result = scan_file_path(str(path))
    except OSError as error:
        if error.errno != errno.EINVAL:
            raise  # the disk, not the bytes
        # A seek before the file's start, on bytes that open like an opcode needing a
        # previous one: picklescan could not follow the stream.
        unparseable.append(f"{path}: {error}")
        result = ScanResult(globals=[], scan_err=True)
    except Exception as error:
        # picklescan raises on some byte sequences it cannot follow (a STACK_GLOBAL with
        # nothing on its stack, say): unparseable, as the streams it only logs about.
        unparseable.append(f"{path}: {error}")
        result = ScanResult(globals=[], scan_err=True)
    finally:
        scanner_log.removeHandler(handler)
        scanner_log.propagate = propagate
    return result, bool(result.scan_err or unparseable)


def _named(result: Any, level: str) -> tuple[str, ...]:
    return tuple(
        sorted(
            {
                _display_global(f"{found.module}.{found.name}")
                for found in result.globals
                if getattr(found.safety, "value", str(found.safety)) == level
            }
        )
    )


def _verdict(
    result: Any, unparseable: bool, name: str, *, detected_by: str, sha256: str
) -> ScanVerdict:
    """Dangerous: imports that run code, or a stream that cannot be read to its end (what a
    loader would run is unknown); suspicious: imports picklescan does not know; else safe."""
    dangerous = _named(result, "dangerous")
    suspicious = tuple(
        name for name in _named(result, "suspicious") if name not in CHECKPOINT_GLOBALS
    )
    if dangerous or unparseable or (result.issues_count and not suspicious):
        reasons, offending = [], set(suspicious)
        if dangerous or not unparseable:
            offending.update(dangerous or ("unknown code",))
            reasons.append("dangerous imports: " + ", ".join(dangerous or ("unknown code",)))
        if unparseable:
            reasons.append(UNPARSEABLE)
        return ScanVerdict(
            name, SCANNER, "dangerous", "; ".join(reasons), globals=tuple(sorted(offending)),
            detected_by=detected_by, sha256=sha256,
        )  # fmt: skip
    if suspicious:
        return ScanVerdict(
            name, SCANNER, "suspicious", "suspicious imports: " + ", ".join(suspicious),
            globals=suspicious, detected_by=detected_by, sha256=sha256,
        )  # fmt: skip
    imported = sorted({f"{found.module}.{found.name}" for found in result.globals})
    return ScanVerdict(
        name, SCANNER, "safe", "imports: " + (", ".join(imported) or "none"),
        detected_by=detected_by, sha256=sha256,
    )  # fmt: skip


def scanners_version() -> str:
    """The pickle scanners with their versions, as recorded with the verdicts."""
    return f"{library_version('picklescan')}, {library_version('fickling')}"


def _second_opinion(first: ScanVerdict, path: Path) -> ScanVerdict:
    """picklescan's verdict joined with fickling's: the worse of the two, the callables either
    names, and each one's own verdict in ``opinions``."""
    second: Opinion = fickling_opinion(path)
    opinions = (
        (library_version("picklescan"), first.verdict, first.detail),
        (library_version("fickling"), second.verdict, second.detail),
    )
    if _RANK[second.verdict] <= _RANK[first.verdict]:
        return replace(first, scanner=SCANNER, opinions=opinions)
    offending = tuple(sorted(set(first.globals) | set(second.callables)))
    detail = f"fickling: {second.detail}; picklescan: {first.verdict} ({first.detail})"
    return replace(
        first, scanner=SCANNER, verdict=second.verdict, detail=detail, globals=offending,
        opinions=opinions,
    )  # fmt: skip


def scan_file(path: Path, name: str, *, detected_by: str, sha256: str = "") -> ScanVerdict:
    """The verdict on a file known to be pickle content."""
    result, unparseable = _picklescan(path)
    first = _verdict(result, unparseable, name, detected_by=detected_by, sha256=sha256)
    return _second_opinion(first, path)


def scan_unproven(path: Path, name: str, *, sha256: str = "") -> ScanVerdict | None:
    """The verdict on a file not proven safe, or None when it is no pickle content at all:
    not named as one, not starting like one, and with no import picklescan can find."""
    detected = pickle_content(path) or ("extension" if is_pickle_format(name) else "")
    result, unparseable = _picklescan(path)
    if not detected and not result.globals:
        return None
    first = _verdict(
        result, unparseable, name, detected_by=detected or "imports in its bytes", sha256=sha256
    )
    return _second_opinion(first, path)
