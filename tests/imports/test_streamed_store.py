"""The tarball is streamed into the store while it is packaged; the store stage reuses it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from django.core.management import call_command

from aegis_catalog.lib.storage import LocalStore
from imports import pipeline
from imports.models import ImportRequest
from registry.models import ModelVersion

MiB = 1024 * 1024


def packaged_tarball(tmp_path: Path, store: LocalStore) -> pipeline.Packaged:
    """A tarball in the work dir, streamed into `store` under import 7's key as well."""
    data = os.urandom(3 * MiB)
    digest = hashlib.sha256(data).hexdigest()
    path = tmp_path / "work" / "m-1.tar.gz"
    path.parent.mkdir()
    path.write_bytes(data)
    upload = store.open_upload(f"{pipeline.storage_prefix('m', '1', 7)}/m-1.tar.gz")
    upload.write(data)
    streamed = upload.complete(sha256=digest)
    return pipeline.Packaged(path, digest, len(data), b"{}\n", b"{}\n", artifact=streamed)


def store(store_: LocalStore, packaged: pipeline.Packaged, progress) -> pipeline.Stored:
    return pipeline.store_artifact(
        store_, packaged, {"bundle": 1}, model_name="m", version="1", import_id=7,
        progress=progress,
    )  # fmt: skip


def test_the_store_stage_reuses_the_streamed_tarball(tmp_path):
    artifacts = LocalStore(tmp_path / "artifacts")
    packaged = packaged_tarball(tmp_path, artifacts)
    uploaded: list[tuple[int, int]] = []

    stored = store(artifacts, packaged, lambda done, total: uploaded.append((done, total)))

    assert stored.artifact == packaged.artifact
    assert uploaded == []  # the tarball was not copied a second time
    assert artifacts.exists(stored.attestation.url) and artifacts.exists(stored.record.url)
    assert pipeline.Packaged.from_json(packaged.to_json()) == packaged


def test_the_store_stage_uploads_the_work_copy_when_the_streamed_one_is_gone(tmp_path):
    artifacts = LocalStore(tmp_path / "artifacts")
    packaged = packaged_tarball(tmp_path, artifacts)
    assert packaged.artifact is not None
    artifacts.delete(packaged.artifact.url)
    uploaded: list[tuple[int, int]] = []

    stored = store(artifacts, packaged, lambda done, total: uploaded.append((done, total)))

    assert stored.artifact.url == packaged.artifact.url
    assert uploaded[-1] == (packaged.size, packaged.size)
    local = Path(stored.artifact.url.removeprefix("file://"))
    assert local.read_bytes() == packaged.path.read_bytes()


@pytest.mark.django_db
def test_an_s3_import_streams_the_tarball_once_and_records_it(aegis_s3, seaweedfs):
    aegis_s3.settings.AEGIS_STREAM_UPLOADS = True
    call_command(
        "hf_import", "--repo-id", "acme/tiny-bert", "--model-name", "tiny-bert",
        "--version", "1.0", "--upload-s3", "--register", "--no-progress",
    )  # fmt: skip

    version = ModelVersion.objects.get()
    request = ImportRequest.objects.get()
    assert request.state["package"]["artifact"]["url"] == version.model_path
    bucket, key = version.model_path.removeprefix("s3://").split("/", 1)
    head = seaweedfs.client().head_object(Bucket=bucket, Key=key)
    # Streamed as a multipart upload, not uploaded again from the file (which sets metadata).
    assert head["Metadata"] == {}
    assert head["ContentType"] == "application/gzip"
    assert head["ContentLength"] == version.size
    body = seaweedfs.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == version.sha256


@pytest.mark.django_db
def test_with_streaming_off_the_store_stage_uploads_the_tarball(aegis_s3, seaweedfs):
    aegis_s3.settings.AEGIS_STREAM_UPLOADS = False
    call_command(
        "hf_import", "--repo-id", "acme/tiny-bert", "--model-name", "tiny-bert",
        "--version", "1.0", "--upload-s3", "--register", "--no-progress",
    )  # fmt: skip

    version = ModelVersion.objects.get()
    assert ImportRequest.objects.get().state["package"]["artifact"] is None
    bucket, key = version.model_path.removeprefix("s3://").split("/", 1)
    head = seaweedfs.client().head_object(Bucket=bucket, Key=key)
    assert head["Metadata"] == {"sha256": version.sha256}  # put_file's upload, after packaging
