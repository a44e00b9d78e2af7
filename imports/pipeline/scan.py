"""Stage 5, scan: every file goes past the scanners that read its format, pickle content gets a
verdict from two pickle scanners, and the policy is applied to what they found."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imports.pipeline.base import UnsafeModelFile
from imports.pipeline.check import CheckResult
from imports.pipeline.download import Download
from imports.scanners import format_scanners
from imports.scanners.base import SEVERITIES, WARNING, Finding, own_scanner
from imports.scanners.pickles import ScanVerdict, scan_unproven, scanners_version
from imports.scanners.remote_code import RemoteCode, find_remote_code, is_python_source
from imports.scanners.safetensors import is_safetensors, safetensors_problem
from registry import policy
from registry.policy import (
    FILE_RULES,
    RULE_DANGEROUS_PICKLE,
    RULE_MALFORMED_WEIGHTS,
    ImportRules,
    PolicyFinding,
    PolicyViolation,
)


@dataclass(frozen=True)
class ScanResult:
    verdicts: tuple[ScanVerdict, ...]
    findings: tuple[PolicyFinding, ...] = ()
    scanner_version: str = ""
    # The policy the findings were judged by: a retry under other rules scans again.
    rules_digest: str = ""
    # Code that would run with trust_remote_code (imports.scanners.remote_code), if any.
    remote_code: RemoteCode | None = None
    # What every scanner found, file by file (the pickle scanners' own verdicts included).
    scanner_findings: tuple[Finding, ...] = ()
    # (path, scanner, verdict) of each file a format scanner read: "safe" or the worst finding.
    formats: tuple[tuple[str, str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["remote_code"] = self.remote_code.to_json() if self.remote_code else None
        data["scanner_findings"] = self.findings_json()
        data["formats"] = self.formats_json()
        return data

    def formats_json(self) -> list[dict[str, str]]:
        return [
            {"path": path, "scanner": scanner, "verdict": verdict}
            for path, scanner, verdict in self.formats
        ]

    def findings_json(self) -> list[dict[str, str]]:
        return [item.to_json() for item in self.scanner_findings]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScanResult:
        verdicts = []
        for item in data["verdicts"]:
            values = dict(item)
            values["globals"] = tuple(values.get("globals") or ())
            values["opinions"] = tuple(tuple(item) for item in values.get("opinions") or ())
            verdicts.append(ScanVerdict(**values))
        return cls(
            verdicts=tuple(verdicts),
            findings=tuple(PolicyFinding.from_json(item) for item in data.get("findings", ())),
            scanner_version=str(data.get("scanner_version", "")),
            rules_digest=str(data.get("rules_digest", "")),
            scanner_findings=tuple(
                Finding.from_json(item) for item in data.get("scanner_findings", ())
            )
            # (a scan stored by the code before findings: its (rule, path, why) triples)
            or tuple(
                Finding(str(path), str(rule), WARNING, str(why), "")
                for rule, path, why in data.get("problems", ())
            ),
            formats=tuple(
                (str(path), str(scanner), str(verdict))
                for path, scanner, verdict in data.get("formats", ())
            ),
            remote_code=RemoteCode.from_json(data["remote_code"])
            if data.get("remote_code")
            else None,
        )

    def verdicts_json(self) -> list[dict[str, Any]]:
        return [_verdict_json(item) for item in self.verdicts]

    def version_rows(self) -> list[dict[str, Any]]:
        """What the version's page lists: each pickle verdict, then each finding of the format
        scanners (the pickle scanners' own verdicts are in their file's row)."""
        rows = self.verdicts_json()
        rows += [
            {"path": path, "scanner": scanner, "verdict": "safe", "globals": [], "detail": ""}
            for path, scanner, verdict in self.formats
            if verdict == "safe"
        ]
        for item in self.scanner_findings:
            if item.rule != RULE_DANGEROUS_PICKLE:
                rows.append(
                    {"path": item.path, "scanner": item.scanner, "verdict": item.severity,
                     "rule": item.rule, "detail": item.evidence, "globals": []}
                )  # fmt: skip
        return rows


def _verdict_json(item: ScanVerdict) -> dict[str, Any]:
    return {
        **asdict(item),
        "globals": list(item.globals),
        "opinions": [list(opinion) for opinion in item.opinions],
    }


def scan_pickles(download: Download, checked: CheckResult, rules: ImportRules) -> ScanResult:
    """Scan every file not proven safe and apply the policy (the stages one after the other;
    the one pass scans each file as it arrives, ``imports.pipeline.stream``).

    A safetensors file whose whole header checks out is proven safe and not scanned; every
    other file goes through picklescan, and those that are pickle content (by name, by their
    first bytes, or by the imports found in them) get a verdict: safe, suspicious (imports
    picklescan does not know) or dangerous (imports that run code, such as ``os.system``, or a
    stream that cannot be parsed to its end). The format scanners (``examine``) and the
    remote-code finder look at every file too. The policy decides what stops the import (see
    ``registry.policy``).
    """
    verdicts: list[ScanVerdict] = []
    found: list[Finding] = []
    for item in checked.files:
        verdict, findings = examine(download.paths[item.path], item.path, item.sha256)
        found += findings
        if verdict is not None:
            verdicts.append(verdict)
    remote = find_remote_code(download.paths, checked.sha256_by_path)
    return judge(verdicts, rules, remote, found, paths=[item.path for item in checked.files])


def examine(local: Path, name: str, sha256: str) -> tuple[ScanVerdict | None, list[Finding]]:
    """One file's pickle verdict (``scan_one``), and what the scanners found in it: the format
    scanners that read its kind of file (``imports.scanners.FILE_SCANNERS``: chat templates,
    Keras, ONNX...), a ``.safetensors`` its loader would refuse, and each pickle scanner that
    did not call it safe. A ``.safetensors`` file's header is read once: proven valid, it
    needs no pickle scan."""
    found = []
    malformed = safetensors_problem(local, name)
    if malformed is not None:
        scanner = own_scanner("safetensors")
        found.append(Finding(name, RULE_MALFORMED_WEIGHTS, WARNING, malformed, scanner))
    for reader in format_scanners(name):
        found += reader.scan(local, name)
    proven = malformed is None and name.lower().endswith(".safetensors")
    verdict = None if proven else scan_one(local, name, sha256)
    if verdict is not None:
        found += [
            Finding(name, RULE_DANGEROUS_PICKLE, said, detail, scanner)
            for scanner, said, detail in verdict.opinions
            if said != "safe"
        ]
    return verdict, found


def scan_one(local: Path, name: str, sha256: str) -> ScanVerdict | None:
    """The verdict on one file, or None when it is not pickle content (a safetensors file
    whose whole header checks out is proven safe without a scan; a ``.py`` file that parses as
    Python is source code, judged by the remote-code rule: ``import os`` at its top would read
    as a protocol-0 pickle's INST opcode)."""
    if local.stat().st_size == 0 or is_safetensors(local) or is_python_source(local, name):
        return None  # (an empty file holds no pickle)
    return scan_unproven(local, name, sha256=sha256)


def judge(
    verdicts: Sequence[ScanVerdict],
    rules: ImportRules,
    remote: RemoteCode | None = None,
    found: Sequence[Finding] = (),
    paths: Sequence[str] = (),
) -> ScanResult:
    """Apply the pickle policy to the verdicts, the remote-code rule to ``remote`` and the
    file rules to the scanners' findings: ``UnsafeModelFile`` when one refuses the import.
    ``paths``: every file of the selection, for the format scanners' verdict on each file they
    read."""
    ordered = sorted(verdicts, key=lambda item: item.path)
    problems = [(item.rule, item.path, item.evidence) for item in found if item.rule in FILE_RULES]
    try:
        findings = policy.check_pickle_verdicts([_verdict_json(item) for item in ordered], rules)
        if remote is not None:
            findings += policy.check_remote_code(remote.describe(), rules)
        findings += policy.check_file_problems(problems, rules)
    except PolicyViolation as error:
        raise UnsafeModelFile(error.rule, error.reason) from None
    return ScanResult(
        verdicts=tuple(ordered),
        findings=tuple(findings),
        scanner_version=scanners_version(),
        rules_digest=rules.digest(),
        remote_code=remote,
        scanner_findings=tuple(sorted([*found, *(remote.findings() if remote else ())])),
        formats=format_verdicts(paths, found),
    )


def format_verdicts(
    paths: Sequence[str], found: Sequence[Finding]
) -> tuple[tuple[str, str, str], ...]:
    """(path, scanner, verdict) for each file a format scanner read (they choose by name): the
    worst severity it found in the file, or "safe"."""
    worst: dict[tuple[str, str], str] = {}
    for item in found:
        key = (item.path, item.scanner)
        if key not in worst or SEVERITIES.index(item.severity) < SEVERITIES.index(worst[key]):
            worst[key] = item.severity
    rows = []
    for path in sorted(paths):
        readers = [own_scanner(reader.name) for reader in format_scanners(path)]
        if path.lower().endswith(".safetensors"):
            readers.insert(0, own_scanner("safetensors"))
        rows += [(path, scanner, worst.get((path, scanner), "safe")) for scanner in readers]
    return tuple(rows)
