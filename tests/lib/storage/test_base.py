"""What both stores share: hashing, URL parsing, choosing the store for a URL, reading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aegis_catalog.lib.storage import (
    InvalidStorageKey,
    LocalStore,
    ObjectNotFound,
    S3Config,
    S3Store,
    parse_url,
    sha256_file,
    store_for_url,
)
from devservers.seaweedfs import SeaweedS3
from tests.lib.storage.support import MiB, files_in, write_random_file


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
