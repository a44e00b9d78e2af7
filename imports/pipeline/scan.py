"""Stage 5, scan: pickle-based files get a verdict, and the pickle policy is applied."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
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
    from importlib.metadata import version as package_version

    verdicts: list[ScanVerdict] = []
    for item in checked.files:
        local = download.paths[item.path]
        if is_safetensors(local):
            continue
        verdict = scan_unproven(local, item.path, sha256=item.sha256)
        if verdict is not None:
            verdicts.append(verdict)
    verdict_dicts = [{**asdict(item), "globals": list(item.globals)} for item in verdicts]
    try:
        findings = policy.check_pickle_verdicts(verdict_dicts, rules)
    except PolicyViolation as error:
        raise UnsafeModelFile(error.rule, error.reason) from None
    return ScanResult(
        verdicts=tuple(verdicts),
        findings=tuple(findings),
        scanner_version=f"{SCANNER} {package_version('picklescan')}",
        rules_digest=rules.digest(),
    )
