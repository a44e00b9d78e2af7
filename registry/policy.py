"""Import policy rules and their checks: plain Python (no Django, no network).

Registry admins edit the rules (``registry.models.ImportPolicy``); the import pipeline checks
them before download (license, pickle file names, size, floating revision) and in the scan
stage (pickle content, code that would run with ``trust_remote_code``). A broken rule raises
``PolicyViolation`` naming the rule and the reason, unless a registry admin granted an override
of that rule for that import: then the check records an "overridden" finding instead. Warnings
are findings too, so the provenance record lists them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from aegis_catalog.lib.hub import COMMIT_RE

RULE_LICENSE = "license"
RULE_UNKNOWN_LICENSE = "unknown_license"
RULE_SAFETENSORS_ONLY = "safetensors_only"
RULE_DANGEROUS_PICKLE = "dangerous_pickle"
RULE_MAX_SIZE = "max_size"
RULE_REQUIRE_COMMIT = "require_commit"
RULE_REMOTE_CODE = "remote_code"
RULE_MALFORMED_WEIGHTS = "malformed_weights"
RULE_TEMPLATE_INJECTION = "template_injection"
RULE_KERAS_CODE = "keras_code"
RULE_ONNX_EXTERNAL_DATA = "onnx_external_data"
RULE_ONNX_CUSTOM_OPS = "onnx_custom_ops"

RULE_LABELS: dict[str, str] = {
    RULE_LICENSE: "license allow-list",
    RULE_UNKNOWN_LICENSE: "unknown or missing license",
    RULE_SAFETENSORS_ONLY: "safetensors only",
    RULE_DANGEROUS_PICKLE: "dangerous pickle",
    RULE_MAX_SIZE: "maximum import size",
    RULE_REQUIRE_COMMIT: "commit required",
    RULE_REMOTE_CODE: "remote code (trust_remote_code)",
    RULE_MALFORMED_WEIGHTS: "malformed weights file",
    RULE_TEMPLATE_INJECTION: "chat template reaching Python internals",
    RULE_KERAS_CODE: "Keras model carrying Python code",
    RULE_ONNX_EXTERNAL_DATA: "ONNX external data outside the model's directory",
    RULE_ONNX_CUSTOM_OPS: "ONNX custom operator domains",
}
# The rules about what is inside one file (format scanners), each answered block, warn or
# allow by the ImportRules field of the same name; the words that end a finding's reason.
FILE_RULES: dict[str, str] = {
    RULE_MALFORMED_WEIGHTS: "its loader would refuse it",
    RULE_TEMPLATE_INJECTION: "rendering it could run code",
    RULE_KERAS_CODE: "loading it could run code",
    RULE_ONNX_EXTERNAL_DATA: "loading it would read files outside the model's directory",
    RULE_ONNX_CUSTOM_OPS: "running it needs an operator library from elsewhere",
}

# The answers of the unknown-license rule, and of the rules about what the scan finds.
UNKNOWN_BLOCK, UNKNOWN_WARN, UNKNOWN_ALLOW = "block", "warn", "allow"
PICKLE_SAFETENSORS_ONLY = "safetensors_only"
PICKLE_BLOCK_DANGEROUS = "block_dangerous"
PICKLE_WARN_ONLY = "warn_only"


class PolicyViolation(Exception):
    """An import broke a policy rule; ``rule`` is one of the RULE_* ids."""

    def __init__(self, rule: str, reason: str) -> None:
        self.rule = rule
        self.reason = reason
        self.code = f"policy:{rule}"
        super().__init__(f"Blocked by policy: {rule} — {reason}")


@dataclass(frozen=True)
class ImportRules:
    """The policy in force for one import, plus the rules overridden for it."""

    allowed_licenses: tuple[str, ...] = ()  # SPDX ids; empty: every license is allowed
    unknown_license: str = UNKNOWN_WARN
    pickle_policy: str = PICKLE_BLOCK_DANGEROUS
    max_import_bytes: int = 200 * 1024**3
    require_commit: bool = False
    remote_code: str = UNKNOWN_WARN
    malformed_weights: str = UNKNOWN_WARN
    template_injection: str = UNKNOWN_BLOCK
    keras_code: str = UNKNOWN_BLOCK
    onnx_external_data: str = UNKNOWN_BLOCK
    onnx_custom_ops: str = UNKNOWN_WARN
    overridden: frozenset[str] = field(default_factory=frozenset)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["allowed_licenses"] = list(self.allowed_licenses)
        data["overridden"] = sorted(self.overridden)
        return data

    def digest(self) -> str:
        """sha256 of the rules (overrides included): what a recorded judgement was made under."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class PolicyFinding:
    """A rule that did not stop the import: it only warned, or an admin overrode it."""

    rule: str
    outcome: str  # "warned" or "overridden"
    reason: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PolicyFinding:
        return cls(rule=str(data["rule"]), outcome=str(data["outcome"]), reason=str(data["reason"]))


# --- licenses -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _spdx_licensing() -> Any:
    # license-expression ships the SPDX license list (with common aliases): no network needed.
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


def canonical_license(value: str) -> str | None:
    """The SPDX id of a single license key ("apache-2.0" -> "Apache-2.0"), or None if unknown."""
    text = (value or "").strip()
    if not text or len(text) > 100 or not re.fullmatch(r"[A-Za-z0-9.+-]+", text):
        return None
    info = _spdx_licensing().validate(text)
    if info.errors or not info.normalized_expression:
        return None
    normalized = str(info.normalized_expression)
    return normalized if " " not in normalized else None


def canonical_license_ids(values: Iterable[str]) -> list[str]:
    """SPDX ids, deduplicated in order; ValueError names every value that is not one."""
    ids: list[str] = []
    unknown: list[str] = []
    for value in values:
        canonical = canonical_license(value)
        if canonical is None:
            unknown.append(value)
        elif canonical not in ids:
            ids.append(canonical)
    if unknown:
        raise ValueError(
            "not SPDX license ids: " + ", ".join(repr(item) for item in unknown)
            + " (use ids such as MIT, Apache-2.0, BSD-3-Clause)"
        )  # fmt: skip
    return ids


def card_licenses(card_data: Mapping[str, Any], fallback: str = "") -> list[str]:
    """The license keys a model card names (``license:`` may be a string or a list)."""
    value = card_data.get("license")
    if isinstance(value, list | tuple):
        found = [str(item).strip() for item in value if item not in (None, "")]
    elif value not in (None, ""):
        found = [str(value).strip()]
    else:
        found = [item.strip() for item in fallback.split(",") if item.strip()]
    return [item for item in found if item]


def _apply(rule: str, reason: str, rules: ImportRules, findings: list[PolicyFinding]) -> None:
    if rule in rules.overridden:
        findings.append(PolicyFinding(rule, "overridden", reason))
        return
    raise PolicyViolation(rule, reason)


def _answer(
    rule: str, answer: str, reason: str, rules: ImportRules, findings: list[PolicyFinding]
) -> None:
    """A rule answered block (unless overridden for this import), warn or allow."""
    if answer == UNKNOWN_BLOCK:
        _apply(rule, reason, rules, findings)
    elif answer == UNKNOWN_WARN:
        findings.append(PolicyFinding(rule, "warned", reason))


def _unknown(reason: str, rules: ImportRules, findings: list[PolicyFinding]) -> None:
    _answer(RULE_UNKNOWN_LICENSE, rules.unknown_license, reason, rules, findings)


def check_licenses(
    licenses: Sequence[str], rules: ImportRules, findings: list[PolicyFinding]
) -> None:
    """Every license the card names must be on the allow-list (when there is one)."""
    if not licenses:
        _unknown("the model card names no license", rules, findings)
        return
    allowed = set(rules.allowed_licenses)
    for value in licenses:
        canonical = canonical_license(value)
        if canonical is None:
            _unknown(f"the card's license {value!r} is not an SPDX license id", rules, findings)
        elif allowed and canonical not in allowed:
            _apply(
                RULE_LICENSE,
                f"the card's license {canonical} is not on the allow-list "
                f"({', '.join(sorted(allowed))})",
                rules,
                findings,
            )


# --- before download ------------------------------------------------------------------------


def check_before_download(
    *,
    repo_id: str,
    revision: str,
    licenses: Sequence[str],
    file_sizes: Mapping[str, int],
    pickle_paths: Sequence[str],
    rules: ImportRules,
) -> list[PolicyFinding]:
    """Every rule that can be judged from the Hub's metadata; raises on the first broken one."""
    findings: list[PolicyFinding] = []
    if rules.require_commit and not COMMIT_RE.fullmatch(revision):
        _apply(
            RULE_REQUIRE_COMMIT,
            f"{revision!r} is a branch or tag that can move: give the 40-character commit",
            rules,
            findings,
        )
    check_licenses(licenses, rules, findings)
    total = sum(file_sizes.values())
    if total > rules.max_import_bytes:
        _apply(
            RULE_MAX_SIZE,
            f"{repo_id} selects {total:,} bytes, above the limit of {rules.max_import_bytes:,}; "
            "narrow it with include/exclude patterns",
            rules,
            findings,
        )
    if rules.pickle_policy == PICKLE_SAFETENSORS_ONLY and pickle_paths:
        shown = ", ".join(sorted(pickle_paths)[:5])
        _apply(
            RULE_SAFETENSORS_ONLY,
            f"pickle-based files are not allowed ({shown}); exclude them, for example with "
            "include patterns *.safetensors and *.json",
            rules,
            findings,
        )
    return findings


# --- pickle verdicts ------------------------------------------------------------------------


def check_pickle_verdicts(
    verdicts: Sequence[Mapping[str, Any]], rules: ImportRules
) -> list[PolicyFinding]:
    """Apply the pickle policy to the scan stage's verdicts (safe, suspicious, dangerous).

    ``safetensors_only`` refuses any pickle content; ``block_dangerous`` refuses dangerous files
    and warns about suspicious ones; ``warn_only`` warns about both.
    """
    findings: list[PolicyFinding] = []
    if rules.pickle_policy == PICKLE_SAFETENSORS_ONLY and verdicts:
        shown = "; ".join(f"{item['path']} ({item['verdict']})" for item in verdicts[:5])
        # Overridden, this rule lets pickle files in; the dangerous-pickle rule still applies.
        _apply(
            RULE_SAFETENSORS_ONLY,
            f"pickle content found by its bytes: {shown}",
            rules,
            findings,
        )
    dangerous = [item for item in verdicts if item["verdict"] == "dangerous"]
    if dangerous:
        reason = "; ".join(
            f"{item['path']} imports {', '.join(item.get('globals') or ['unknown code'])}"
            for item in dangerous
        ) + ": loading it could run code"  # fmt: skip
        if rules.pickle_policy == PICKLE_WARN_ONLY:
            findings.append(PolicyFinding(RULE_DANGEROUS_PICKLE, "warned", reason))
        else:
            _apply(RULE_DANGEROUS_PICKLE, reason, rules, findings)
    for item in verdicts:
        if item["verdict"] == "suspicious":
            findings.append(
                PolicyFinding(
                    RULE_DANGEROUS_PICKLE,
                    "warned",
                    f"{item['path']} is suspicious: {item.get('detail') or 'see the scan'}",
                )
            )
    return findings


def check_remote_code(description: str, rules: ImportRules) -> list[PolicyFinding]:
    """Apply the remote-code rule to what the scan found (``description``, in words): block
    (unless overridden for this import), warn, or allow."""
    reason = f"{description}: loading the model with trust_remote_code=True runs this code"
    findings: list[PolicyFinding] = []
    _answer(RULE_REMOTE_CODE, rules.remote_code, reason, rules, findings)
    return findings


def check_file_problems(
    problems: Sequence[tuple[str, str, str]], rules: ImportRules
) -> list[PolicyFinding]:
    """Apply each file rule (``FILE_RULES``) to the (rule, path, why) the format scanners
    found: block (unless overridden for this import), warn, or allow, rule by rule."""
    findings: list[PolicyFinding] = []
    for rule, describe in FILE_RULES.items():
        found = sorted((path, why) for kind, path, why in problems if kind == rule)
        if not found:
            continue
        reason = "; ".join(f"{path}: {why}" for path, why in found[:5]) + f": {describe}"
        _answer(rule, getattr(rules, rule), reason, rules, findings)
    return findings
