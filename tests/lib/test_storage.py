"""Artifact storage against a real directory and a real S3 server (SeaweedFS `weed mini`)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegis_catalog.lib.storage import (
    BucketNotFound,
    ChecksumMismatch,
    InvalidStorageKey,
    LocalStore,
    ObjectNotFound,
    S3Config,
    S3Store,
    StorageAccessDenied,
    StorageError,
    StorageFull,
    StorageUnavailable,
    StoredObject,
    parse_url,
    sha256_file,
    store_for_url,
)
from devservers.seaweedfs import SeaweedS3

MiB = 1024 * 1024


def write_random_file(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def files_in(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


class ProgressRecorder:
    def __init__(self) -> None:
        self.total = 0
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, amount: int) -> None:
        with self.lock:
            self.total += amount
            self.calls += 1


# -- helpers --------------------------------------------------------------------------------


def test_it_hashes_files_in_chunks_like_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    expected = write_random_file(path, 3 * MiB + 17)
    assert sha256_file(path) == expected


def test_it_parses_file_and_s3_urls() -> None:
    assert parse_url("file:///srv/a%20b/x.tar.gz").path == Path("/srv/a b/x.tar.gz")
    parsed = parse_url("s3://models/team/bert/1/bert-1.tar.gz")
    assert (parsed.scheme, parsed.bucket, parsed.key) == (
        "s3",
        "models",
        "team/bert/1/bert-1.tar.gz",
    )
    for bad in ("http://x/y", "s3://bucket-only", "s3:///key", "file://otherhost/x", "relative"):
        with pytest.raises(InvalidStorageKey):
            parse_url(bad)


def test_it_picks_the_store_from_the_url(tmp_path: Path) -> None:
    local = store_for_url((tmp_path / "a/b.tar.gz").as_uri(), local_root=tmp_path, s3=None)
    assert isinstance(local, LocalStore)
    assert local.root == tmp_path

    config = S3Config(endpoint_url="http://127.0.0.1:1", bucket="current", prefix="p")
    remote = store_for_url("s3://older/p/x.tar.gz", local_root=None, s3=config)
    assert isinstance(remote, S3Store)
    assert remote.bucket == "older"
    assert remote.config.endpoint_url == "http://127.0.0.1:1"
    same = store_for_url("s3://current/p/x.tar.gz", local_root=None, s3=config)
    assert isinstance(same, S3Store)
    assert same.url_for("x.tar.gz") == "s3://current/p/x.tar.gz"


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


# -- local directory ------------------------------------------------------------------------


def test_it_stores_reads_and_deletes_a_local_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "artifacts")
    source = tmp_path / "model.tar.gz"
    digest = write_random_file(source, 2 * MiB + 5)
    progress = ProgressRecorder()

    stored = store.put_file(source, "bert/1/bert-1.tar.gz", sha256=digest, progress=progress)

    target = tmp_path / "artifacts" / "bert" / "1" / "bert-1.tar.gz"
    assert stored == StoredObject(url=target.as_uri(), size=2 * MiB + 5, sha256=digest)
    assert stored.url.startswith("file:///")
    assert target.read_bytes() == source.read_bytes()
    assert progress.total == 2 * MiB + 5
    assert store.url_for("bert/1/bert-1.tar.gz") == stored.url
    assert store.head(stored.url).size == 2 * MiB + 5
    assert store.exists(stored.url)

    copy = store.download(stored.url, tmp_path / "out" / "copy.tar.gz", expected_sha256=digest)
    assert copy.read_bytes() == source.read_bytes()

    store.delete(stored.url)
    store.delete(stored.url)  # a second delete is not an error
    assert not store.exists(stored.url)
    with pytest.raises(ObjectNotFound, match="does not exist"):
        store.head(stored.url)
    with pytest.raises(ObjectNotFound):
        store.download(stored.url, tmp_path / "missing")
    assert files_in(tmp_path / "artifacts") == []  # empty folders were removed too


def test_it_stores_bytes_locally_with_their_digest(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    stored = store.put_bytes(b'{"repo": "org/m"}', "m/1/aegis.json")
    assert stored.sha256 == hashlib.sha256(b'{"repo": "org/m"}').hexdigest()
    assert (tmp_path / "m/1/aegis.json").read_bytes() == b'{"repo": "org/m"}'
    with pytest.raises(ChecksumMismatch):
        store.put_bytes(b"other", "m/1/other.json", sha256="0" * 64)
    assert not (tmp_path / "m/1/other.json").exists()


def test_it_refuses_a_file_whose_digest_differs_and_writes_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "artifacts")
    source = tmp_path / "model.tar.gz"
    write_random_file(source, MiB)
    with pytest.raises(ChecksumMismatch, match="nothing was written"):
        store.put_file(source, "m/1/m.tar.gz", sha256="a" * 64)
    assert files_in(tmp_path / "artifacts") == ["m", "m/1"]


def test_it_reports_a_full_disk_and_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "artifacts")
    store.put_bytes(b"version one", "m/1/m.tar.gz")
    source = tmp_path / "model.tar.gz"
    digest = write_random_file(source, 3 * MiB)
    real_write = os.write
    calls = []

    def write_until_full(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) > 1:  # the first chunk lands, the second finds the disk full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write_until_full)
    with pytest.raises(StorageFull, match="no space left") as caught:
        store.put_file(source, "m/1/m.tar.gz", sha256=digest)
    monkeypatch.undo()

    assert "m/1/m.tar.gz" in str(caught.value)
    assert len(calls) == 2
    assert (tmp_path / "artifacts/m/1/m.tar.gz").read_bytes() == b"version one"
    assert files_in(tmp_path / "artifacts") == ["m", "m/1", "m/1/m.tar.gz"]  # no temp file


def test_it_refuses_keys_that_escape_the_root(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    store = LocalStore(root)
    for key in ("../evil", "/etc/passwd", "a/../../evil", "a//b", "a/./b", "", "a\\b", "a/\nb"):
        with pytest.raises(InvalidStorageKey):
            store.put_bytes(b"x", key)
    (root / "m").mkdir(parents=True)
    (root / "m" / "link").symlink_to(tmp_path)  # a symlink inside root pointing outside it
    with pytest.raises(InvalidStorageKey, match="outside"):
        store.put_bytes(b"x", "m/link/evil")
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"keep me")
    with pytest.raises(InvalidStorageKey):
        store.delete(outside.as_uri())
    with pytest.raises(InvalidStorageKey):
        store.delete((root / ".." / "outside.txt").as_uri())
    with pytest.raises(InvalidStorageKey):
        store.head("s3://bucket/key")
    assert outside.read_bytes() == b"keep me"
    assert not (tmp_path / "evil").exists()


def test_it_checks_the_directory_is_writable(tmp_path: Path) -> None:
    LocalStore(tmp_path / "new" / "artifacts").check()
    assert files_in(tmp_path / "new" / "artifacts") == []
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(StorageUnavailable, match="a-file"):
        LocalStore(tmp_path / "a-file").check()


# -- S3 against SeaweedFS ------------------------------------------------------------------


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


def test_both_stores_open_an_object_for_reading_without_copying_it(
    seaweedfs: SeaweedS3, s3_bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(3 * MiB + 7)
    for store in (LocalStore(tmp_path / "artifacts"), S3Store(seaweedfs.storage_config(s3_bucket))):
        stored = store.put_bytes(data, "m/1/m.tar.gz")
        stream, size = store.open_read(stored.url)
        with stream:
            assert size == len(data)
            assert stream.read(5) == data[:5]  # the start arrives before the rest is read
            assert stream.read() == data[5:]
        with pytest.raises(ObjectNotFound, match="does not exist"):
            store.open_read(store.url_for("m/1/missing.tar.gz"))
    assert files_in(tmp_path) == [
        "artifacts",
        "artifacts/m",
        "artifacts/m/1",
        "artifacts/m/1/m.tar.gz",
    ]
    with pytest.raises(InvalidStorageKey):
        LocalStore(tmp_path / "artifacts").open_read((tmp_path / "elsewhere").as_uri())


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


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


# -- retries through a proxy that drops connections --------------------------------------------


class DroppingProxy:
    """A TCP proxy to the S3 server that drops chosen requests without answering: a transient
    network failure. ``drop`` counts connections (1 = the first), closed as soon as their first
    request starts arriving; ``drop_puts`` counts PUT requests (part and object uploads) over
    all connections, whichever connection carries them, so it does not depend on how many
    connections the client happens to open or reuse."""

    def __init__(
        self, target_port: int, drop: set[int], drop_puts: set[int] | frozenset[int] = frozenset()
    ) -> None:
        self.target_port = target_port
        self.drop = drop
        self.drop_puts = drop_puts
        self.connections = 0
        self.puts = 0
        self.dropped = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.accept_forever, daemon=True)
        self.thread.start()

    def accept_forever(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            if self.connections in self.drop:
                client.recv(1024)
                client.close()
                self.dropped += 1
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for source, sink, requests in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self.pump, args=(source, sink, requests), daemon=True
                ).start()

    def drops(self, data: bytes) -> bool:
        # HTTP/1.1 without pipelining: a request on a kept-alive connection starts a new read.
        if not data.startswith(b"PUT "):
            return False
        with self.lock:
            self.puts += 1
            if self.puts not in self.drop_puts:
                return False
            self.dropped += 1
            return True

    def pump(self, source: socket.socket, sink: socket.socket, requests: bool) -> None:
        try:
            while data := source.recv(65536):
                if requests and self.drops(data):
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def proxy_factory(seaweedfs: SeaweedS3) -> Iterator[object]:
    proxies: list[DroppingProxy] = []
    port = int(seaweedfs.endpoint_url.rsplit(":", 1)[1])

    def make(drop: set[int], drop_puts: set[int] | frozenset[int] = frozenset()) -> DroppingProxy:
        proxy = DroppingProxy(port, drop, drop_puts)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


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


def feed(upload, data: bytes, piece: int) -> None:
    for start in range(0, len(data), piece):
        upload.write(data[start : start + piece])


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


def test_it_streams_an_upload_into_a_local_directory_atomically(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "artifacts")
    data = os.urandom(3 * MiB + 5)
    digest = hashlib.sha256(data).hexdigest()

    upload = store.open_upload("m/1/m.tar.gz")
    feed(upload, data, MiB)
    assert not store.exists(upload.url)
    stored = upload.complete(sha256=digest)

    assert stored == StoredObject(url=store.url_for("m/1/m.tar.gz"), size=len(data), sha256=digest)
    assert (tmp_path / "artifacts" / "m" / "1" / "m.tar.gz").read_bytes() == data
    aborted = store.open_upload("m/2/m.tar.gz")
    aborted.write(b"partial")
    aborted.abort()
    assert files_in(tmp_path / "artifacts") == ["m", "m/1", "m/1/m.tar.gz", "m/2"]
