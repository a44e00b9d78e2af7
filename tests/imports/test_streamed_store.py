"""With the stages one after the other (AEGIS_ONE_PASS_IMPORT off), the tarball is streamed
into the store while it is packaged; the store stage reuses it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from unittest import mock

import pytest
from django.core.management import call_command

from aegis_catalog.lib import storage
from aegis_catalog.lib.storage import LocalStore
from aegis_catalog.lib.vault import VaultUnreachable
from imports import actions, pipeline
from imports.actions import ImportOptions
from imports.jobs import run_import
from imports.models import ImportRequest
from registry.models import ModelVersion

MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def stages_one_after_the_other(settings):
    settings.AEGIS_ONE_PASS_IMPORT = False


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
    return pipeline.Packaged(path, digest, len(data), b"{}\n", artifact=streamed)


def store(store_: LocalStore, packaged: pipeline.Packaged, progress) -> pipeline.Stored:
    return pipeline.store_artifact(
        store_, packaged, {"bundle": 1}, {"model": 1}, model_name="m", version="1", import_id=7,
        progress=progress,
    )  # fmt: skip


def import_tiny_bert_to_s3() -> None:
    call_command(
        "hf_import", "--repo-id", "acme/tiny-bert", "--model-name", "tiny-bert",
        "--version", "1.0", "--upload-s3", "--register", "--no-progress",
    )  # fmt: skip


def test_the_store_stage_reuses_the_streamed_tarball(tmp_path):
    artifacts = LocalStore(tmp_path / "artifacts")
    packaged = packaged_tarball(tmp_path, artifacts)
    uploaded: list[tuple[int, int]] = []

    stored = store(artifacts, packaged, lambda done, total: uploaded.append((done, total)))

    assert stored.artifact == packaged.artifact
    assert uploaded == []  # the tarball was not copied a second time
    assert artifacts.exists(stored.attestation.url) and artifacts.exists(stored.record.url)
    assert stored.model_signature is not None
    assert stored.model_signature.url == stored.artifact.url + ".model.sig"
    assert artifacts.exists(stored.model_signature.url)
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
    assert packaged.path is not None
    assert local.read_bytes() == packaged.path.read_bytes()


def test_a_tarball_only_streamed_is_reused_by_the_store_stage_and_named_when_gone(tmp_path):
    artifacts = LocalStore(tmp_path / "artifacts")
    with_copy = packaged_tarball(tmp_path, artifacts)
    packaged = pipeline.Packaged(
        None, with_copy.sha256, with_copy.size, b"{}\n",
        artifact=with_copy.artifact, name="m-1.tar.gz",
    )  # fmt: skip
    assert pipeline.Packaged.from_json(packaged.to_json()) == packaged

    stored = store(artifacts, packaged, lambda done, total: None)
    assert stored.artifact == packaged.artifact

    assert packaged.artifact is not None
    artifacts.delete(packaged.artifact.url)
    with pytest.raises(pipeline.StoreError, match="no longer there; retry the import"):
        store(artifacts, packaged, lambda done, total: None)


def test_a_packaged_tarball_is_in_the_work_directory_or_the_store():
    with pytest.raises(ValueError, match="work directory, the store, or both"):
        pipeline.Packaged(None, "0" * 64, 1, b"{}", name="m-1.tar.gz")


@pytest.mark.django_db
def test_an_s3_import_streams_the_tarball_once_and_records_it(aegis_s3, seaweedfs):
    aegis_s3.settings.AEGIS_STREAM_UPLOADS = True
    import_tiny_bert_to_s3()

    version = ModelVersion.objects.get()
    request = ImportRequest.objects.get()
    assert request.state["package"]["artifact"]["url"] == version.model_path
    assert request.state["package"]["path"] is None  # no copy written to the work directory
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
    import_tiny_bert_to_s3()

    version = ModelVersion.objects.get()
    assert ImportRequest.objects.get().state["package"]["artifact"] is None
    bucket, key = version.model_path.removeprefix("s3://").split("/", 1)
    head = seaweedfs.client().head_object(Bucket=bucket, Key=key)
    assert head["Metadata"] == {"sha256": version.sha256}  # put_file's upload, after packaging


@pytest.mark.django_db
def test_a_stream_failing_midway_is_aborted_and_the_tarball_uploaded_from_a_work_copy(
    aegis_s3, seaweedfs, monkeypatch, caplog
):
    aegis_s3.settings.AEGIS_STREAM_UPLOADS = True
    aegis_s3.settings.AEGIS_S3_MAX_ATTEMPTS = 1
    writes = []
    real_write = storage.S3Upload.write

    def failing_write(self, data):
        writes.append(len(data))
        if len(writes) == 2:
            raise storage.StorageUnavailable("S3 dropped the connection (injected)")
        return real_write(self, data)

    monkeypatch.setattr(storage.S3Upload, "write", failing_write)
    import_tiny_bert_to_s3()

    version = ModelVersion.objects.get()
    state = ImportRequest.objects.get().state["package"]
    assert state["artifact"] is None and state["path"].endswith("tiny-bert-1.0.tar.gz")
    assert "packaging tiny-bert-1.0.tar.gz again into the work directory" in caplog.text
    client = seaweedfs.client()
    bucket, key = version.model_path.removeprefix("s3://").split("/", 1)
    assert client.head_object(Bucket=bucket, Key=key)["Metadata"] == {"sha256": version.sha256}
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == version.sha256
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.django_db(transaction=True)
def test_a_retry_after_the_attest_stage_failed_reuses_the_streamed_tarball(
    aegis_s3, seaweedfs, monkeypatch
):
    aegis_s3.settings.AEGIS_STREAM_UPLOADS = True
    request = actions.start_import(
        ImportOptions(repo_id="acme/tiny-bert", model_name="tiny-bert", version="1.0",
                      upload_s3=True),
        actor="alice", enqueue=False,
    )  # fmt: skip
    real_attest = pipeline.attest_artifact
    monkeypatch.setattr(
        pipeline, "attest_artifact", mock.Mock(side_effect=VaultUnreachable("Vault is down"))
    )
    run_import(request.pk)
    request.refresh_from_db()
    assert request.status == ImportRequest.Status.FAILED and request.stage == "attest"
    streamed = request.state["package"]["artifact"]["url"]

    monkeypatch.setattr(pipeline, "attest_artifact", real_attest)
    packaged = mock.Mock(wraps=pipeline.package_artifact)
    monkeypatch.setattr(pipeline, "package_artifact", packaged)
    actions.retry_import(request, actor="alice", enqueue=False)
    run_import(request.pk)
    request.refresh_from_db()

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    assert not packaged.called  # the tarball in the store was reused, not packaged again
    assert ModelVersion.objects.get().model_path == streamed
