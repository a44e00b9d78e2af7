"""The in-toto SLSA v1 provenance statement of an import: its subject is the artifact tarball,
its build definition the Hub repository at the pinned commit with every file's digest and the
import policy in force, its run details who ran it, when, and each scanned file's verdict.
Plain Python (no Django, no network); ``registry.attestation`` signs and verifies it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aegis_catalog.lib.hub import COMMIT_RE
from registry.attestation import (
    HF_IMPORT_BUILD_TYPE,
    IN_TOTO_STATEMENT_TYPE,
    SLSA_PROVENANCE_PREDICATE_TYPE,
    InvalidStatementInput,
    check_relative_path,
    check_sha256,
)

# The byproduct naming the import record (aegis.json) stored beside the tarball.
RECORD_BYPRODUCT = "aegis.json"


def _rfc3339(value: datetime, what: str) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidStatementInput(f"{what} must be a timezone-aware datetime")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def provenance_statement(
    *,
    artifact_name: str,
    artifact_sha256: str,
    repo_id: str,
    commit: str,
    hub_endpoint: str,
    revision_requested: str,
    include: Sequence[str],
    exclude: Sequence[str],
    files: Sequence[Mapping[str, Any]],
    builder_id: str,
    invocation_id: str,
    started_on: datetime,
    finished_on: datetime,
    actor: str,
    policy: Mapping[str, Any] | None = None,
    scan: Mapping[str, Any] | None = None,
    record_sha256: str | None = None,
) -> dict[str, Any]:
    """Build the in-toto SLSA v1 provenance statement for one imported artifact.

    ``policy`` (the import policy in force, its findings and overrides) is recorded under
    ``buildDefinition.internalParameters.policy``. ``scan`` (``{"scanner", "files": [...],
    "findings": [...]}``) becomes one ``runDetails.byproducts`` entry per scanned file (its name,
    sha256 and an annotation with the scanner, the verdict and the offending imports) and one
    per scanner finding (``_scan_byproducts``).

    ``files`` are dicts with ``path`` and ``sha256`` (``size`` optional); each
    becomes a resolved dependency pointing at the Hub's resolve URL at the
    pinned commit, after the repository itself (``digest.gitCommit``).
    """
    _check_inputs(artifact_sha256, commit, artifact_name, repo_id, builder_id, invocation_id)
    endpoint = hub_endpoint.rstrip("/")
    internal: dict[str, Any] = {"actor": actor}
    if policy is not None:
        internal["policy"] = json.loads(json.dumps(dict(policy), default=str))
    return {
        "_type": IN_TOTO_STATEMENT_TYPE,
        "subject": [{"name": artifact_name, "digest": {"sha256": artifact_sha256}}],
        "predicateType": SLSA_PROVENANCE_PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": HF_IMPORT_BUILD_TYPE,
                "externalParameters": {
                    "hubEndpoint": endpoint,
                    "repository": repo_id,
                    "revision": revision_requested,
                    "include": list(include),
                    "exclude": list(exclude),
                },
                "internalParameters": internal,
                "resolvedDependencies": _resolved_dependencies(endpoint, repo_id, commit, files),
            },
            "runDetails": _run_details(
                builder_id, invocation_id, started_on, finished_on, scan, record_sha256
            ),
        },
    }


def _check_inputs(artifact_sha256: str, commit: str, *required: str) -> None:
    check_sha256(artifact_sha256, "artifact sha256")
    if not COMMIT_RE.fullmatch(commit):
        raise InvalidStatementInput(f"commit must be 40 lowercase hex characters, got {commit!r}")
    if not all(required):
        raise InvalidStatementInput(
            "artifact_name, repo_id, builder_id and invocation_id must not be empty"
        )


def _run_details(
    builder_id: str,
    invocation_id: str,
    started_on: datetime,
    finished_on: datetime,
    scan: Mapping[str, Any] | None,
    record_sha256: str | None = None,
) -> dict[str, Any]:
    details: dict[str, Any] = {
        "builder": {"id": builder_id},
        "metadata": {
            "invocationId": invocation_id,
            "startedOn": _rfc3339(started_on, "started_on"),
            "finishedOn": _rfc3339(finished_on, "finished_on"),
        },
    }
    byproducts = _scan_byproducts(scan) if scan is not None else []
    if record_sha256 is not None:
        byproducts.append(
            {
                "name": RECORD_BYPRODUCT,
                "digest": {"sha256": check_sha256(record_sha256, "aegis.json")},
                "annotations": {"role": "the import record stored beside the tarball"},
            }
        )
    if scan is not None or byproducts:
        details["byproducts"] = byproducts
    return details


def record_digest(statement: Mapping[str, Any]) -> str | None:
    """The sha256 of aegis.json the statement signs, or None (statements made before it did)."""
    run_details = statement.get("predicate", {}).get("runDetails", {})
    for byproduct in run_details.get("byproducts") or []:
        if isinstance(byproduct, Mapping) and byproduct.get("name") == RECORD_BYPRODUCT:
            digest = byproduct.get("digest", {}).get("sha256")
            return digest if isinstance(digest, str) else None
    return None


def _resolved_dependencies(
    endpoint: str, repo_id: str, commit: str, files: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The repository at its commit, then each file at the Hub's resolve URL, by path."""
    dependencies: list[dict[str, Any]] = [
        {"uri": f"{endpoint}/{repo_id}", "name": repo_id, "digest": {"gitCommit": commit}}
    ]
    seen: set[str] = set()
    for entry in sorted(files, key=lambda item: str(item.get("path", ""))):
        path = entry.get("path")
        if not isinstance(path, str):
            raise InvalidStatementInput(f"file entry {entry!r} has no path")
        check_relative_path(path)
        if path in seen:
            raise InvalidStatementInput(f"file path {path!r} is listed twice")
        seen.add(path)
        dependency: dict[str, Any] = {
            "uri": f"{endpoint}/{repo_id}/resolve/{commit}/{path}",
            "name": path,
            "digest": {"sha256": check_sha256(entry.get("sha256", ""), f"sha256 of {path!r}")},
        }
        if entry.get("size") is not None:
            dependency["annotations"] = {"size": int(entry["size"])}
        dependencies.append(dependency)
    return dependencies


def _scan_byproducts(scan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One byproduct per scanned file (its name, sha256, the scanner and its verdict), then one
    per scanner finding (the file, its sha256, the scanner and version, rule, severity and
    evidence)."""
    byproducts = []
    for entry in scan.get("files") or []:
        byproduct: dict[str, Any] = {
            "name": f"pickle-scan/{entry['path']}",
            "annotations": {
                "scanner": str(scan.get("scanner") or entry.get("scanner", "")),
                "verdict": entry["verdict"],
                "globals": list(entry.get("globals") or []),
                "detail": entry.get("detail", ""),
                "detectedBy": entry.get("detected_by", ""),
            },
        }
        if entry.get("sha256"):
            byproduct["digest"] = {"sha256": check_sha256(entry["sha256"], "scanned file")}
        byproducts.append(byproduct)
    for index, finding in enumerate(scan.get("findings") or []):
        byproduct = {
            "name": f"scan-finding/{index}/{finding['path']}",
            "annotations": {
                key: str(finding.get(key, ""))
                for key in ("scanner", "rule", "severity", "evidence")
            },
        }
        if finding.get("sha256"):
            byproduct["digest"] = {"sha256": check_sha256(finding["sha256"], "scanned file")}
        byproducts.append(byproduct)
    return byproducts
