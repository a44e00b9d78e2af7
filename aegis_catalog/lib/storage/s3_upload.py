"""A multipart upload to S3 fed as the bytes are produced (`S3Store.open_upload`)."""

from __future__ import annotations

import base64
import contextlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import botocore.exceptions
from isal import isal_zlib

from aegis_catalog.lib.storage.base import (
    ChecksumMismatch,
    MiB,
    StorageError,
    StoredObject,
    check_sha256,
)

if TYPE_CHECKING:
    from aegis_catalog.lib.storage.s3 import S3Store

MAX_PARTS = 10_000  # S3's limit on the parts of one multipart upload


def _crc32_base64(crc: int) -> str:
    return base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")


class S3Upload:
    """A multipart upload fed as the bytes are produced: full parts go up on a small thread
    pool, at most `max_concurrency` in flight (`write` waits for a free slot), each with its
    CRC32 for the server to check, and the composite CRC32 over the parts checked when the
    upload is complete. Retries are botocore's (standard mode).

    CRC32, not SHA-256: the parts only need checking in transit (the artifact's SHA-256 is
    computed by the packager and signed), and a SHA-256 per part would cost both ends one more
    hash of every byte. Against tampering on the way, botocore signs each payload's SHA-256 on
    a plain-http endpoint, and TLS protects it over https.

    What is written is copied into a part buffer; the buffers of parts sent are used again
    (at most one more than the parts in flight), so memory is allocated once, not for every
    part."""

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
        # The part being filled (what was written and is not sent yet), and buffers of parts
        # already sent, to fill again.
        self._part: bytearray | None = None
        self._buffered = 0
        self._spare: list[bytearray] = []
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

    def write(self, data: bytes | memoryview) -> None:
        self._raise_if_failed()
        view = memoryview(data).cast("B")
        while view:
            if self._part is None:
                self._part = self._spare.pop() if self._spare else bytearray(self._part_size)
            count = min(len(view), self._part_size - self._buffered)
            self._part[self._buffered : self._buffered + count] = view[:count]
            self._buffered += count
            view = view[count:]
            if self._buffered == self._part_size:
                part, self._part, self._buffered = self._part, None, 0
                self._submit(part)

    def _submit(self, part: bytes | bytearray) -> None:
        number = len(self._futures) + 1
        if number > MAX_PARTS:
            raise StorageError(f"{self.url} would need more than {MAX_PARTS} parts")
        # Wait for a slot: never more than max_concurrency parts held in memory.
        while not self._slots.acquire(timeout=0.5):
            self._raise_if_failed()
        self._size += len(part)
        self._futures.append(self._pool.submit(self._upload_part, number, part))

    def _upload_part(self, number: int, part: bytes | bytearray) -> None:
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
            if isinstance(part, bytearray):
                self._spare.append(part)
            self._slots.release()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            self.abort()
            raise self._error

    def complete(self, *, sha256: str) -> StoredObject:
        """Send the last part, finish the upload, and check the stored size and checksum."""
        check_sha256(sha256)
        self._raise_if_failed()
        if self._buffered or not self._futures:
            last = b"" if self._part is None else bytes(self._part[: self._buffered])
            self._part, self._buffered = None, 0
            self._submit(last)
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
