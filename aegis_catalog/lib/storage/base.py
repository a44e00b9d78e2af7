"""What both artifact stores share: errors, values, URL and key checks, and the interfaces.

Keys are relative paths such as `bert-base/1/bert-base-1.tar.gz`. URLs look like
`file:///srv/artifacts/bert-base/1/bert-base-1.tar.gz` and `s3://bucket/prefix/bert-base/1/...`.

Errors are subclasses of `StorageError`. Their messages name the URL, bucket and endpoint but
never credentials.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Protocol
from urllib.parse import unquote, urlsplit

MiB = 1024 * 1024
CHUNK_SIZE = 1 * MiB
DEFAULT_CONTENT_TYPE = "application/octet-stream"
SHA256_METADATA_KEY = "sha256"
MAX_KEY_LENGTH = 1024  # the S3 limit, applied to both stores so a key works everywhere

Progress = Callable[[int], None]
"""Called with the number of bytes transferred since the previous call (may be negative
when a retried S3 part rewinds); the calls add up to the object's size."""

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


# -- errors -------------------------------------------------------------------------------


class StorageError(Exception):
    """Base class of every error raised by the artifact stores."""


class BucketNotFound(StorageError):
    """The S3 bucket does not exist at the endpoint."""


class ObjectNotFound(StorageError):
    """No object (or file) at the URL."""


class StorageUnavailable(StorageError):
    """The endpoint or directory cannot be reached or used right now (network, timeouts, I/O)."""


class StorageAccessDenied(StorageError):
    """The credentials were rejected or lack permission (or the directory is not writable)."""


class StorageFull(StorageError):
    """No space left on the device (or quota exceeded) while writing."""


class ChecksumMismatch(StorageError):
    """The bytes stored or fetched do not have the expected size or SHA-256."""


class InvalidStorageKey(StorageError):
    """A key or URL that is malformed, unsupported or outside the store."""


# -- values -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    """An object in a store: its URL, size in bytes, and SHA-256 (hex) when known."""

    url: str
    size: int
    sha256: str | None


@dataclass(frozen=True)
class ParsedUrl:
    """A storage URL split up: `file` URLs have `path` (absolute), `s3` URLs `bucket` and `key`."""

    scheme: Literal["file", "s3"]
    bucket: str | None
    key: str | None
    path: Path | None


# -- helpers ------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    """The SHA-256 (hex) of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def parse_url(url: str) -> ParsedUrl:
    """Split a `file://` or `s3://` URL; raises InvalidStorageKey for anything else."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidStorageKey(f"{url!r} names a remote host; only local file:// URLs work")
        path = Path(unquote(parts.path))
        if not path.is_absolute() or parts.path in ("", "/"):
            raise InvalidStorageKey(f"{url!r} is not a file:// URL of an absolute path")
        return ParsedUrl(scheme="file", bucket=None, key=None, path=path)
    if parts.scheme == "s3":
        # s3://bucket/key with the key taken verbatim (as the AWS CLI does), not percent-decoded.
        rest = url[len("s3://") :]
        bucket, _, key = rest.partition("/")
        if not bucket or not key:
            raise InvalidStorageKey(f"{url!r} is not an s3://bucket/key URL")
        return ParsedUrl(scheme="s3", bucket=bucket, key=key, path=None)
    raise InvalidStorageKey(f"{url!r} is not a file:// or s3:// URL")


def validate_key(key: str) -> str:
    """Check a relative object key such as `name/version/file.tar.gz` and return it.

    Refused: empty keys, absolute paths, `..` or `.` segments, empty segments, backslashes,
    control characters and keys longer than 1024 bytes.
    """
    if not key:
        raise InvalidStorageKey("the storage key is empty")
    if key.startswith("/"):
        raise InvalidStorageKey(f"the storage key {key!r} is absolute; keys are relative")
    if "\\" in key or any(ord(char) < 32 or ord(char) == 127 for char in key):
        raise InvalidStorageKey(f"the storage key {key!r} contains a backslash or control char")
    if len(key.encode("utf-8")) > MAX_KEY_LENGTH:
        raise InvalidStorageKey(f"the storage key is longer than {MAX_KEY_LENGTH} bytes")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidStorageKey(
                f"the storage key {key!r} has an empty, '.' or '..' path segment"
            )
    return key


def check_sha256(sha256: str) -> str:
    """Return `sha256` if it is a lowercase hex SHA-256, else raise ValueError (a caller's bug)."""
    if not _SHA256_HEX.match(sha256):
        raise ValueError(f"{sha256!r} is not a lowercase hex SHA-256 digest")
    return sha256


def checked_digest(data: bytes, sha256: str | None) -> str:
    """The SHA-256 (hex) of `data`; raises ChecksumMismatch when it is not `sha256` (if given)."""
    actual = hashlib.sha256(data).hexdigest()
    if sha256 is not None and check_sha256(sha256) != actual:
        raise ChecksumMismatch(f"the data has SHA-256 {actual}, not the expected {sha256}")
    return actual


def oserror_to_storage_error(error: OSError, what: str) -> StorageError:
    """The StorageError for a failed file operation: a full disk and a refusal are told apart."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(
            f"no space left on the device while {what} ({os.strerror(error.errno)}); "
            "free space or move the artifact directory to a larger volume"
        )
    if isinstance(error, PermissionError) or error.errno == errno.EROFS:
        return StorageAccessDenied(f"permission denied while {what}: {error.strerror}")
    return StorageUnavailable(f"I/O error while {what}: {error.strerror or error}")


def fsync_directory(directory: Path) -> None:
    # Makes the rename durable; some filesystems refuse fsync on directories, which is harmless.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- the interface ------------------------------------------------------------------------


class Upload(Protocol):
    """An object being written while its bytes are produced (see `ArtifactStore.open_upload`).

    `write` may block while earlier bytes are still in flight (memory stays bounded), and
    raises a StorageError as soon as the store refused part of it. `complete(sha256=...)`
    makes the object visible at `url` and checks its size; the caller hashed the bytes it
    wrote and vouches for `sha256`. `abort` discards everything written, completed or not.
    `write` copies what it keeps: the caller may reuse `data`'s buffer once it returns.
    """

    url: str

    def write(self, data: bytes | memoryview) -> None: ...

    def complete(self, *, sha256: str) -> StoredObject: ...

    def abort(self) -> None: ...


class ArtifactStore(Protocol):
    """What the import pipeline and the verifier need from a store."""

    def put_file(
        self,
        local_path: Path,
        key: str,
        *,
        sha256: str,
        content_type: str = DEFAULT_CONTENT_TYPE,
        progress: Progress | None = None,
    ) -> StoredObject: ...

    def put_bytes(
        self,
        data: bytes,
        key: str,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        sha256: str | None = None,
    ) -> StoredObject: ...

    def download(
        self,
        url: str,
        dest: Path,
        *,
        progress: Progress | None = None,
        expected_sha256: str | None = None,
    ) -> Path: ...

    def open_read(
        self, url: str, *, start: int = 0, end: int | None = None
    ) -> tuple[IO[bytes], int]:
        """The object at `url` as a stream, and its whole size in bytes; the caller closes the
        stream. Nothing is copied first, so the first bytes come at once. With `start` (and
        `end`, exclusive) the stream holds only those bytes (a ranged GET on S3)."""
        ...

    def open_upload(
        self,
        key: str,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        expected_size: int | None = None,
    ) -> Upload: ...

    def discard_unfinished_uploads(self, key: str) -> int:
        """Discard uploads to `key` that were opened and never completed nor aborted (their
        writer died); return how many there were."""
        ...

    def head(self, url: str) -> StoredObject: ...

    def exists(self, url: str) -> bool: ...

    def delete(self, url: str) -> None: ...

    def url_for(self, key: str) -> str: ...

    def list_urls(self, prefix: str) -> list[str]:
        """The URLs of the objects stored under a relative key prefix, sorted."""
        ...

    def check(self) -> None: ...


class StoreBase:
    """What both stores do the same way."""

    def head(self, url: str) -> StoredObject:
        raise NotImplementedError

    def exists(self, url: str) -> bool:
        try:
            self.head(url)
        except ObjectNotFound:
            return False
        return True
