"""LocalStore against a real directory."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from aegis_catalog.lib.storage import (
    ChecksumMismatch,
    InvalidStorageKey,
    LocalStore,
    ObjectNotFound,
    StorageFull,
    StorageUnavailable,
    StoredObject,
)
from tests.lib.storage.support import MiB, ProgressRecorder, feed, files_in, write_random_file


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
