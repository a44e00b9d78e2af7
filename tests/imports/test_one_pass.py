"""The one-pass import: download, check, scan and package at once, the tarball streamed into
the store as it is written; a failure anywhere leaves nothing in the store."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile

import pytest

from aegis_catalog import services
from aegis_catalog.lib import storage
from aegis_catalog.lib.hub import feed
from devservers.hub_double import safetensors_bytes
from imports import actions
from imports.actions import ImportOptions
from imports.jobs import run_import
from imports.models import ImportRequest
from imports.rebuild import rebuild_version
from imports.workdirs import work_dir_of
from registry.models import ModelVersion

pytestmark = pytest.mark.django_db
MiB = 1024 * 1024


class RunsCode:
    """Pickles to a call of os.system (never unpickled here)."""

    def __reduce__(self):
        return (os.system, ("echo owned-by-pickle",))


@pytest.fixture
def one_pass(aegis_s3, fresh_hub_double, monkeypatch):
    """S3 (SeaweedFS) as the store, a Hub double of the test's own, 1 MiB download chunks (so
    files arrive in several ranged pieces, several at once)."""
    aegis_s3.settings.HF_ENDPOINT = fresh_hub_double.url
    aegis_s3.settings.AEGIS_ONE_PASS_IMPORT = True
    monkeypatch.setattr(feed, "DEFAULT_CHUNK_SIZE", MiB)
    return fresh_hub_double


def start(repo_id: str, name: str) -> ImportRequest:
    request = actions.start_import(
        ImportOptions(repo_id, name, "1", upload_s3=True, register=True),
        actor="alice",
        enqueue=False,
    )
    run_import(request.pk)
    request.refresh_from_db()
    return request


def retried(request: ImportRequest) -> ImportRequest:
    actions.retry_import(request, actor="alice", enqueue=False)
    run_import(request.pk)
    request.refresh_from_db()
    return request


def bucket_contents(seaweedfs, bucket: str) -> tuple[list[str], list[str]]:
    """Keys of the objects and of the unfinished multipart uploads in the bucket."""
    client = seaweedfs.client()
    objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [item["Key"] for item in objects], [item["Key"] for item in uploads]


def counting_writes(monkeypatch) -> list[int]:
    """Bytes handed to S3 multipart uploads, per write."""
    written: list[int] = []
    real_write = storage.S3Upload.write

    def write(self, data):
        written.append(len(data))
        return real_write(self, data)

    monkeypatch.setattr(storage.S3Upload, "write", write)
    return written


def test_a_one_pass_import_stores_the_tarball_it_streamed_and_the_files_check_out(
    one_pass, seaweedfs
):
    files: dict[str, str | bytes] = {
        "config.json": '{"model_type": "bert"}',
        "model-00001-of-00002.safetensors": os.urandom(3 * MiB + 123),
        "model-00002-of-00002.safetensors": os.urandom(2 * MiB),
        "tokenizer/vocab.txt": "hello\nworld\n" * 1000,
    }
    one_pass.add_repo("acme/shards", files, card_data={"license": "mit"})

    request = start("acme/shards", "shards")

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    version = ModelVersion.objects.get()
    bucket, key = version.model_path.removeprefix("s3://").split("/", 1)
    body = seaweedfs.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == version.sha256
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        for path, content in files.items():
            member = tar.extractfile(f"shards-1/model/{path}")
            assert member is not None
            expected = content.encode() if isinstance(content, str) else content
            assert member.read() == expected, path
    manifest = {item["path"]: item["sha256"] for item in version.manifest}
    second = files["model-00002-of-00002.safetensors"]
    assert isinstance(second, bytes)
    assert manifest["model-00002-of-00002.safetensors"] == hashlib.sha256(second).hexdigest()
    # Several ranged GETs for the 3 MiB shard: it arrived in pieces, read as they came.
    assert one_pass.body_fetches("acme/shards", "model-00001-of-00002.safetensors") == 4
    assert bucket_contents(seaweedfs, bucket)[1] == []
    assert rebuild_version(version).reproduced


def test_a_digest_mismatch_mid_stream_aborts_the_upload_and_names_the_file(
    one_pass, seaweedfs, s3_bucket, monkeypatch
):
    one_pass.add_repo(
        "acme/tampered",
        {
            "a-first.safetensors": os.urandom(20 * MiB),
            "b-tampered.safetensors": os.urandom(2 * MiB),
            "c-last.safetensors": os.urandom(2 * MiB),
        },
        card_data={"license": "mit"},
    )
    one_pass.corrupt("acme/tampered", "b-tampered.safetensors")
    written = counting_writes(monkeypatch)

    request = start("acme/tampered", "tampered")

    assert request.status == ImportRequest.Status.FAILED
    assert request.error_code == "digest_mismatch"
    assert "b-tampered.safetensors" in request.error
    assert "differs from the Hub's LFS sha256" in request.error
    assert sum(written) > 8 * MiB  # a part (8 MiB) of the tarball had gone to S3 already
    assert bucket_contents(seaweedfs, s3_bucket) == ([], [])
    assert not ModelVersion.objects.exists()


def test_a_dangerous_pickle_in_the_last_file_aborts_the_upload(
    one_pass, seaweedfs, s3_bucket, monkeypatch
):
    one_pass.add_repo(
        "acme/pickled",
        {
            "a-weights.safetensors": os.urandom(20 * MiB),
            "z-last.bin": pickle.dumps({"weights": RunsCode()}),
        },
        card_data={"license": "mit"},
    )
    written = counting_writes(monkeypatch)

    request = start("acme/pickled", "pickled")

    assert request.status == ImportRequest.Status.FAILED
    assert request.error_code == "policy:dangerous_pickle"
    assert "z-last.bin" in request.error and "os.system" in request.error
    assert sum(written) > 8 * MiB  # a part (8 MiB) of the tarball had gone to S3 already
    assert bucket_contents(seaweedfs, s3_bucket) == ([], [])
    assert not ModelVersion.objects.exists()


def test_a_dangerous_pickle_stops_the_download_of_the_files_after_it(
    one_pass, seaweedfs, s3_bucket
):
    one_pass.add_repo(
        "acme/pickled-first",
        {
            "a-first.bin": pickle.dumps({"weights": RunsCode()}),
            "b-weights.safetensors": os.urandom(24 * MiB),
        },
        card_data={"license": "mit"},
    )
    one_pass.throttle_bytes_per_second = 4 * MiB  # the 24 MiB would take six seconds

    request = start("acme/pickled-first", "pickled-first")

    assert request.error_code == "policy:dangerous_pickle"
    assert "a-first.bin" in request.error
    # Judged as soon as it arrived: most of the weights' 24 chunks were never asked for.
    assert one_pass.body_fetches("acme/pickled-first", "b-weights.safetensors") < 16
    assert bucket_contents(seaweedfs, s3_bucket) == ([], [])


def test_an_unfinished_upload_of_an_earlier_attempt_is_discarded_by_the_retry(
    one_pass, seaweedfs, s3_bucket
):
    one_pass.add_repo(
        "acme/retried", {"model.safetensors": os.urandom(MiB)}, card_data={"license": "mit"}
    )
    request = actions.start_import(
        ImportOptions("acme/retried", "retried", "1", upload_s3=True, register=True),
        actor="alice",
        enqueue=False,
    )
    store = storage.S3Store(services.s3_config())
    # What a worker killed mid-stream leaves: an upload opened, parts sent, never completed.
    abandoned = store.open_upload(f"retried/1/import-{request.pk}/retried-1.tar.gz")
    abandoned.write(os.urandom(6 * MiB))
    assert len(bucket_contents(seaweedfs, s3_bucket)[1]) == 1

    run_import(request.pk)
    request.refresh_from_db()

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    objects, uploads = bucket_contents(seaweedfs, s3_bucket)
    assert uploads == []
    assert f"models/retried/1/import-{request.pk}/retried-1.tar.gz" in objects


def test_the_hub_failing_mid_stream_aborts_the_upload_and_a_retry_fetches_only_the_rest(
    one_pass, seaweedfs, s3_bucket
):
    one_pass.add_repo(
        "acme/flaky",
        {"a.safetensors": os.urandom(12 * MiB), "b.safetensors": os.urandom(3 * MiB)},
        card_data={"license": "mit"},
    )
    one_pass.inject_fault(500, times=None, path_contains="b.safetensors", methods=("GET",))

    request = start("acme/flaky", "flaky")

    assert request.status == ImportRequest.Status.FAILED
    assert request.stage == "stream"
    assert "b.safetensors" in request.error and "500" in request.error
    assert bucket_contents(seaweedfs, s3_bucket) == ([], [])

    one_pass.clear_faults()
    request = retried(request)
    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    assert one_pass.body_fetches("acme/flaky", "a.safetensors") == 12  # once, in 12 chunks
    assert rebuild_version(ModelVersion.objects.get()).reproduced


def test_a_store_that_will_not_list_uploads_does_not_stop_the_import(
    one_pass, seaweedfs, monkeypatch, caplog
):
    one_pass.add_repo("acme/listless", {"a.safetensors": os.urandom(MiB)})

    def refused(self, key):
        raise storage.StorageError("AccessDenied: s3:ListBucketMultipartUploads (injected)")

    monkeypatch.setattr(storage.S3Store, "discard_unfinished_uploads", refused)
    request = start("acme/listless", "listless")

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    assert "could not look for unfinished uploads" in caplog.text


def test_many_small_files_an_empty_one_and_folders_pass_in_order(one_pass, seaweedfs):
    files: dict[str, str | bytes] = {
        f"d{index % 3}/f{index:03d}.txt": os.urandom(index * 977) for index in range(40)
    }
    files.update(
        {f"w{index}.safetensors": os.urandom(MiB * (index + 1) + index) for index in range(3)}
    )
    files["__init__.py"] = b""  # empty files are common (packages, .gitkeep)
    one_pass.add_repo("acme/many", files, card_data={"license": "mit"})

    request = start("acme/many", "many")

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    assert rebuild_version(ModelVersion.objects.get()).reproduced


def test_proven_safetensors_stay_in_memory_and_a_retry_fetches_them_again(
    one_pass, seaweedfs, s3_bucket
):
    proven = safetensors_bytes(1, (768, 1024))  # 3 MiB of float32 and a little
    files: dict[str, str | bytes] = {
        "a.safetensors": proven,  # its header, in its first chunk, proves it
        "b.safetensors": os.urandom(2 * MiB),  # not safetensors: scanned from the work copy
        "config.json": '{"model_type": "bert"}',
        "z.txt": "the last file",
    }
    one_pass.add_repo("acme/kept", files, card_data={"license": "mit"})
    one_pass.inject_fault(500, times=None, path_contains="z.txt", methods=("GET",))

    request = start("acme/kept", "kept")

    assert request.status == ImportRequest.Status.FAILED
    assert "z.txt" in request.error
    snapshot = work_dir_of(request.pk) / "snapshot"
    on_disk = {p.name for p in snapshot.iterdir() if p.is_file()}
    assert {"b.safetensors", "config.json"} <= on_disk
    assert not {name for name in on_disk if name.startswith("a.safetensors")}  # nor a .part
    assert bucket_contents(seaweedfs, s3_bucket) == ([], [])

    one_pass.clear_faults()
    request = retried(request)

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    assert one_pass.body_fetches("acme/kept", "a.safetensors") == 2 * 4  # again, 4 chunks
    assert one_pass.body_fetches("acme/kept", "b.safetensors") == 2  # once (2 chunks): from disk
    version = ModelVersion.objects.get()
    assert rebuild_version(version).reproduced
    manifest = {item["path"]: item["sha256"] for item in version.manifest}
    assert manifest["a.safetensors"] == hashlib.sha256(proven).hexdigest()
    findings = version.import_options["policy"]["findings"]
    [malformed] = [item for item in findings if item["rule"] == "malformed_weights"]
    assert "b.safetensors" in malformed["reason"] and "a.safetensors" not in malformed["reason"]
