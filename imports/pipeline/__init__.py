"""The import pipeline: one module per stage, explicit inputs, a frozen dataclass out.

No Django request, RQ or database code lives here (``imports.runner`` drives the stages and
records their outcomes), so each stage runs the same from a job, the CLI or a test. The
stages, in order: resolve, preflight, download, check, scan, sign (model.sig), package,
attest, store; registering is ``registry.actions.register``. By default download, check,
scan and package are one pass (``stream``), which also uploads the tarball. The tarball holds
only the model files and their manifest; model.sig, the attestation and aegis.json are stored
beside it.
"""

from __future__ import annotations

from imports.pipeline.attest import RunDetails, attest_artifact
from imports.pipeline.base import (
    ContentRejected,
    ContentYanked,
    DigestMismatch,
    PipelineError,
    PreflightError,
    Progress,
    Signer,
    StoreError,
    UnsafeModelFile,
    storage_prefix,
)
from imports.pipeline.check import (
    CHECK_WORKERS,
    HASH_CHUNK,
    CheckedFile,
    CheckResult,
    check_digests,
)
from imports.pipeline.download import Download, download_files
from imports.pipeline.package import (
    AEGIS_RECORD_FORMAT,
    ATTESTATION_SUFFIX,
    MODEL_SIGNATURE_SUFFIX,
    Packaged,
    artifact_basename,
    canonical_json,
    import_record,
    package_artifact,
)
from imports.pipeline.preflight import DISK_MARGIN_RATIO, Preflight, disk_space_needed, preflight
from imports.pipeline.resolve import Resolution, card_metadata, resolve_revision
from imports.pipeline.scan import ScanResult, ScanVerdict, scan_pickles
from imports.pipeline.sign import sign_model_files
from imports.pipeline.store import Stored, store_artifact, stored_still_present, streamed_artifact
from imports.pipeline.stream import Streamed, package_result, stream_import

__all__ = [
    "AEGIS_RECORD_FORMAT",
    "ATTESTATION_SUFFIX",
    "CHECK_WORKERS",
    "DISK_MARGIN_RATIO",
    "HASH_CHUNK",
    "MODEL_SIGNATURE_SUFFIX",
    "CheckResult",
    "CheckedFile",
    "ContentRejected",
    "ContentYanked",
    "DigestMismatch",
    "Download",
    "Packaged",
    "PipelineError",
    "Preflight",
    "PreflightError",
    "Progress",
    "Resolution",
    "RunDetails",
    "ScanResult",
    "ScanVerdict",
    "Signer",
    "StoreError",
    "Stored",
    "Streamed",
    "UnsafeModelFile",
    "artifact_basename",
    "attest_artifact",
    "canonical_json",
    "card_metadata",
    "check_digests",
    "disk_space_needed",
    "download_files",
    "import_record",
    "package_artifact",
    "package_result",
    "preflight",
    "resolve_revision",
    "scan_pickles",
    "sign_model_files",
    "storage_prefix",
    "store_artifact",
    "stored_still_present",
    "stream_import",
    "streamed_artifact",
]
