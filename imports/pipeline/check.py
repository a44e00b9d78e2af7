"""Stage 4, check: every downloaded file's digest against the Hub's."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aegis_catalog.lib.hub import HubFile
from imports.pipeline.base import DigestMismatch, Progress, _noop_progress
from imports.pipeline.download import Download
from imports.pipeline.resolve import Resolution


@dataclass(frozen=True)
class CheckedFile:
    path: str
    size: int
    sha256: str
    hub_digest: str
    hub_digest_kind: str  # "lfs-sha256" or "git-blob-sha1"


@dataclass(frozen=True)
class CheckResult:
    files: tuple[CheckedFile, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckResult:
        return cls(files=tuple(CheckedFile(**item) for item in data["files"]))

    @property
    def sha256_by_path(self) -> dict[str, str]:
        return {item.path: item.sha256 for item in self.files}


HASH_CHUNK = 4 * 1024 * 1024
CHECK_WORKERS = 2


def _hash_file(
    path: Path, progress: Callable[[int], None], *, blob_id: bool = True
) -> tuple[str, str, int]:
    """sha256 (and, when asked, the git blob sha1) of a file in one read."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False) if blob_id else None
    read = 0
    with path.open("rb", buffering=0) as handle:
        while chunk := handle.read(HASH_CHUNK):
            sha256.update(chunk)
            if blob is not None:
                blob.update(chunk)
            read += len(chunk)
            progress(len(chunk))
    return sha256.hexdigest(), blob.hexdigest() if blob is not None else "", read


def _hash_files(
    files: Sequence[tuple[HubFile, Path]], progress: Progress, total: int
) -> dict[str, tuple[str, str, int]]:
    """Hash files on a few threads (hashlib releases the GIL); progress from this thread."""
    lock = threading.Lock()
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        with lock:
            done += count

    with ThreadPoolExecutor(max_workers=CHECK_WORKERS, thread_name_prefix="aegis-check") as pool:
        futures = {
            # The git blob id is only compared for files the Hub does not keep in LFS.
            expected.path: pool.submit(_hash_file, path, advance, blob_id=not expected.lfs_sha256)
            for expected, path in files
        }
        pending = set(futures.values())
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
                progress(done, total)
                for future in finished:
                    future.result()  # a file that could not be read stops the check
        finally:
            for future in pending:
                future.cancel()
        return {name: future.result() for name, future in futures.items()}


def check_digests(
    resolution: Resolution, download: Download, *, progress: Progress = _noop_progress
) -> CheckResult:
    """Compare every downloaded file with the Hub's digest: LFS sha256, or the git blob id."""
    checked: list[CheckedFile] = []
    located: list[tuple[HubFile, Path]] = []
    for expected in resolution.files:
        path = download.paths.get(expected.path)
        if path is None or not path.is_file():
            raise DigestMismatch(f"{expected.path} was not downloaded")
        located.append((expected, path))
    digests = _hash_files(located, progress, resolution.total_bytes)
    for expected in resolution.files:
        sha256, blob_id, size = digests[expected.path]
        checked.append(compare_with_hub(expected, size=size, sha256=sha256, blob_id=blob_id))
    return CheckResult(files=tuple(sorted(checked, key=lambda item: item.path)))


def compare_with_hub(expected: HubFile, *, size: int, sha256: str, blob_id: str) -> CheckedFile:
    """The file as checked against the Hub's listing: its size, then its LFS sha256 or (for a
    file the Hub keeps in git) its git blob id; ``DigestMismatch`` names the file otherwise."""
    if size != expected.size:
        raise DigestMismatch(
            f"{expected.path}: downloaded {size:,} bytes, the Hub lists {expected.size:,}"
        )
    if expected.lfs_sha256:
        if sha256 != expected.lfs_sha256:
            raise DigestMismatch(
                f"{expected.path}: sha256 {sha256} differs from the Hub's LFS sha256 "
                f"{expected.lfs_sha256}; the download was corrupted or tampered with"
            )
        return CheckedFile(expected.path, size, sha256, expected.lfs_sha256, "lfs-sha256")
    if blob_id != expected.blob_id:
        raise DigestMismatch(
            f"{expected.path}: git blob id {blob_id} differs from the Hub's "
            f"{expected.blob_id}; the download was corrupted or tampered with"
        )
    return CheckedFile(expected.path, size, sha256, expected.blob_id, "git-blob-sha1")
