"""Stages 3 to 7 in one pass (the default): download, check, scan and package at once, the
tarball going up to the store as it is written.

Files are fetched in the tarball's order (``aegis_catalog.lib.hub.feed``) and the packager
reads each while it arrives: every byte is hashed once, as it is copied into the tar stream, and
the compressed bytes go up as multipart parts. A safetensors file whose header, in its first
chunk, proves it (``imports.scanners.safetensors.proven_by_head``: what the scan would prove
from the work copy) is kept in memory until the packager has copied it, never written to the
work directory: no scanner reads it afterwards. Every other file is written to the work
directory, for its scanners and for a retry. When a file's
last byte is in, its sha256 (or git blob id) is compared with the Hub's (a mismatch aborts the
upload then and there, naming the file) and pickle content is scanned, on a thread of its own,
from the work copy. The upload is completed only once every verdict is in and the policy has
judged them: a refusal aborts it too. So the store holds the tarball only when everything up
to here succeeded, and the digests signed into model.sig are the ones computed in this pass.

A retry after a failure here fetches the files kept in memory and those that had not arrived
whole, reads the others from the work directory, and packages and uploads the tarball again
from its first byte (the upload of the failed attempt is discarded first, even when its process
died).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aegis_catalog.lib.hub import HubClient
from aegis_catalog.lib.hub.feed import FeedFile, FeedReader, SnapshotFeed
from aegis_catalog.lib.storage import ArtifactStore, StorageError, StoredObject, Upload
from imports.packaging import (
    ARTIFACT_LAYOUT,
    PackagedFile,
    PackageResult,
    artifact_root_name,
    package_snapshot,
)
from imports.pipeline.base import DigestMismatch, Progress, UnsafeModelFile, _noop_progress
from imports.pipeline.check import CheckedFile, CheckResult, compare_with_hub
from imports.pipeline.resolve import Resolution
from imports.pipeline.scan import ScanResult, examine, judge
from imports.scanners import format_scanners
from imports.scanners.base import Finding
from imports.scanners.pickles import ScanVerdict
from imports.scanners.remote_code import find_remote_code
from imports.scanners.safetensors import proven_by_head
from registry.policy import ImportRules

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Streamed:
    """What the pass produced: the checked digests, the scan, and the stored tarball."""

    checked: CheckResult
    scan: ScanResult
    artifact: StoredObject
    name: str
    layout: int = ARTIFACT_LAYOUT

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked.to_json(),
            "scan": self.scan.to_json(),
            "artifact": asdict(self.artifact),
            "name": self.name,
            "layout": self.layout,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Streamed:
        return cls(
            checked=CheckResult.from_json(data["checked"]),
            scan=ScanResult.from_json(data["scan"]),
            artifact=StoredObject(**data["artifact"]),
            name=str(data["name"]),
            layout=int(data["layout"]),
        )


class ProvenWeightsInMemory:
    """What the feed keeps in memory: safetensors files (that no format scanner reads) whose
    header, in their first chunk, proves them safetensors. The scan would prove the same from
    a work copy (the header checked against the file's size) and read nothing more, so they
    need none; any other file is written to the work directory."""

    def candidate(self, name: str, size: int) -> bool:
        return name.lower().endswith(".safetensors") and not format_scanners(name)

    def keep(self, name: str, size: int, head: bytes) -> bool:
        return proven_by_head(size, head)


class _BlobHashingSource:
    """A feed file as the packager reads it, also hashed as a git blob (for the files the Hub
    does not keep in LFS, whose published digest is the blob id)."""

    def __init__(self, file: FeedFile, blob: Any) -> None:
        self._file = file
        self.blob = blob

    @property
    def size(self) -> int:
        return self._file.size

    def open(self) -> _BlobHashingReader:
        return _BlobHashingReader(self._file.open(), self.blob)


class _BlobHashingReader:
    def __init__(self, reader: FeedReader, blob: Any) -> None:
        self._reader = reader
        self._blob = blob

    def readinto(self, buffer: memoryview) -> int:
        count = self._reader.readinto(buffer)
        self._blob.update(buffer[:count])
        return count

    def read(self, size: int = -1) -> bytes:
        return self._reader.read(size)

    def __enter__(self) -> _BlobHashingReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._reader.close()


class _Checker:
    """Called by the packager as each file ends: compare with the Hub, then scan it."""

    def __init__(self, resolution: Resolution, feed: SnapshotFeed, rules: ImportRules) -> None:
        self._expected = {item.path: item for item in resolution.files}
        self._feed = feed
        self._rules = rules
        self.blobs: dict[str, Any] = {}
        self.checked: list[CheckedFile] = []
        self._scans: list[Future[tuple[ScanVerdict | None, list[Finding]]]] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aegis-scan")

    def sources(self) -> dict[str, Any]:
        """The packager's model files: feed files (git files also hashed as blobs)."""
        sources: dict[str, Any] = {}
        for path, expected in self._expected.items():
            file = self._feed.files[path]
            if expected.lfs_sha256:
                sources[path] = file
            else:
                blob = hashlib.sha1(b"blob %d\0" % file.size, usedforsecurity=False)
                self.blobs[path] = blob
                sources[path] = _BlobHashingSource(file, blob)
        return sources

    def __call__(self, packaged: PackagedFile) -> None:
        self._raise_if_scan_failed()
        expected = self._expected[packaged.path]
        file = self._feed.files[packaged.path]
        local = file.path
        try:
            blob = self.blobs.get(packaged.path)
            self.checked.append(
                compare_with_hub(
                    expected,
                    size=packaged.size,
                    sha256=packaged.sha256,
                    blob_id=blob.hexdigest() if blob is not None else "",
                )
            )
        except DigestMismatch:
            local.unlink(missing_ok=True)  # a retry fetches it again
            raise
        if file.in_memory:
            return  # proven safetensors by its header: no verdict, nothing found
        self._scans.append(self._pool.submit(self._scan, local, packaged))

    def _scan(
        self, local: Path, packaged: PackagedFile
    ) -> tuple[ScanVerdict | None, list[Finding]]:
        """Scan one file (``examine``: pickle content, the format scanners) and judge it at
        once: what the policy refuses stops the download and the packager (at their next read)
        instead of waiting for the end. (The rules refuse a set of files when they
        refuse one of them, so judging each file alone refuses what judging them all would.)"""
        verdict, found = examine(local, packaged.path, packaged.sha256)
        if verdict is not None or found:
            try:
                judge([verdict] if verdict else [], self._rules, found=found)
            except UnsafeModelFile as refused:
                self._feed.fail(refused)
                raise
        return verdict, found

    def _raise_if_scan_failed(self) -> None:
        for future in self._scans:
            if future.done() and future.exception() is not None:
                future.result()

    def verdicts(self) -> tuple[list[ScanVerdict], list[Finding]]:
        """Every pickle verdict, and every finding of the scanners (waits for the scans still
        running)."""
        verdicts: list[ScanVerdict] = []
        found: list[Finding] = []
        for future in self._scans:
            verdict, findings = future.result()
            if verdict is not None:
                verdicts.append(verdict)
            found += findings
        return verdicts, found

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


def stream_import(
    hub: HubClient,
    resolution: Resolution,
    *,
    rules: ImportRules,
    store: ArtifactStore,
    key: str,
    model_name: str,
    version: str,
    snapshot_dir: Path,
    progress: Progress = _noop_progress,
    compress_workers: int | None = None,
) -> Streamed:
    """Download, check, scan and package ``resolution``'s files in one pass, the tarball
    streamed into ``store`` at ``key``. Any failure (a Hub error, a digest mismatch, a verdict
    the policy refuses, the store, a cancellation) aborts the upload before it is raised."""
    try:
        discarded = store.discard_unfinished_uploads(key)
    except StorageError:
        # Not allowed to list uploads (s3:ListBucketMultipartUploads), say: the parts of a
        # dead attempt stay until the bucket's lifecycle rule removes them.
        logger.warning("could not look for unfinished uploads of %s", key, exc_info=True)
        discarded = 0
    if discarded:
        logger.info(
            "discarded %d unfinished upload(s) of %s from an earlier attempt", discarded, key
        )
    root = artifact_root_name(model_name, version)
    order = sorted(resolution.files, key=lambda item: item.path.encode("utf-8"))
    feed = hub.feed(
        resolution.repo_id,
        resolution.commit,
        snapshot_dir,
        [(item.path, item.size) for item in order],
        in_memory=ProvenWeightsInMemory(),
    )
    upload: Upload | None = None
    checker = _Checker(resolution, feed, rules)
    try:
        with feed:
            upload = store.open_upload(
                key, content_type="application/gzip", expected_size=resolution.total_bytes
            )
            result = package_snapshot(
                None,
                root_name=root,
                model_files=checker.sources(),
                mtime=resolution.mtime,
                progress=progress,
                upload=upload,
                compress_workers=compress_workers,
                on_file=checker,
            )
        local = {path: file.path for path, file in feed.files.items() if not file.in_memory}
        sha256 = {item.path: item.sha256 for item in checker.checked}
        verdicts, found = checker.verdicts()
        scan = judge(verdicts, rules, find_remote_code(local, sha256), found, paths=list(sha256))
        artifact = upload.complete(sha256=result.sha256)
    except BaseException:
        if upload is not None:
            upload.abort()
        raise
    finally:
        checker.close()
    return Streamed(
        checked=CheckResult(files=tuple(sorted(checker.checked, key=lambda item: item.path))),
        scan=scan,
        artifact=artifact,
        name=f"{root}.tar.gz",
    )


def package_result(streamed: Streamed) -> PackageResult:
    """The stored tarball as the import record describes it."""
    return PackageResult(
        path=None, sha256=streamed.artifact.sha256 or "", size=streamed.artifact.size, files=()
    )
