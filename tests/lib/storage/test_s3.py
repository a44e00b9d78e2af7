"""S3Store against a real S3 server (SeaweedFS `weed mini`)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from aegis_catalog.lib.storage import (
    BucketNotFound,
    ChecksumMismatch,
    ObjectNotFound,
    S3Config,
    S3Store,
    StorageAccessDenied,
    StorageError,
    StorageUnavailable,
    StoredObject,
    sha256_file,
)
from devservers.seaweedfs import SeaweedS3
from tests.lib.storage.support import (
    MiB,
    ProgressRecorder,
    closed_port,
    feed,
    write_random_file,
)


def test_it_never_shows_s3_secrets_in_its_repr() -> None:
    config = S3Config(
        endpoint_url="http://s3.internal:9000",
        access_key_id="AKIAEXAMPLEKEYID",
        secret_access_key="very-secret-value",
        session_token="session-token-value",
        bucket="models",
    )
    for text in (repr(config), str(config), repr(S3Store(config))):
        assert "very-secret-value" not in text
        assert "session-token-value" not in text
        assert "AKIAEXAMPLEKEYID" not in text
        assert "models" in text


def test_it_stores_and_reads_a_small_object_in_s3(
    seaweedfs: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    store = S3Store(seaweedfs.storage_config(s3_bucket, prefix="team/models"))
    source = tmp_path / "aegis.json"
    digest = write_random_file(source, 1234)

    stored = store.put_file(
        source, "bert/1/aegis.json", sha256=digest, content_type="application/json"
    )

    assert stored == StoredObject(
        url=f"s3://{s3_bucket}/team/models/bert/1/aegis.json", size=1234, sha256=digest
    )
    raw = seaweedfs.client().get_object(Bucket=s3_bucket, Key="team/models/bert/1/aegis.json")
    assert raw["Body"].read() == source.read_bytes()
    assert raw["Metadata"]["sha256"] == digest
    assert raw["ContentType"] == "application/json"
    assert store.head(stored.url) == stored
    copy = store.download(stored.url, tmp_path / "copy.json", expected_sha256=digest)
    assert copy.read_bytes() == source.read_bytes()

    small = store.put_bytes(b"hello", "bert/1/hello.txt")
    assert store.head(small.url).sha256 == hashlib.sha256(b"hello").hexdigest()


def test_it_uploads_a_large_file_in_parts_and_keeps_its_sha256(
    seaweedfs: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    config = seaweedfs.storage_config(
        s3_bucket, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4
    )
    store = S3Store(config)
    source = tmp_path / "model.tar.gz"
    digest = write_random_file(source, 20 * MiB + 3)
    progress = ProgressRecorder()

    stored = store.put_file(source, "big/1/big-1.tar.gz", sha256=digest, progress=progress)

    assert progress.total == 20 * MiB + 3
    head = seaweedfs.client().head_object(
        Bucket=s3_bucket, Key="big/1/big-1.tar.gz", ChecksumMode="ENABLED"
    )
    assert head["ETag"].endswith('-5"')  # five parts: really a multipart upload
    assert head["Metadata"]["sha256"] == digest
    assert head["ContentLength"] == 20 * MiB + 3
    downloaded = ProgressRecorder()
    copy = store.download(stored.url, tmp_path / "copy.tar.gz", progress=downloaded)
    assert sha256_file(copy) == digest
    assert downloaded.total == 20 * MiB + 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.tar.gz", "model.tar.gz"]


def test_it_heads_checks_and_deletes_s3_objects(
    seaweedfs: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    store = S3Store(seaweedfs.storage_config(s3_bucket))
    store.check()
    url = store.url_for("m/1/m.tar.gz")
    assert not store.exists(url)
    with pytest.raises(ObjectNotFound, match=f"s3://{s3_bucket}/m/1/m.tar.gz"):
        store.head(url)
    with pytest.raises(ObjectNotFound):
        store.download(url, tmp_path / "m.tar.gz")
    assert list(tmp_path.iterdir()) == []
    store.put_bytes(b"payload", "m/1/m.tar.gz")
    assert store.exists(url)
    store.delete(url)
    store.delete(url)  # idempotent
    assert not store.exists(url)
    keys = seaweedfs.client().list_objects_v2(Bucket=s3_bucket).get("Contents", [])
    assert keys == []


def test_it_removes_an_s3_object_whose_checksum_disagrees(
    seaweedfs: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    store = S3Store(seaweedfs.storage_config(s3_bucket))
    source = tmp_path / "m.tar.gz"
    write_random_file(source, 4096)
    with pytest.raises(ChecksumMismatch, match="removed"):
        store.put_file(source, "m/1/m.tar.gz", sha256="b" * 64)
    assert not store.exists(store.url_for("m/1/m.tar.gz"))


def test_it_refuses_a_download_whose_digest_differs(
    seaweedfs: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    store = S3Store(seaweedfs.storage_config(s3_bucket))
    stored = store.put_bytes(b"real bytes", "m/1/m.tar.gz")
    with pytest.raises(ChecksumMismatch):
        store.download(stored.url, tmp_path / "out.tar.gz", expected_sha256="c" * 64)
    assert list(tmp_path.iterdir()) == []


def test_it_reports_a_missing_bucket(seaweedfs: SeaweedS3, tmp_path: Path) -> None:
    store = S3Store(seaweedfs.storage_config("no-such-bucket"))
    source = tmp_path / "m.tar.gz"
    digest = write_random_file(source, 100)
    expected = f"S3 bucket 'no-such-bucket' does not exist at {seaweedfs.endpoint_url}"
    with pytest.raises(BucketNotFound) as caught:
        store.put_file(source, "m/1/m.tar.gz", sha256=digest)
    assert str(caught.value) == expected
    with pytest.raises(BucketNotFound, match="no-such-bucket"):
        store.check()
    with pytest.raises(BucketNotFound, match="no-such-bucket"):
        store.head("s3://no-such-bucket/m/1/m.tar.gz")
    names = [bucket["Name"] for bucket in seaweedfs.client().list_buckets()["Buckets"]]
    assert "no-such-bucket" not in names


def test_it_reports_a_wrong_secret_key_without_showing_it(
    seaweedfs: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    wrong = "wrong-secret-" + "x" * 20
    store = S3Store(seaweedfs.storage_config(s3_bucket, secret_access_key=wrong))
    source = tmp_path / "m.tar.gz"
    digest = write_random_file(source, 100)
    with pytest.raises(StorageAccessDenied, match="SignatureDoesNotMatch") as upload_error:
        store.put_file(source, "m/1/m.tar.gz", sha256=digest)
    with pytest.raises(StorageAccessDenied) as check_error:
        store.check()
    for error in (upload_error.value, check_error.value):
        assert seaweedfs.endpoint_url in str(error)
        assert wrong not in str(error)
        assert seaweedfs.secret_key not in str(error)
    assert seaweedfs.client().list_objects_v2(Bucket=s3_bucket).get("Contents", []) == []


def test_it_reports_an_unreachable_endpoint(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    config = S3Config(
        endpoint_url=endpoint,
        access_key_id="AKEXAMPLE",
        secret_access_key="secret-value",
        region="us-east-1",
        bucket="models",
        max_attempts=2,
        connect_timeout=0.5,
    )
    store = S3Store(config)
    with pytest.raises(StorageUnavailable, match="unreachable") as caught:
        store.check()
    assert endpoint in str(caught.value)
    assert "secret-value" not in str(caught.value)
    source = tmp_path / "m.tar.gz"
    digest = write_random_file(source, 100)
    with pytest.raises(StorageUnavailable):
        store.put_file(source, "m/1/m.tar.gz", sha256=digest)


# -- retries through a proxy that drops connections (conftest.proxy_factory) ---------------


def test_it_survives_dropped_connections_during_a_multipart_upload(
    seaweedfs: SeaweedS3, s3_bucket: str, tmp_path: Path, proxy_factory
) -> None:
    proxy = proxy_factory(set(), drop_puts={1, 3})
    config = seaweedfs.storage_config(
        s3_bucket,
        endpoint_url=f"http://127.0.0.1:{proxy.port}",
        multipart_threshold=5 * MiB,
        multipart_chunksize=5 * MiB,
        max_attempts=3,
    )
    source = tmp_path / "model.tar.gz"
    digest = write_random_file(source, 12 * MiB)
    progress = ProgressRecorder()

    stored = S3Store(config).put_file(source, "m/1/m.tar.gz", sha256=digest, progress=progress)

    assert proxy.dropped == 2
    assert progress.total == 12 * MiB
    body = seaweedfs.client().get_object(Bucket=s3_bucket, Key="m/1/m.tar.gz")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == digest
    assert stored.sha256 == digest


def test_it_gives_up_when_the_connection_drops_and_no_retry_is_allowed(
    seaweedfs: SeaweedS3, s3_bucket: str, tmp_path: Path, proxy_factory
) -> None:
    proxy = proxy_factory({1})
    config = seaweedfs.storage_config(
        s3_bucket, endpoint_url=f"http://127.0.0.1:{proxy.port}", max_attempts=1
    )
    source = tmp_path / "m.tar.gz"
    digest = write_random_file(source, 1000)
    with pytest.raises(StorageUnavailable):
        S3Store(config).put_file(source, "m/1/m.tar.gz", sha256=digest)
    assert proxy.dropped == 1
    assert seaweedfs.client().list_objects_v2(Bucket=s3_bucket).get("Contents", []) == []


# -- streamed uploads (the packager writes the tarball into the store as it is produced) ------


def test_it_streams_an_upload_into_s3_in_parallel_parts(
    seaweedfs: SeaweedS3, s3_bucket: str
) -> None:
    store = S3Store(
        seaweedfs.storage_config(s3_bucket, multipart_chunksize=5 * MiB, max_concurrency=3)
    )
    data = os.urandom(17 * MiB + 11)
    digest = hashlib.sha256(data).hexdigest()

    upload = store.open_upload("m/1/m.tar.gz", content_type="application/gzip")
    feed(upload, data, 3 * MiB + 1)
    assert not store.exists(upload.url)  # nothing visible before it is complete
    stored = upload.complete(sha256=digest)

    assert stored == StoredObject(url=store.url_for("m/1/m.tar.gz"), size=len(data), sha256=digest)
    head = seaweedfs.client().head_object(Bucket=s3_bucket, Key="m/1/m.tar.gz")
    assert head["ETag"].endswith('-4"')  # 5 + 5 + 5 + 2 MiB parts
    assert head["ContentType"] == "application/gzip"
    body = seaweedfs.client().get_object(Bucket=s3_bucket, Key="m/1/m.tar.gz")["Body"].read()
    assert body == data
    assert store.head(stored.url).size == len(data)


def test_it_streams_an_empty_or_tiny_upload_as_one_part(
    seaweedfs: SeaweedS3, s3_bucket: str
) -> None:
    store = S3Store(seaweedfs.storage_config(s3_bucket))
    upload = store.open_upload("m/1/tiny.bin")
    upload.write(b"tiny")
    stored = upload.complete(sha256=hashlib.sha256(b"tiny").hexdigest())
    body = seaweedfs.client().get_object(Bucket=s3_bucket, Key="m/1/tiny.bin")["Body"].read()
    assert (body, stored.size) == (b"tiny", 4)


def test_it_leaves_nothing_behind_when_a_streamed_upload_is_aborted(
    seaweedfs: SeaweedS3, s3_bucket: str
) -> None:
    store = S3Store(seaweedfs.storage_config(s3_bucket, multipart_chunksize=5 * MiB))
    upload = store.open_upload("m/1/m.tar.gz")
    feed(upload, os.urandom(12 * MiB), MiB)
    upload.abort()

    client = seaweedfs.client()
    assert client.list_objects_v2(Bucket=s3_bucket).get("Contents", []) == []
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    with pytest.raises(StorageError):
        upload.write(b"more")


def test_it_survives_dropped_connections_during_a_streamed_upload(
    seaweedfs: SeaweedS3, s3_bucket: str, proxy_factory
) -> None:
    proxy = proxy_factory(set(), drop_puts={2, 4})
    config = seaweedfs.storage_config(
        s3_bucket,
        endpoint_url=f"http://127.0.0.1:{proxy.port}",
        multipart_chunksize=5 * MiB,
        max_attempts=3,
    )
    data = os.urandom(12 * MiB)
    upload = S3Store(config).open_upload("m/1/m.tar.gz")
    feed(upload, data, MiB)
    upload.complete(sha256=hashlib.sha256(data).hexdigest())

    assert proxy.dropped == 2
    body = seaweedfs.client().get_object(Bucket=s3_bucket, Key="m/1/m.tar.gz")["Body"].read()
    assert body == data


def test_it_reports_an_unreachable_endpoint_when_a_streamed_upload_starts() -> None:
    config = S3Config(
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        access_key_id="AKEXAMPLE",
        secret_access_key="secret-value",
        region="us-east-1",
        bucket="models",
        max_attempts=1,
        connect_timeout=0.5,
    )
    with pytest.raises(StorageUnavailable, match="unreachable") as caught:
        S3Store(config).open_upload("m/1/m.tar.gz")
    assert "secret-value" not in str(caught.value)


def test_a_streamed_upload_keeps_a_copy_of_what_it_is_given(
    seaweedfs: SeaweedS3, s3_bucket: str
) -> None:
    # The packager hands over views of blocks it fills again at once; more parts than can be
    # in flight, so the upload's own part buffers are filled again too.
    store = S3Store(
        seaweedfs.storage_config(s3_bucket, multipart_chunksize=5 * MiB, max_concurrency=1)
    )
    data = os.urandom(31 * MiB + 7)
    scratch = bytearray(MiB + 3)
    upload = store.open_upload("m/1/reused.bin")
    for start in range(0, len(data), len(scratch)):
        piece = data[start : start + len(scratch)]
        scratch[: len(piece)] = piece
        upload.write(memoryview(scratch)[: len(piece)])
        scratch[:] = bytes(len(scratch))  # the caller's buffer, reused
    upload.complete(sha256=hashlib.sha256(data).hexdigest())

    body = seaweedfs.client().get_object(Bucket=s3_bucket, Key="m/1/reused.bin")["Body"].read()
    assert body == data
