"""Artifact storage: one interface over a local directory (`file://`) and S3 (`s3://`).

`LocalStore(root)` (`local.py`) writes atomically (temporary file in the same directory, fsync,
`os.replace`) and refuses keys that would leave its root. `S3Store(S3Config(...))` (`s3.py`)
uploads with boto3's managed transfer and checks every upload afterwards with a HEAD request.
What both share (errors, `StoredObject`, URL and key checks, the `ArtifactStore` and `Upload`
interfaces) is in `base.py`.

Keys are relative paths such as `bert-base/1/bert-base-1.tar.gz`. URLs look like
`file:///srv/artifacts/bert-base/1/bert-base-1.tar.gz` and `s3://bucket/prefix/bert-base/1/...`.

Errors are subclasses of `StorageError`. Their messages name the URL, bucket and endpoint but
never credentials. This package is plain Python (no Django) so it can be used and tested alone.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from aegis_catalog.lib.storage.base import (
    CHUNK_SIZE,
    DEFAULT_CONTENT_TYPE,
    MAX_KEY_LENGTH,
    SHA256_METADATA_KEY,
    ArtifactStore,
    BucketNotFound,
    ChecksumMismatch,
    InvalidStorageKey,
    MiB,
    ObjectNotFound,
    ParsedUrl,
    Progress,
    StorageAccessDenied,
    StorageError,
    StorageFull,
    StorageUnavailable,
    StoredObject,
    Upload,
    parse_url,
    sha256_file,
    validate_key,
)
from aegis_catalog.lib.storage.local import LocalStore, LocalUpload
from aegis_catalog.lib.storage.s3 import S3Config, S3Store
from aegis_catalog.lib.storage.s3_upload import MAX_PARTS, S3Upload

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_CONTENT_TYPE",
    "MAX_KEY_LENGTH",
    "MAX_PARTS",
    "SHA256_METADATA_KEY",
    "ArtifactStore",
    "BucketNotFound",
    "ChecksumMismatch",
    "InvalidStorageKey",
    "LocalStore",
    "LocalUpload",
    "MiB",
    "ObjectNotFound",
    "ParsedUrl",
    "Progress",
    "S3Config",
    "S3Store",
    "S3Upload",
    "StorageAccessDenied",
    "StorageError",
    "StorageFull",
    "StorageUnavailable",
    "StoredObject",
    "Upload",
    "parse_url",
    "sha256_file",
    "store_for_url",
    "validate_key",
]


def store_for_url(
    url: str, *, local_root: Path | None, s3: S3Config | None
) -> LocalStore | S3Store:
    """The store able to read (and delete) `url`.

    `file://` URLs use `LocalStore(local_root)`, which refuses URLs outside that root; with no
    root the file's own directory is used. `s3://` URLs use `s3` (its bucket replaced by the
    URL's when they differ, credentials kept), or boto3's default chain when `s3` is None.
    """
    parsed = parse_url(url)
    if parsed.scheme == "file":
        assert parsed.path is not None
        return LocalStore(local_root if local_root is not None else parsed.path.parent)
    assert parsed.bucket is not None
    if s3 is None:
        return S3Store(S3Config(bucket=parsed.bucket))
    if s3.bucket != parsed.bucket:
        return S3Store(replace(s3, bucket=parsed.bucket, prefix=""))
    return S3Store(s3)
