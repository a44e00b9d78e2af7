"""Artifact storage: one interface over a local directory (`file://`) and S3 (`s3://`).

`LocalStore(root)` writes atomically (temporary file in the same directory, fsync, `os.replace`)
and refuses keys that would leave its root. `S3Store(S3Config(...))` uploads with boto3's
managed transfer (multipart above a threshold, concurrent parts), botocore's standard retry
mode, a checksum on every request checked by the server (SHA-256 for a single PUT, CRC32 for
each part of a multipart upload, then the composite over the parts), and the whole-file digest
stored as the object's `sha256` metadata; every upload is checked afterwards with a HEAD request.

Keys are relative paths such as `bert-base/1/bert-base-1.tar.gz`. URLs look like
`file:///srv/artifacts/bert-base/1/bert-base-1.tar.gz` and `s3://bucket/prefix/bert-base/1/...`.

Errors are subclasses of `StorageError`. Their messages name the URL, bucket and endpoint but
never credentials. This module is plain Python (no Django) so it can be used and tested alone.
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import errno
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

import boto3
import botocore.config
import botocore.exceptions
import s3transfer.exceptions
from boto3.s3.transfer import ProgressCallbackInvoker, TransferConfig, create_transfer_manager
from isal import isal_zlib

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


@dataclass(frozen=True, repr=False)
class S3Config:
    """How to reach one S3 bucket.

    Credentials left as None come from boto3's usual chain (AWS_* variables, shared profiles,
    web identity / IRSA, instance metadata). `endpoint_url` None means AWS, or the endpoint in
    `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`. `addressing_style` None picks path-style when an
    `endpoint_url` is given (MinIO, SeaweedFS, Ceph) and boto3's automatic choice otherwise.
    """

    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    region: str | None = None
    bucket: str | None = None
    prefix: str = ""
    multipart_threshold: int = 8 * MiB
    multipart_chunksize: int = 8 * MiB
    max_concurrency: int = 4
    max_attempts: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    addressing_style: Literal["auto", "path", "virtual"] | None = None
    ca_bundle: str | None = None

    def __repr__(self) -> str:
        credentials = "explicit keys" if self.access_key_id else "default credential chain"
        return (
            f"S3Config(endpoint_url={self.endpoint_url!r}, region={self.region!r}, "
            f"bucket={self.bucket!r}, prefix={self.prefix!r}, credentials={credentials!r}, "
            f"multipart_threshold={self.multipart_threshold}, "
            f"multipart_chunksize={self.multipart_chunksize}, "
            f"max_concurrency={self.max_concurrency}, max_attempts={self.max_attempts})"
        )

    __str__ = __repr__


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


def _check_sha256(sha256: str) -> str:
    if not _SHA256_HEX.match(sha256):
        raise ValueError(f"{sha256!r} is not a lowercase hex SHA-256 digest")
    return sha256


def _oserror_to_storage_error(error: OSError, what: str) -> StorageError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(
            f"no space left on the device while {what} ({os.strerror(error.errno)}); "
            "free space or move the artifact directory to a larger volume"
        )
    if isinstance(error, PermissionError) or error.errno == errno.EROFS:
        return StorageAccessDenied(f"permission denied while {what}: {error.strerror}")
    return StorageUnavailable(f"I/O error while {what}: {error.strerror or error}")


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    # Makes the rename durable; some filesystems refuse fsync on directories, which is harmless.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _atomic_target(destination: Path, what: str) -> Iterator[int]:
    """Yield a file descriptor of a temporary file beside `destination`; on success fsync it
    and move it into place, on any failure remove it (the destination is left untouched)."""
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary_name = tempfile.mkstemp(
            dir=destination.parent, prefix=f".{destination.name}.", suffix=".partial"
        )
    except OSError as error:
        raise _oserror_to_storage_error(error, what) from error
    temporary = Path(temporary_name)
    try:
        try:
            yield fd
            os.fchmod(fd, 0o644)
            os.fsync(fd)
        finally:
            os.close(fd)
        temporary.replace(destination)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(error, OSError):
            raise _oserror_to_storage_error(error, what) from error
        raise
    _fsync_directory(destination.parent)


def _copy_into(source: IO[bytes], fd: int, digest: Any, progress: Progress | None) -> int:
    size = 0
    while chunk := source.read(CHUNK_SIZE):
        _write_all(fd, chunk)
        digest.update(chunk)
        size += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return size


# -- the interface ------------------------------------------------------------------------


class Upload(Protocol):
    """An object being written while its bytes are produced (see `ArtifactStore.open_upload`).

    `write` may block while earlier bytes are still in flight (memory stays bounded), and
    raises a StorageError as soon as the store refused part of it. `complete(sha256=...)`
    makes the object visible at `url` and checks its size; the caller hashed the bytes it
    wrote and vouches for `sha256`. `abort` discards everything written, completed or not.
    """

    url: str

    def write(self, data: bytes) -> None: ...

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

    def open_read(self, url: str) -> tuple[IO[bytes], int]:
        """The object at `url` as a stream read from its start, and its size in bytes; the
        caller closes the stream. Nothing is copied first, so the first bytes come at once."""
        ...

    def open_upload(
        self,
        key: str,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        expected_size: int | None = None,
    ) -> Upload: ...

    def head(self, url: str) -> StoredObject: ...

    def exists(self, url: str) -> bool: ...

    def delete(self, url: str) -> None: ...

    def url_for(self, key: str) -> str: ...

    def check(self) -> None: ...


# -- local directory ----------------------------------------------------------------------
class _LocalUpload:
    """A streamed write into a temporary file beside the destination, moved into place on
    complete: ``_atomic_target`` held open across calls."""

    def __init__(self, destination: Path) -> None:
        self.url = destination.as_uri()
        self._what = f"writing {self.url}"
        self._target = contextlib.ExitStack()
        self._fd = self._target.enter_context(_atomic_target(destination, self._what))
        self._size = 0

    def write(self, data: bytes) -> None:
        try:
            _write_all(self._fd, data)
        except OSError as error:
            self.abort()
            raise _oserror_to_storage_error(error, self._what) from error
        self._size += len(data)

    def complete(self, *, sha256: str) -> StoredObject:
        _check_sha256(sha256)
        self._target.close()  # fsync, move into place; on failure the file is removed
        return StoredObject(url=self.url, size=self._size, sha256=sha256)

    def abort(self) -> None:
        # Leaving the target with an exception removes the temporary file; a second call,
        # or one after complete, finds nothing left to do.
        aborted = StorageError(f"the upload of {self.url} was aborted")
        self._target.__exit__(type(aborted), aborted, None)


class _Store:
    """What both stores do the same way."""

    def head(self, url: str) -> StoredObject:
        raise NotImplementedError

    def exists(self, url: str) -> bool:
        try:
            self.head(url)
        except ObjectNotFound:
            return False
        return True


class LocalStore(_Store):
    """Artifacts as files under `root`; URLs are `file:///<absolute path>`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()

    def __repr__(self) -> str:
        return f"LocalStore(root={str(self.root)!r})"

    # paths

    def _resolved_root(self) -> Path:
        return self.root.resolve()

    def _inside_root(self, path: Path, shown: str) -> Path:
        resolved = path.resolve()
        if not resolved.is_relative_to(self._resolved_root()):
            raise InvalidStorageKey(f"{shown} is outside the artifact directory {self.root}")
        return path

    def path_for(self, key: str) -> Path:
        """The file a key is stored in (inside root, symlinks included)."""
        validate_key(key)
        return self._inside_root(self.root.joinpath(*key.split("/")), repr(key))

    def url_for(self, key: str) -> str:
        return self.path_for(key).as_uri()

    def _path_of_url(self, url: str) -> Path:
        parsed = parse_url(url)
        if parsed.scheme != "file" or parsed.path is None:
            raise InvalidStorageKey(f"{url!r} is not a file:// URL; this store is {self.root}")
        return self._inside_root(Path(os.path.normpath(parsed.path)), url)

    # writes

    def put_file(
        self,
        local_path: Path,
        key: str,
        *,
        sha256: str,
        content_type: str = DEFAULT_CONTENT_TYPE,
        progress: Progress | None = None,
    ) -> StoredObject:
        """Copy `local_path` to `key` atomically, checking its SHA-256 while copying."""
        _check_sha256(sha256)
        destination = self.path_for(key)
        url = destination.as_uri()
        digest = hashlib.sha256()
        with (
            Path(local_path).open("rb") as source,
            _atomic_target(destination, f"writing {url}") as fd,
        ):
            size = _copy_into(source, fd, digest, progress)
            if digest.hexdigest() != sha256:
                raise ChecksumMismatch(
                    f"{local_path} has SHA-256 {digest.hexdigest()}, not the expected {sha256}; "
                    f"nothing was written to {url}"
                )
        return StoredObject(url=url, size=size, sha256=sha256)

    def put_bytes(
        self,
        data: bytes,
        key: str,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        sha256: str | None = None,
    ) -> StoredObject:
        actual = hashlib.sha256(data).hexdigest()
        if sha256 is not None and _check_sha256(sha256) != actual:
            raise ChecksumMismatch(f"the data has SHA-256 {actual}, not the expected {sha256}")
        destination = self.path_for(key)
        url = destination.as_uri()
        with _atomic_target(destination, f"writing {url}") as fd:
            view = memoryview(data)
            for start in range(0, len(view), CHUNK_SIZE):
                _write_all(fd, view[start : start + CHUNK_SIZE])
        return StoredObject(url=url, size=len(data), sha256=actual)

    def open_upload(
        self,
        key: str,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        expected_size: int | None = None,
    ) -> _LocalUpload:
        """Write `key` as the bytes come (atomically: nothing is at the URL until complete)."""
        return _LocalUpload(self.path_for(key))

    # reads

    def head(self, url: str) -> StoredObject:
        path = self._path_of_url(url)
        try:
            status = path.stat()
        except FileNotFoundError as error:
            raise ObjectNotFound(f"{url} does not exist") from error
        except OSError as error:
            raise _oserror_to_storage_error(error, f"reading {url}") from error
        if not path.is_file():
            raise ObjectNotFound(f"{url} is not a file")
        return StoredObject(url=url, size=status.st_size, sha256=None)

    def download(
        self,
        url: str,
        dest: Path,
        *,
        progress: Progress | None = None,
        expected_sha256: str | None = None,
    ) -> Path:
        """Copy the file at `url` to `dest` atomically; checks `expected_sha256` when given."""
        if expected_sha256 is not None:
            _check_sha256(expected_sha256)
        dest = Path(dest)
        digest = hashlib.sha256()
        source, _size = self.open_read(url)
        with source, _atomic_target(dest, f"downloading {url} to {dest}") as fd:
            _copy_into(source, fd, digest, progress)
            if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
                raise ChecksumMismatch(
                    f"{url} has SHA-256 {digest.hexdigest()}, not the expected {expected_sha256}"
                )
        return dest

    def open_read(self, url: str) -> tuple[IO[bytes], int]:
        path = self._path_of_url(url)
        try:
            handle = path.open("rb")
        except FileNotFoundError as error:
            raise ObjectNotFound(f"{url} does not exist") from error
        except IsADirectoryError as error:
            raise ObjectNotFound(f"{url} is not a file") from error
        except OSError as error:
            raise _oserror_to_storage_error(error, f"reading {url}") from error
        return handle, os.fstat(handle.fileno()).st_size

    def delete(self, url: str) -> None:
        """Remove the file (no error when it is already gone) and its empty parent folders."""
        path = self._path_of_url(url)
        try:
            path.unlink(missing_ok=True)
        except IsADirectoryError as error:
            raise InvalidStorageKey(f"{url} is a directory, not an artifact file") from error
        except OSError as error:
            raise _oserror_to_storage_error(error, f"deleting {url}") from error
        root = self._resolved_root()
        parent = path.parent
        while parent.resolve() != root and parent.resolve().is_relative_to(root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def check(self) -> None:
        """Raise unless the directory exists (it is created) and a file can be written to it."""
        what = f"checking that the artifact directory {self.root} is writable"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.root, prefix=".aegis-check.", suffix=".partial")
        except OSError as error:
            raise _oserror_to_storage_error(error, what) from error
        try:
            _write_all(fd, b"ok")
            os.fsync(fd)
        except OSError as error:
            raise _oserror_to_storage_error(error, what) from error
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                Path(name).unlink()


# -- S3 -----------------------------------------------------------------------------------

_ACCESS_DENIED_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidToken",
    "SignatureDoesNotMatch",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
    "InvalidSecurity",
    "403",
    "401",
}
_CHECKSUM_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"}
_NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404"}


def _full_object_checksum(head: dict[str, Any]) -> str | None:
    """The base64 SHA-256 of the whole object, when the server reports one (single-part
    uploads); multipart uploads have a composite checksum over the parts instead."""
    value = head.get("ChecksumSHA256")
    if not value or "-" in value or head.get("ChecksumType") == "COMPOSITE":
        return None
    return str(value)


def _sha256_base64(sha256_hex: str) -> str:
    return base64.b64encode(binascii.unhexlify(sha256_hex)).decode("ascii")


MAX_PARTS = 10_000  # S3's limit on the parts of one multipart upload


def _crc32_base64(crc: int) -> str:
    return base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")


class _S3Upload:
    """A multipart upload fed as the bytes are produced: full parts go up on a small thread
    pool, at most `max_concurrency` in flight (`write` waits for a free slot), each with its
    CRC32 for the server to check, and the composite CRC32 over the parts checked when the
    upload is complete. Retries are botocore's (standard mode).

    CRC32, not SHA-256: the parts only need checking in transit (the artifact's SHA-256 is
    computed by the packager and signed), and a SHA-256 per part would cost both ends one more
    hash of every byte. Against tampering on the way, botocore signs each payload's SHA-256 on
    a plain-http endpoint, and TLS protects it over https."""

    def __init__(
        self, store: S3Store, object_key: str, *, content_type: str, expected_size: int | None
    ) -> None:
        self._store = store
        self._key = object_key
        self.url = f"s3://{store.bucket}/{object_key}"
        config = store.config
        part_size = max(config.multipart_chunksize, 5 * MiB)
        if expected_size is not None:
            # Leave room under S3's 10,000-part limit for a tarball a bit larger than expected.
            while expected_size * 1.1 / part_size > MAX_PARTS:
                part_size *= 2
        self._part_size = part_size
        # What was written and is not in a part yet: joined into a part (one copy) once they
        # add up to part_size.
        self._chunks: collections.deque[bytes | memoryview] = collections.deque()
        self._buffered = 0
        self._parts: dict[int, dict[str, Any]] = {}
        self._part_crc32: dict[int, int] = {}
        self._size = 0
        self._error: StorageError | None = None
        self._slots = threading.BoundedSemaphore(max(1, config.max_concurrency))
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, config.max_concurrency), thread_name_prefix="aegis-s3-part"
        )
        self._futures: list[Future[None]] = []
        self._done = False
        try:
            answer = store.client.create_multipart_upload(
                Bucket=store.bucket,
                Key=object_key,
                ContentType=content_type,
                ChecksumAlgorithm="CRC32",
            )
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
            self._pool.shutdown()
            raise store._translate(
                error, bucket=store.bucket, url=self.url, action="uploading"
            ) from error
        self._upload_id = answer["UploadId"]

    def write(self, data: bytes) -> None:
        self._raise_if_failed()
        self._chunks.append(data if type(data) is bytes else bytes(data))
        self._buffered += len(data)
        while self._buffered >= self._part_size:
            self._submit(self._take(self._part_size))

    def _take(self, size: int) -> bytes:
        """The first `size` bytes written and not yet sent, as one part."""
        pieces: list[bytes | memoryview] = []
        needed = size
        while needed:
            chunk = self._chunks[0]
            if len(chunk) <= needed:
                pieces.append(self._chunks.popleft())
                needed -= len(chunk)
            else:
                view = memoryview(chunk)
                pieces.append(view[:needed])
                self._chunks[0] = view[needed:]
                needed = 0
        self._buffered -= size
        only = pieces[0]
        return only if len(pieces) == 1 and isinstance(only, bytes) else b"".join(pieces)

    def _submit(self, part: bytes) -> None:
        number = len(self._futures) + 1
        if number > MAX_PARTS:
            raise StorageError(f"{self.url} would need more than {MAX_PARTS} parts")
        # Wait for a slot: never more than max_concurrency parts held in memory.
        while not self._slots.acquire(timeout=0.5):
            self._raise_if_failed()
        self._size += len(part)
        self._futures.append(self._pool.submit(self._upload_part, number, part))

    def _upload_part(self, number: int, part: bytes) -> None:
        try:
            if self._error is not None:
                return
            crc = isal_zlib.crc32(part)
            checksum = _crc32_base64(crc)
            answer = self._store.client.upload_part(
                Bucket=self._store.bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=part,
                ChecksumCRC32=checksum,
            )
            self._part_crc32[number] = crc
            self._parts[number] = {
                "PartNumber": number,
                "ETag": answer["ETag"],
                "ChecksumCRC32": answer.get("ChecksumCRC32", checksum),
            }
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
            if self._error is None:
                self._error = self._store._translate(
                    error, bucket=self._store.bucket, url=self.url, action="uploading"
                )
        finally:
            self._slots.release()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            self.abort()
            raise self._error

    def complete(self, *, sha256: str) -> StoredObject:
        """Send the last part, finish the upload, and check the stored size and checksum."""
        _check_sha256(sha256)
        self._raise_if_failed()
        if self._buffered or not self._futures:
            self._submit(self._take(self._buffered))
        for future in self._futures:
            future.result()
        self._pool.shutdown()
        self._raise_if_failed()
        parts = [self._parts[number] for number in sorted(self._parts)]
        store = self._store
        try:
            store.client.complete_multipart_upload(
                Bucket=store.bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
            self.abort()
            raise store._translate(
                error, bucket=store.bucket, url=self.url, action="uploading"
            ) from error
        self._done = True
        head = store._head_raw(store.bucket, self._key, self.url)
        problems = []
        if head.get("ContentLength") != self._size:
            problems.append(f"size {head.get('ContentLength')} instead of {self._size}")
        composite = head.get("ChecksumCRC32")
        if composite and "-" in composite:
            # The server's checksum of the part checksums, as S3 defines it for multipart.
            crcs = b"".join(
                self._part_crc32[number].to_bytes(4, "big") for number in sorted(self._parts)
            )
            expected = _crc32_base64(isal_zlib.crc32(crcs))
            if composite != f"{expected}-{len(parts)}":
                problems.append("a composite CRC32 checksum that differs from the parts sent")
        if problems:
            self.abort()
            raise ChecksumMismatch(
                f"{self.url} at {store.endpoint} was stored with {'; '.join(problems)}; "
                "the object was removed"
            )
        return StoredObject(url=self.url, size=self._size, sha256=sha256)

    def abort(self) -> None:
        """Discard the upload (or the completed object); never raises."""
        if self._error is None:
            self._error = StorageError(f"the upload of {self.url} was aborted")
        self._pool.shutdown(wait=True, cancel_futures=True)
        failures = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)
        with contextlib.suppress(*failures):
            if self._done:
                self._store.client.delete_object(Bucket=self._store.bucket, Key=self._key)
            else:
                self._store.client.abort_multipart_upload(
                    Bucket=self._store.bucket, Key=self._key, UploadId=self._upload_id
                )


class S3Store(_Store):
    """Artifacts in an S3 bucket under an optional prefix; URLs are `s3://bucket/prefix/key`.

    The boto3 client is created on first use and shared by threads (boto3 clients are
    thread-safe). URLs naming another bucket are read with the same credentials.
    """

    def __init__(self, config: S3Config) -> None:
        if not config.bucket:
            raise InvalidStorageKey("S3 storage needs a bucket name (S3Config.bucket is empty)")
        self.config = config
        self.bucket = config.bucket
        self.prefix = config.prefix.strip("/")
        if self.prefix:
            validate_key(self.prefix)
        self._client: Any = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store({self.config!r})"

    # plumbing

    @property
    def client(self) -> Any:
        """The boto3 S3 client (created once)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        config = self.config
        style = config.addressing_style or ("path" if config.endpoint_url else "auto")
        session = boto3.session.Session(
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            aws_session_token=config.session_token,
            region_name=config.region,
        )
        botocore_config = botocore.config.Config(
            retries={"mode": "standard", "total_max_attempts": config.max_attempts},
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            max_pool_connections=max(10, config.max_concurrency * 2),
            s3={"addressing_style": style},
            user_agent_extra="aegis-catalog",
        )
        try:
            return session.client(
                "s3",
                endpoint_url=config.endpoint_url,
                config=botocore_config,
                verify=config.ca_bundle,
            )
        except (botocore.exceptions.BotoCoreError, ValueError) as error:
            raise StorageUnavailable(
                f"cannot set up the S3 client for endpoint {config.endpoint_url or 'AWS'}: {error}"
            ) from error

    @property
    def endpoint(self) -> str:
        """The endpoint URL actually used (for messages)."""
        return str(self.client.meta.endpoint_url)

    def transfer_config(self) -> TransferConfig:
        """boto3's managed-transfer settings for this store (part size, threads, attempts)."""
        return TransferConfig(
            multipart_threshold=self.config.multipart_threshold,
            multipart_chunksize=self.config.multipart_chunksize,
            max_concurrency=self.config.max_concurrency,
            use_threads=self.config.max_concurrency > 1,
            num_download_attempts=self.config.max_attempts,
            preferred_transfer_client="classic",
        )

    def _location(self, url: str) -> tuple[str, str]:
        parsed = parse_url(url)
        if parsed.scheme != "s3" or parsed.bucket is None or parsed.key is None:
            raise InvalidStorageKey(
                f"{url!r} is not an s3:// URL; this store is s3://{self.bucket}"
            )
        return parsed.bucket, parsed.key

    def object_key(self, key: str) -> str:
        """The full key in the bucket (prefix included) for a relative key."""
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def url_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def _bucket_exists(self, bucket: str) -> bool:
        try:
            self.client.head_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return not (status == 404 or _error_code(error) in ("NoSuchBucket", "404"))
        except botocore.exceptions.BotoCoreError:
            return True  # unknown: let the original error stand
        return True

    def _translate(
        self, error: BaseException, *, bucket: str, url: str | None, action: str
    ) -> StorageError:
        """Map a boto3/botocore/s3transfer error to a StorageError with an actionable message."""
        endpoint = self.endpoint
        where = url or f"bucket '{bucket}'"
        if isinstance(error, botocore.exceptions.ClientError):
            code = _error_code(error)
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            message = error.response.get("Error", {}).get("Message") or code
            if code == "NoSuchBucket":
                return BucketNotFound(f"S3 bucket '{bucket}' does not exist at {endpoint}")
            if code in _NOT_FOUND_CODES or status == 404:
                # A HEAD answers a bare 404 for a missing bucket too: ask which one it is.
                if not self._bucket_exists(bucket):
                    return BucketNotFound(f"S3 bucket '{bucket}' does not exist at {endpoint}")
                return ObjectNotFound(f"{where} does not exist at {endpoint}")
            if code in _ACCESS_DENIED_CODES or status in (401, 403):
                source = (
                    "the configured access key"
                    if self.config.access_key_id
                    else "credentials from the default AWS chain"
                )
                return StorageAccessDenied(
                    f"S3 at {endpoint} refused {action} {where} ({code}: {message}); "
                    f"check {source}, its secret and its permissions on bucket '{bucket}'"
                )
            if code in _CHECKSUM_CODES:
                return ChecksumMismatch(
                    f"S3 at {endpoint} rejected the data while {action} {where}: {code}: {message}"
                )
            if (status is not None and int(status) >= 500) or code in (
                "SlowDown",
                "RequestTimeout",
            ):
                return StorageUnavailable(
                    f"S3 at {endpoint} failed while {action} {where} "
                    f"({_attempts(self.config.max_attempts)}): {code}: {message}"
                )
            return StorageError(
                f"S3 at {endpoint} failed while {action} {where}: {code}: {message}"
            )
        if isinstance(
            error,
            botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError,
        ):
            return StorageAccessDenied(
                f"no usable S3 credentials for {endpoint}: set the access key id and secret "
                "(or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, or a web identity)"
            )
        if isinstance(error, botocore.exceptions.FlexibleChecksumError):
            return ChecksumMismatch(f"{where} failed its checksum while {action}: {error}")
        if isinstance(
            error,
            botocore.exceptions.ConnectionError
            | botocore.exceptions.HTTPClientError
            | s3transfer.exceptions.RetriesExceededError,
        ):
            return StorageUnavailable(
                f"S3 endpoint {endpoint} is unreachable or dropped the connection while "
                f"{action} {where} ({_attempts(self.config.max_attempts)}): {error}"
            )
        return StorageError(f"S3 at {endpoint} failed while {action} {where}: {error}")

    def _head_raw(self, bucket: str, key: str, url: str) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = self.client.head_object(
                Bucket=bucket, Key=key, ChecksumMode="ENABLED"
            )
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
            raise self._translate(error, bucket=bucket, url=url, action="reading") from error
        return answer

    # writes

    def put_file(
        self,
        local_path: Path,
        key: str,
        *,
        sha256: str,
        content_type: str = DEFAULT_CONTENT_TYPE,
        progress: Progress | None = None,
    ) -> StoredObject:
        """Upload `local_path` to `key` (multipart when large), then check the stored object.

        Raises ChecksumMismatch (after removing the object) when the stored size, `sha256`
        metadata or full-object checksum differ from what was sent.
        """
        _check_sha256(sha256)
        object_key = self.object_key(key)
        url = f"s3://{self.bucket}/{object_key}"
        local_path = Path(local_path)
        size = local_path.stat().st_size
        extra_args = {
            # SHA-256 when one PUT carries the whole object (the server then checks the whole
            # file's digest), CRC32 on the parts of a multipart upload (checked in transit;
            # the whole file's digest is the sha256 metadata, read back below).
            "ChecksumAlgorithm": "SHA256" if size < self.config.multipart_threshold else "CRC32",
            "ContentType": content_type,
            "Metadata": {SHA256_METADATA_KEY: sha256},
        }
        subscribers = [ProgressCallbackInvoker(progress)] if progress is not None else None
        try:
            with create_transfer_manager(self.client, self.transfer_config()) as manager:
                future = manager.upload(
                    str(local_path), self.bucket, object_key, extra_args, subscribers
                )
                future.result()
        except (
            botocore.exceptions.ClientError,
            botocore.exceptions.BotoCoreError,
            s3transfer.exceptions.RetriesExceededError,
        ) as error:
            raise self._translate(error, bucket=self.bucket, url=url, action="uploading") from error
        except OSError as error:
            raise _oserror_to_storage_error(error, f"reading {local_path}") from error
        self._verify_upload(url, object_key, size=size, sha256=sha256)
        return StoredObject(url=url, size=size, sha256=sha256)

    def put_bytes(
        self,
        data: bytes,
        key: str,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        sha256: str | None = None,
    ) -> StoredObject:
        """Store small data in one PUT; the server checks the SHA-256 sent with it."""
        actual = hashlib.sha256(data).hexdigest()
        if sha256 is not None and _check_sha256(sha256) != actual:
            raise ChecksumMismatch(f"the data has SHA-256 {actual}, not the expected {sha256}")
        object_key = self.object_key(key)
        url = f"s3://{self.bucket}/{object_key}"
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=object_key,
                Body=data,
                ContentType=content_type,
                ChecksumSHA256=_sha256_base64(actual),
                Metadata={SHA256_METADATA_KEY: actual},
            )
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
            raise self._translate(error, bucket=self.bucket, url=url, action="uploading") from error
        self._verify_upload(url, object_key, size=len(data), sha256=actual)
        return StoredObject(url=url, size=len(data), sha256=actual)

    def open_upload(
        self,
        key: str,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        expected_size: int | None = None,
    ) -> _S3Upload:
        """A multipart upload to `key` fed as the bytes are produced (parts in parallel).

        The object has no `sha256` metadata (its digest is not known when the upload starts):
        each part's CRC32 is checked by the server, and the composite checksum afterwards.
        """
        return _S3Upload(
            self, self.object_key(key), content_type=content_type, expected_size=expected_size
        )

    def _verify_upload(self, url: str, object_key: str, *, size: int, sha256: str) -> None:
        head = self._head_raw(self.bucket, object_key, url)
        problems = []
        if head.get("ContentLength") != size:
            problems.append(f"size {head.get('ContentLength')} instead of {size}")
        stored_sha256 = head.get("Metadata", {}).get(SHA256_METADATA_KEY)
        if stored_sha256 != sha256:
            problems.append(f"sha256 metadata {stored_sha256!r} instead of {sha256!r}")
        full_checksum = _full_object_checksum(head)
        if full_checksum is not None and full_checksum != _sha256_base64(sha256):
            problems.append("a whole-object SHA-256 checksum that differs from the expected one")
        if problems:
            with contextlib.suppress(StorageError):
                self.delete(url)
            raise ChecksumMismatch(
                f"{url} at {self.endpoint} was stored with {'; '.join(problems)}; "
                "the object was removed"
            )

    # reads

    def head(self, url: str) -> StoredObject:
        bucket, key = self._location(url)
        answer = self._head_raw(bucket, key, url)
        return StoredObject(
            url=url,
            size=int(answer["ContentLength"]),
            sha256=answer.get("Metadata", {}).get(SHA256_METADATA_KEY),
        )

    def download(
        self,
        url: str,
        dest: Path,
        *,
        progress: Progress | None = None,
        expected_sha256: str | None = None,
    ) -> Path:
        """Fetch the object at `url` into `dest` (ranged, concurrent parts when large),
        atomically; checks `expected_sha256` when given."""
        if expected_sha256 is not None:
            _check_sha256(expected_sha256)
        bucket, key = self._location(url)
        dest = Path(dest)
        subscribers = [ProgressCallbackInvoker(progress)] if progress is not None else None
        what = f"downloading {url} to {dest}"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary_name = tempfile.mkstemp(
                dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial"
            )
            os.close(fd)
        except OSError as error:
            raise _oserror_to_storage_error(error, what) from error
        temporary = Path(temporary_name)
        try:
            # s3transfer fetches large objects as concurrent ranged GETs into the file.
            with create_transfer_manager(self.client, self.transfer_config()) as manager:
                manager.download(bucket, key, str(temporary), None, subscribers).result()
            if expected_sha256 is not None:
                actual = sha256_file(temporary)
                if actual != expected_sha256:
                    raise ChecksumMismatch(
                        f"{url} has SHA-256 {actual}, not the expected {expected_sha256}"
                    )
            temporary.chmod(0o644)
            with temporary.open("rb+") as written:
                os.fsync(written.fileno())
            temporary.replace(dest)
        except (
            botocore.exceptions.ClientError,
            botocore.exceptions.BotoCoreError,
            s3transfer.exceptions.RetriesExceededError,
        ) as error:
            raise self._translate(error, bucket=bucket, url=url, action="downloading") from error
        except OSError as error:
            raise _oserror_to_storage_error(error, what) from error
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink()
        _fsync_directory(dest.parent)
        return dest

    def open_read(self, url: str) -> tuple[IO[bytes], int]:
        """One GET, read as it arrives. A connection lost midway raises from `read` (botocore
        does not resume a body): for a download served to a client, the client sees fewer
        bytes than the size announced."""
        bucket, key = self._location(url)
        try:
            answer = self.client.get_object(Bucket=bucket, Key=key)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
            raise self._translate(error, bucket=bucket, url=url, action="reading") from error
        return answer["Body"], int(answer["ContentLength"])

    def delete(self, url: str) -> None:
        """Remove the object; deleting a missing object is not an error."""
        bucket, key = self._location(url)
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
            translated = self._translate(error, bucket=bucket, url=url, action="deleting")
            if isinstance(translated, ObjectNotFound):
                return
            raise translated from error

    def check(self) -> None:
        """Raise unless the bucket exists and the credentials may use it (HEAD bucket)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
            translated = self._translate(error, bucket=self.bucket, url=None, action="checking")
            if isinstance(translated, ObjectNotFound):
                translated = BucketNotFound(
                    f"S3 bucket '{self.bucket}' does not exist at {self.endpoint}"
                )
            raise translated from error


def _attempts(count: int) -> str:
    return f"{count} attempt" if count == 1 else f"{count} attempts"


def _error_code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# -- choosing a store ---------------------------------------------------------------------


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
