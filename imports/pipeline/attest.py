"""Stage 8, attest: the signed in-toto SLSA provenance over the tarball digest."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from imports.pipeline.base import Signer
from imports.pipeline.check import CheckResult
from imports.pipeline.package import Packaged
from imports.pipeline.resolve import Resolution
from imports.pipeline.scan import ScanResult
from registry import attestation, slsa


@dataclass(frozen=True)
class RunDetails:
    builder_id: str
    invocation_id: str
    started_on: datetime
    finished_on: datetime
    actor: str
    endpoint: str


def attest_artifact(
    resolution: Resolution,
    checked: CheckResult,
    packaged: Packaged,
    run: RunDetails,
    signer: Signer,
    public_key_pem: str,
    scan: ScanResult | None = None,
    policy_record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The in-toto SLSA v1 provenance statement over the tarball digest, signed through Transit.

    The policy in force (with overrides: rule, reason, who, when) goes in
    ``buildDefinition.internalParameters.policy``; each scanned file's verdict is a
    ``runDetails.byproducts`` entry."""
    statement = slsa.provenance_statement(
        artifact_name=packaged.name,
        artifact_sha256=packaged.sha256,
        repo_id=resolution.repo_id,
        commit=resolution.commit,
        hub_endpoint=run.endpoint,
        revision_requested=resolution.revision,
        include=list(resolution.include),
        exclude=list(resolution.exclude),
        files=[asdict(item) for item in checked.files],
        builder_id=run.builder_id,
        invocation_id=run.invocation_id,
        started_on=run.started_on,
        finished_on=run.finished_on,
        actor=run.actor,
        policy=policy_record,
        scan=_scan_block(scan, checked) if scan is not None else None,
        record_sha256=hashlib.sha256(packaged.record).hexdigest(),
    )
    return attestation.sign_statement(statement, signer, public_key_pem)


def _scan_block(scan: ScanResult, checked: CheckResult) -> dict[str, Any]:
    """The verdicts and every scanner's findings (each with its file's sha256) for the
    statement's byproducts."""
    sha256 = checked.sha256_by_path
    findings = [{**item, "sha256": sha256.get(item["path"], "")} for item in scan.findings_json()]
    return {"scanner": scan.scanner_version, "files": scan.verdicts_json(), "findings": findings}
