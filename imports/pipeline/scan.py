"""Stage 5, scan: pickle-based files get a verdict, and the pickle policy is applied."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imports.formats import is_pickle_format
from imports.pipeline.base import UnsafeModelFile
from imports.pipeline.check import CheckResult
from imports.pipeline.download import Download
from registry import policy
from registry.policy import ImportRules, PolicyFinding, PolicyViolation

SCANNER = "picklescan"
# picklescan names the module a pickle imports as written in the pickle: os.system pickled on
# Linux reads "posix.system". Shown with the name people know.
_MODULE_ALIASES = {"posix": "os", "nt": "os", "__builtin__": "builtins"}


@dataclass(frozen=True)
class ScanVerdict:
    path: str
    scanner: str
    verdict: str  # "safe", "suspicious", "dangerous"
    detail: str = ""
    globals: tuple[str, ...] = ()  # the offending imports: dangerous and suspicious ones
    detected_by: str = "extension"  # "extension", "magic bytes" or "zip with pickle"
    sha256: str = ""


@dataclass(frozen=True)
class ScanResult:
    verdicts: tuple[ScanVerdict, ...]
    findings: tuple[PolicyFinding, ...] = ()
    scanner_version: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScanResult:
        verdicts = []
        for item in data["verdicts"]:
            values = dict(item)
            values["globals"] = tuple(values.get("globals") or ())
            verdicts.append(ScanVerdict(**values))
        return cls(
            verdicts=tuple(verdicts),
            findings=tuple(PolicyFinding.from_json(item) for item in data.get("findings", ())),
            scanner_version=str(data.get("scanner_version", "")),
        )

    def verdicts_json(self) -> list[dict[str, Any]]:
        return [{**asdict(item), "globals": list(item.globals)} for item in self.verdicts]


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    # safetensors: an 8-byte little-endian header length, then a JSON object.
    if len(head) < 10:
        return False
    header_length = int.from_bytes(head[:8], "little")
    return 2 <= header_length <= size - 8 and head[8:9] == b"{"


def pickle_content(path: Path) -> str:
    """How a file is recognised as pickle-based by its bytes, or "" when it is not.

    Pickle protocol 2+ starts with PROTO (0x80, then the protocol number); PyTorch's zip
    format is a zip archive holding a ``*.pkl`` (``data.pkl``); numpy's ``.npy`` can hold
    pickled objects. Names do not matter here: a pickle called ``weights.dat`` is found.
    """
    import zipfile

    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(16)
    is_proto = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    if is_proto and not _looks_like_safetensors(head, size):
        return "magic bytes"
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


def scan_file(path: Path, name: str, *, detected_by: str, sha256: str = "") -> ScanVerdict:
    """One file's verdict: dangerous or suspicious imports named; unparseable is suspicious."""
    import logging

    from picklescan.scanner import scan_file_path

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
    scanner_log.addHandler(handler)
    try:
        result = scan_file_path(str(path))
    finally:
        scanner_log.removeHandler(handler)

    def named(level: str) -> tuple[str, ...]:
        return tuple(
            sorted(
                {
                    _display_global(f"{found.module}.{found.name}")
                    for found in result.globals
                    if getattr(found.safety, "value", str(found.safety)) == level
                }
            )
        )

    dangerous, suspicious = named("dangerous"), named("suspicious")
    if dangerous or (result.issues_count and not suspicious):
        offending = dangerous or ("unknown code",)
        return ScanVerdict(
            name, SCANNER, "dangerous", "dangerous imports: " + ", ".join(offending),
            globals=tuple(sorted({*offending, *suspicious})), detected_by=detected_by,
            sha256=sha256,
        )  # fmt: skip
    if suspicious or result.scan_err or unparseable:
        reasons = []
        if suspicious:
            reasons.append("suspicious imports: " + ", ".join(suspicious))
        if result.scan_err or unparseable:
            reasons.append("the pickle stream could not be parsed to its end")
        return ScanVerdict(
            name, SCANNER, "suspicious", "; ".join(reasons), globals=suspicious,
            detected_by=detected_by, sha256=sha256,
        )  # fmt: skip
    imported = sorted({f"{found.module}.{found.name}" for found in result.globals})
    return ScanVerdict(
        name, SCANNER, "safe", "imports: " + (", ".join(imported) or "none"),
        detected_by=detected_by, sha256=sha256,
    )  # fmt: skip


def scan_pickles(download: Download, checked: CheckResult, rules: ImportRules) -> ScanResult:
    """Scan every pickle-based file (by name or by its bytes) and apply the pickle policy.

    Verdicts: safe, suspicious (suspicious imports, or a stream that cannot be parsed) and
    dangerous (imports that run code, such as ``os.system``). The policy decides what stops
    the import (see ``registry.policy.check_pickle_verdicts``).
    """
    from importlib.metadata import version as package_version

    verdicts: list[ScanVerdict] = []
    for item in checked.files:
        local = download.paths[item.path]
        detected = pickle_content(local)
        if not detected and not is_pickle_format(item.path):
            continue
        verdicts.append(
            scan_file(local, item.path, detected_by=detected or "extension", sha256=item.sha256)
        )
    verdict_dicts = [{**asdict(item), "globals": list(item.globals)} for item in verdicts]
    try:
        findings = policy.check_pickle_verdicts(verdict_dicts, rules)
    except PolicyViolation as error:
        raise UnsafeModelFile(error.rule, error.reason) from None
    return ScanResult(
        verdicts=tuple(verdicts),
        findings=tuple(findings),
        scanner_version=f"{SCANNER} {package_version('picklescan')}",
    )
