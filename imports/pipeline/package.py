"""Stage 7, package: the byte-reproducible tar.gz, streamed into the store when it can be,
and the import record (aegis.json) that is stored beside it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from aegis_catalog.lib.storage import ArtifactStore, StoredObject, Upload
from imports.packaging import (
    ARTIFACT_LAYOUT,
    MANIFEST_NAME,
    PackageResult,
    artifact_root_name,
    package_snapshot,
)
from imports.pipeline.base import Progress, _noop_progress, storage_prefix
from imports.pipeline.check import CheckResult
from imports.pipeline.download import Download
from imports.pipeline.resolve import Resolution
from imports.pipeline.scan import ScanResult

logger = logging.getLogger(__name__)

AEGIS_RECORD_FORMAT = "https://aegis-catalog.dev/import-record/v2"
# The file names beside the tarball: <artifact> + each suffix.
MODEL_SIGNATURE_SUFFIX = ".model.sig"
ATTESTATION_SUFFIX = ".sigstore.json"

artifact_basename = artifact_root_name


def import_record(
    resolution: Resolution,
    checked: CheckResult,
    *,
    model_name: str,
    version: str,
    endpoint: str,
    artifact: PackageResult | None = None,
    scan: ScanResult | None = None,
    policy_record: Mapping[str, Any] | None = None,
    imported: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """aegis.json: what was imported, stored beside the tarball (never inside it).

    ``artifact`` adds the tarball's name, sha256, size and layout and the names of the files
    beside it; ``scan`` the pickle scanner's verdict per file; ``policy_record`` the import
    policy in force, its warnings and any override (rule, reason, who granted it);
    ``imported`` who imported it and when (``by``, ``import_request``, ``started_on``)."""
    record: dict[str, Any] = {
        "format": AEGIS_RECORD_FORMAT,
        "layout": ARTIFACT_LAYOUT,
        "model": {"name": model_name, "version": version},
        "source": {
            "endpoint": endpoint,
            "repo_id": resolution.repo_id,
            "revision": resolution.revision,
            "commit": resolution.commit,
            "commit_time": resolution.commit_time,
            "include": list(resolution.include),
            "exclude": list(resolution.exclude),
        },
        "files": [
            {
                "path": item.path,
                "size": item.size,
                "sha256": item.sha256,
                "hub_digest": item.hub_digest,
                "hub_digest_kind": item.hub_digest_kind,
            }
            for item in checked.files
        ],
        "card": asdict(resolution.metadata),
        "card_data": resolution.card_data,
    }
    if artifact is not None:
        record["artifact"] = _artifact_block(model_name, version, artifact)
    if scan is not None:
        record["scan"] = {"scanner": scan.scanner_version, "files": scan.verdicts_json()}
        if scan.remote_code is not None:
            record["scan"]["remote_code"] = scan.remote_code.to_json()
        record["scan"]["findings"] = scan.findings_json()
        record["scan"]["formats"] = scan.formats_json()
    if policy_record is not None:
        record["policy"] = _policy_block(policy_record)
    if imported is not None:
        record["imported"] = dict(imported)
    return record


def _artifact_block(model_name: str, version: str, artifact: PackageResult) -> dict[str, Any]:
    """The tarball (name, sha256, size, layout, what it holds) and the files beside it."""
    root = artifact_basename(model_name, version)
    name = f"{root}.tar.gz"
    return {
        "name": name,
        "sha256": artifact.sha256,
        "size": artifact.size,
        "layout": ARTIFACT_LAYOUT,
        "root": root,
        "manifest": MANIFEST_NAME,
        "model_signature": name + MODEL_SIGNATURE_SUFFIX,
        "attestation": name + ATTESTATION_SUFFIX,
    }


def _policy_block(policy_record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "rules": dict(policy_record.get("rules") or {}),
        "findings": list(policy_record.get("findings") or []),
        "overrides": [
            {key: item[key] for key in ("rule", "reason", "granted_by") if key in item}
            for item in policy_record.get("overrides") or []
        ],
    }


def canonical_json(data: Any) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


@dataclass(frozen=True)
class Packaged:
    # The work copy of the tarball; None when it was only streamed into the store.
    path: Path | None
    sha256: str
    size: int
    record: bytes  # aegis.json, stored beside the tarball
    # The tarball as streamed into the store while it was packaged (None: not streamed).
    # Recorded with the stage's output, so a failed import's upload is found on retry.
    artifact: StoredObject | None = None
    name: str = ""  # the tarball's file name (from path when not given)
    # The artifact layout (imports.packaging); a stage output saved by older code says 1.
    layout: int = ARTIFACT_LAYOUT

    def __post_init__(self) -> None:
        if not self.name:
            if self.path is None:
                raise ValueError("a packaged tarball needs a name or a path")
            object.__setattr__(self, "name", self.path.name)
        if self.path is None and self.artifact is None:
            raise ValueError("a packaged tarball is in the work directory, the store, or both")

    @property
    def current_layout(self) -> bool:
        """Whether this tarball has today's layout (a retry repackages one that has not)."""
        return self.layout == ARTIFACT_LAYOUT

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": None if self.path is None else str(self.path),
            "sha256": self.sha256,
            "size": self.size,
            "record": self.record.decode(),
            "artifact": asdict(self.artifact) if self.artifact else None,
            "layout": self.layout,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Packaged:
        """Also reads what older code saved (layout 1: ``model.sig`` inside, no ``layout``)."""
        artifact = data.get("artifact")
        return cls(
            name=data.get("name", ""),
            path=None if data.get("path") is None else Path(data["path"]),
            sha256=data["sha256"],
            size=data["size"],
            record=data["record"].encode(),
            artifact=StoredObject(**artifact) if artifact else None,
            layout=int(data.get("layout", 1)),
        )


def package_artifact(
    resolution: Resolution,
    download: Download,
    checked: CheckResult,
    *,
    model_name: str,
    version: str,
    endpoint: str,
    out_dir: Path,
    progress: Progress = _noop_progress,
    scan: ScanResult | None = None,
    policy_record: Mapping[str, Any] | None = None,
    imported: Mapping[str, Any] | None = None,
    store: ArtifactStore | None = None,
    import_id: int | None = None,
    compress_workers: int | None = None,
) -> Packaged:
    """The byte-reproducible tar.gz (``model/`` and ``MANIFEST.sha256``: it depends only on the
    files, the name, the version and the commit time) and its aegis.json (``imported``: who and
    when), which is stored beside it, as the signatures are. With ``store`` (and
    ``import_id``) the tarball is streamed into the store as it is written (``_package_tarball``).
    """
    base = artifact_basename(model_name, version)
    name = f"{base}.tar.gz"
    package = partial(
        _package_files,
        root_name=base,
        model_files={item.path: download.paths[item.path] for item in checked.files},
        mtime=resolution.mtime,
        progress=progress,
        expected_sha256=checked.sha256_by_path,
        compress_workers=compress_workers,
    )
    key = f"{storage_prefix(model_name, version, import_id)}/{name}" if import_id else ""
    result, artifact = _package_tarball(
        package,
        out_dir / name,
        store if key else None,
        key,
        input_bytes=sum(item.size for item in checked.files),
    )
    record = import_record(
        resolution,
        checked,
        model_name=model_name,
        version=version,
        endpoint=endpoint,
        artifact=result,
        scan=scan,
        policy_record=policy_record,
        imported=imported,
    )
    return Packaged(
        path=result.path,
        sha256=result.sha256,
        size=result.size,
        record=canonical_json(record),
        artifact=artifact,
        name=name,
    )


def _package_tarball(
    package: Callable[[Path | None, _StreamedUpload | None], PackageResult],
    out_path: Path,
    store: ArtifactStore | None,
    key: str,
    *,
    input_bytes: int,
) -> tuple[PackageResult, StoredObject | None]:
    """Streamed into ``store`` at ``key`` as it is written (an S3 multipart upload, parts in
    parallel) when there is a store: nothing is written to the work directory, the store stage
    has nothing left to upload, and no byte is written twice. The stream is a shortcut, not a
    requirement: if the store fails during it, the partial upload is discarded and the tarball
    is packaged again into ``out_path`` (it is byte-reproducible), for the store stage to
    upload with its retries and its error messages, as it would have without streaming."""
    streamed = None
    if store is not None:
        streamed = _package_streamed(package, store, key, expected_size=input_bytes)
    if streamed is not None:
        return streamed
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return package(out_path, None), None


def _package_files(
    out_path: Path | None,
    upload: _StreamedUpload | None,
    *,
    root_name: str,
    model_files: dict[str, Path],
    mtime: int,
    progress: Progress,
    expected_sha256: Mapping[str, str],
    compress_workers: int | None,
) -> PackageResult:
    """The tarball into ``out_path``, or into ``upload`` as it is written."""
    return package_snapshot(
        out_path,
        root_name=root_name,
        model_files=model_files,
        mtime=mtime,
        progress=progress,
        expected_sha256=expected_sha256,
        upload=upload,
        compress_workers=compress_workers,
    )


def _package_streamed(
    package: Callable[[Path | None, _StreamedUpload | None], PackageResult],
    store: ArtifactStore,
    key: str,
    *,
    expected_size: int,
) -> tuple[PackageResult, StoredObject] | None:
    """Package straight into the store; None when the store failed (the upload is aborted)."""
    upload = _StreamedUpload.open(store, key, expected_size=expected_size)
    if not upload.active:
        return None
    try:
        result = package(None, upload)
        artifact = upload.complete(sha256=result.sha256)
    except _StreamFailed:
        artifact = None
    except BaseException:
        upload.abort()
        raise
    if artifact is None:
        logger.warning(
            "packaging %s again into the work directory, to upload after", key.rsplit("/", 1)[-1]
        )
        return None
    return result, artifact


class _StreamFailed(Exception):
    """The store failed while the tarball streamed into it (logged; the upload is aborted)."""


class _StreamedUpload:
    """A store upload fed by the packager. A store failure aborts the upload and stops the
    packaging with ``_StreamFailed``, so it can be done again into a file instead."""

    def __init__(self, upload: Upload | None) -> None:
        self._upload = upload

    @property
    def active(self) -> bool:
        return self._upload is not None

    @classmethod
    def open(cls, store: ArtifactStore, key: str, *, expected_size: int) -> _StreamedUpload:
        try:
            upload = store.open_upload(
                key, content_type="application/gzip", expected_size=expected_size
            )
        except Exception:
            logger.warning(
                "cannot stream %s into the store; it is uploaded after", key, exc_info=True
            )
            upload = None
        return cls(upload)

    def write(self, data: bytes | memoryview) -> None:
        if self._upload is None:
            raise _StreamFailed("the upload was aborted")
        try:
            self._upload.write(data)
        except Exception as error:
            logger.warning(
                "streaming %s failed; it is uploaded after", self._upload.url, exc_info=True
            )
            self.abort()
            raise _StreamFailed(str(error)) from error

    def complete(self, *, sha256: str) -> StoredObject | None:
        if self._upload is None:
            return None
        try:
            return self._upload.complete(sha256=sha256)
        except Exception:
            logger.warning(
                "streaming %s failed; it is uploaded after", self._upload.url, exc_info=True
            )
            self.abort()
            return None

    def abort(self) -> None:
        if self._upload is not None:
            self._upload.abort()
            self._upload = None
