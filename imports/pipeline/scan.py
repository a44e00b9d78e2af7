"""Stage 5, scan: pickle-based files get a verdict, and the pickle policy is applied."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imports.pipeline.base import UnsafeModelFile
from imports.pipeline.check import CheckResult
from imports.pipeline.download import Download
from imports.scanners.pickles import SCANNER, ScanVerdict, scan_unproven
from imports.scanners.safetensors import is_safetensors
from registry import policy
from registry.policy import ImportRules, PolicyFinding, PolicyViolation


@dataclass(frozen=True)
class ScanResult:
    verdicts: tuple[ScanVerdict, ...]
    findings: tuple[PolicyFinding, ...] = ()
    scanner_version: str = ""
    # The policy the findings were judged by: a retry under other rules scans again.
    rules_digest: str = ""

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
            rules_digest=str(data.get("rules_digest", "")),
        )

    def verdicts_json(self) -> list[dict[str, Any]]:
        return [{**asdict(item), "globals": list(item.globals)} for item in self.verdicts]


def scan_pickles(download: Download, checked: CheckResult, rules: ImportRules) -> ScanResult:
    """Scan every file not proven safe and apply the pickle policy.

    A safetensors file whose whole header checks out is proven safe and not scanned; every
    other file goes through picklescan, and those that are pickle content (by name, by their
    first bytes, or by the imports found in them) get a verdict: safe, suspicious (imports
    picklescan does not know) or dangerous (imports that run code, such as ``os.system``, or a
    stream that cannot be parsed to its end). The policy decides what stops the import (see
    ``registry.policy.check_pickle_verdicts``).
    """
    verdicts: list[ScanVerdict] = []
    for item in checked.files:
        verdict = scan_one(download.paths[item.path], item.path, item.sha256)
        if verdict is not None:
            verdicts.append(verdict)
    return judge(verdicts, rules)


def scan_one(local: Path, name: str, sha256: str) -> ScanVerdict | None:
    """The verdict on one file, or None when it is not pickle content (a safetensors file
    whose whole header checks out is proven safe without a scan)."""
    if is_safetensors(local):
        return None
    return scan_unproven(local, name, sha256=sha256)


def judge(verdicts: Sequence[ScanVerdict], rules: ImportRules) -> ScanResult:
    """Apply the pickle policy to the verdicts: ``UnsafeModelFile`` when it refuses them."""
    from importlib.metadata import version as package_version

    ordered = sorted(verdicts, key=lambda item: item.path)
    verdict_dicts = [{**asdict(item), "globals": list(item.globals)} for item in ordered]
    try:
        findings = policy.check_pickle_verdicts(verdict_dicts, rules)
    except PolicyViolation as error:
        raise UnsafeModelFile(error.rule, error.reason) from None
    return ScanResult(
        verdicts=tuple(ordered),
        findings=tuple(findings),
        scanner_version=f"{SCANNER} {package_version('picklescan')}",
        rules_digest=rules.digest(),
    )
