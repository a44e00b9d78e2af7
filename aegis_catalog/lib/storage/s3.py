"""Artifacts in an S3 bucket (`s3://` URLs), through boto3.

Uploads use boto3's managed transfer (multipart above a threshold, concurrent parts), botocore's
standard retry mode, a checksum on every request checked by the server (SHA-256 for a single PUT,
CRC32 for each part of a multipart upload, then the composite over the parts), and the whole-file
digest stored as the object's `sha256` metadata; every upload is checked afterwards with a HEAD
request. Errors are translated into the `StorageError` family, naming bucket and endpoint but
never credentials.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import boto3
import botocore.config
import botocore.exceptions
import s3transfer.exceptions
from boto3.s3.transfer import ProgressCallbackInvoker, TransferConfig, create_transfer_manager

from aegis_catalog.lib.storage.base import (
    DEFAULT_CONTENT_TYPE,
    SHA256_METADATA_KEY,
    BucketNotFound,
    ChecksumMismatch,
    InvalidStorageKey,
    MiB,
    ObjectNotFound,
    Progress,
    StorageAccessDenied,
    StorageError,
    StorageUnavailable,
    StoreBase,
    StoredObject,
    check_sha256,
    checked_digest,
    fsync_directory,
    oserror_to_storage_error,
    parse_url,
    sha256_file,
    validate_key,
)
from aegis_catalog.lib.storage.s3_upload import S3Upload


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


class S3Store(StoreBase):
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
            return self._translate_client_error(
                error, bucket=bucket, where=where, action=action, endpoint=endpoint
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

    def _translate_client_error(
        self,
        error: botocore.exceptions.ClientError,
        *,
        bucket: str,
        where: str,
        action: str,
        endpoint: str,
    ) -> StorageError:
        """The StorageError for an error S3 answered, by its error code and HTTP status."""
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
        if (status is not None and int(status) >= 500) or code in ("SlowDown", "RequestTimeout"):
            return StorageUnavailable(
                f"S3 at {endpoint} failed while {action} {where} "
                f"({_attempts(self.config.max_attempts)}): {code}: {message}"
            )
        return StorageError(f"S3 at {endpoint} failed while {action} {where}: {code}: {message}")

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
        check_sha256(sha256)
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
            raise oserror_to_storage_error(error, f"reading {local_path}") from error
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
        actual = checked_digest(data, sha256)
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

    def discard_unfinished_uploads(self, key: str) -> int:
        """Abort the multipart uploads to `key` that were never completed (their parts are
        stored, and billed, until then)."""
        object_key = self.object_key(key)
        url = f"s3://{self.bucket}/{object_key}"
        found = 0
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=object_key
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Key"] != object_key:
                        continue
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=object_key, UploadId=upload["UploadId"]
                    )
                    found += 1
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
            raise self._translate(error, bucket=self.bucket, url=url, action="listing") from error
        return found

    def open_upload(
        self,
        key: str,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        expected_size: int | None = None,
    ) -> S3Upload:
        """A multipart upload to `key` fed as the bytes are produced (parts in parallel).

        The object has no `sha256` metadata (its digest is not known when the upload starts):
        each part's CRC32 is checked by the server, and the composite checksum afterwards.
        """
        return S3Upload(
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
            check_sha256(expected_sha256)
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
            raise oserror_to_storage_error(error, what) from error
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
            raise oserror_to_storage_error(error, what) from error
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink()
        fsync_directory(dest.parent)
        return dest

    def open_read(
        self, url: str, *, start: int = 0, end: int | None = None
    ) -> tuple[IO[bytes], int]:
        """One GET (ranged from `start` to `end`, exclusive, when given), read as it arrives.
        A connection lost midway raises from `read` (botocore does not resume a body): for a
        download served to a client, the client sees fewer bytes than the size announced."""
        bucket, key = self._location(url)
        extra = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            answer = self.client.get_object(Bucket=bucket, Key=key, **extra)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
            raise self._translate(error, bucket=bucket, url=url, action="reading") from error
        if not extra:
            return answer["Body"], int(answer["ContentLength"])
        total = str(answer.get("ContentRange", "")).rpartition("/")[2]
        return answer["Body"], int(total) if total.isdigit() else int(answer["ContentLength"])

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

    def list_urls(self, prefix: str) -> list[str]:
        """The URLs of the objects under a relative key prefix, sorted."""
        full = self.object_key(prefix).rstrip("/") + "/"
        urls = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                urls += [f"s3://{self.bucket}/{item['Key']}" for item in page.get("Contents", ())]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
            raise self._translate(error, bucket=self.bucket, url=None, action="listing") from error
        return sorted(urls)

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
