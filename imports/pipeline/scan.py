"""Stage 5, scan: pickle-based files get a verdict, and the pickle policy is applied."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imports.pipeline.base import UnsafeModelFile
from imports.pipeline.check import CheckResult
from imports.pipeline.download import Download
from imports.scanners.keras import keras_problem
from imports.scanners.pickles import SCANNER, ScanVerdict, scan_unproven
from imports.scanners.remote_code import RemoteCode, find_remote_code, is_python_source
from imports.scanners.safetensors import is_safetensors, safetensors_problem
from imports.scanners.templates import chat_template_problem
from registry import policy
from registry.policy import (
    RULE_KERAS_CODE,
    RULE_MALFORMED_WEIGHTS,
    RULE_TEMPLATE_INJECTION,
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
    # (rule, path, why) of what the format scanners found (registry.policy.FILE_RULES).
    problems: tuple[tuple[str, str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["remote_code"] = self.remote_code.to_json() if self.remote_code else None
        return data

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
            problems=tuple(
                (str(rule), str(path), str(why)) for rule, path, why in data.get("problems", ())
            ),
            remote_code=RemoteCode.from_json(data["remote_code"])
            if data.get("remote_code")
            else None,
        )

    def verdicts_json(self) -> list[dict[str, Any]]:
        return [{**asdict(item), "globals": list(item.globals)} for item in self.verdicts]


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
    problems: list[tuple[str, str, str]] = []
    for item in checked.files:
        verdict, found = examine(download.paths[item.path], item.path, item.sha256)
        problems += found
        if verdict is not None:
            verdicts.append(verdict)
    remote = find_remote_code(download.paths, checked.sha256_by_path)
    return judge(verdicts, rules, remote, problems)


def examine(
    local: Path, name: str, sha256: str
) -> tuple[ScanVerdict | None, list[tuple[str, str, str]]]:
    """One file's pickle verdict (``scan_one``), and the (rule, path, why) of what the format
    scanners find in it: a ``.safetensors`` its loader would refuse, a chat template (GGUF,
    tokenizer_config.json) reaching Python, a ``.keras`` model carrying Python code. A
    ``.safetensors`` file's header is read once: proven valid, it needs no pickle scan."""
    found = []
    malformed = safetensors_problem(local, name)
    if malformed is not None:
        found.append((RULE_MALFORMED_WEIGHTS, name, malformed))
    if (why := chat_template_problem(local, name)) is not None:
        found.append((RULE_TEMPLATE_INJECTION, name, why))
    if (why := keras_problem(local, name)) is not None:
        found.append((RULE_KERAS_CODE, name, why))
    proven = malformed is None and name.lower().endswith(".safetensors")
    return (None if proven else scan_one(local, name, sha256)), found


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
    problems: Sequence[tuple[str, str, str]] = (),
) -> ScanResult:
    """Apply the pickle policy to the verdicts, the remote-code rule to ``remote`` and the
    file rules to ``problems``: ``UnsafeModelFile`` when one refuses the import."""
    from importlib.metadata import version as package_version

    ordered = sorted(verdicts, key=lambda item: item.path)
    verdict_dicts = [{**asdict(item), "globals": list(item.globals)} for item in ordered]
    try:
        findings = policy.check_pickle_verdicts(verdict_dicts, rules)
        if remote is not None:
            findings += policy.check_remote_code(remote.describe(), rules)
        findings += policy.check_file_problems(problems, rules)
    except PolicyViolation as error:
        raise UnsafeModelFile(error.rule, error.reason) from None
    return ScanResult(
        verdicts=tuple(ordered),
        findings=tuple(findings),
        scanner_version=f"{SCANNER} {package_version('picklescan')}",
        rules_digest=rules.digest(),
        remote_code=remote,
        problems=tuple(sorted(problems)),
    )
