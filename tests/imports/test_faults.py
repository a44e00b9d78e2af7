"""Failing services in the middle of an import, produced for real: OpenBao and SeaweedFS
processes stopped and restarted, the Hub double answering 429/500, a worker process killed
between storing and registering. Each test checks the final state, the message and that a
retry after recovery completes without fetching or uploading again what was already done."""

from __future__ import annotations

import html
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from devservers.hub_double import demo_repos
from imports import actions
from imports.actions import ImportOptions, fail_stale_imports
from imports.jobs import run_import
from imports.models import ImportRequest
from registry.models import ModelVersion
from tests.factories import make_user

# transaction=True: the runner's progress thread writes through its own connection.
pytestmark = pytest.mark.django_db(transaction=True)

REPO = "acme/tiny-bert"
BASE_DIR = Path(__file__).resolve().parents[2]


def queued_import(**overrides) -> ImportRequest:
    values: dict[str, Any] = {"repo_id": REPO, "model_name": "tiny-bert", "version": "1.0"}
    values.update(overrides)
    return actions.start_import(ImportOptions(**values), actor="alice", enqueue=False)


def run_once(request: ImportRequest, on_progress=None) -> ImportRequest:
    run_import(request.pk, on_progress=on_progress)
    request.refresh_from_db()
    return request


def retry(request: ImportRequest) -> ImportRequest:
    actions.retry_import(request, actor="alice", enqueue=False)
    return run_once(request)


def at_first(stage: str, action):
    """An on_progress hook that runs `action` once, when `stage` first reports progress."""
    done: list[bool] = []

    def hook(current: str, _done: int, _total: int) -> None:
        if current == stage and not done:
            done.append(True)
            action()

    return hook


def assert_only_the_shard_fetched_again(hub, repo_id: str = REPO) -> None:
    """The retry read every file from the work directory but the safetensors shard, which the
    pass kept in memory only (its header proved it): that one was fetched again."""
    fetches = {path: hub.body_fetches(repo_id, path) for path in hub.files(repo_id)}
    assert fetches.pop("model.safetensors") == 2, fetches
    assert set(fetches.values()) == {1}, fetches


@pytest.fixture
def hub(aegis, fresh_hub_double):
    """A Hub double of the test's own with the demo repos, so its request log is the test's."""
    demo_repos(fresh_hub_double)
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    return fresh_hub_double


def assert_shown(request: ImportRequest, *phrases: str) -> None:
    """The import's page shows its error, and says a retry is possible."""
    viewer = Client()
    viewer.force_login(make_user(f"importer-{request.pk}-{request.attempts}", "importer"))
    page = viewer.get(f"/imports/{request.pk}/").content.decode()
    assert html.escape(request.error) in page
    for phrase in phrases:
        assert phrase in page
    assert f'action="/imports/{request.pk}/retry/"' in page


def stored_files(root: Path) -> list[Path]:
    return sorted(path for path in Path(root).rglob("*") if path.is_file())


# ---- Vault -----------------------------------------------------------------------------------


def test_vault_stopped_during_an_import_fails_signing_and_a_retry_fetches_only_the_shard(
    aegis, hub, persistent_openbao
):
    vault = persistent_openbao
    aegis.settings.VAULT_ADDR = vault.addr
    aegis.settings.VAULT_TOKEN = vault.root_token
    request = queued_import()

    # Vault goes away while the files are downloaded, checked and packaged (its key was read).
    request = run_once(request, on_progress=at_first("stream", vault.stop))

    assert request.status == ImportRequest.Status.FAILED
    assert request.stage == "sign_model"
    assert f"Vault at {vault.addr} is unreachable" in request.error
    assert vault.root_token not in request.error
    assert not ModelVersion.objects.exists()
    assert not stored_files(aegis.artifact_root)
    assert_shown(request, "Vault at")

    vault.restart()
    request = retry(request)

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    assert_only_the_shard_fetched_again(hub)  # the rest packaged from the work directory
    assert "resolve" in set(
        request.events.filter(kind="stage_skipped").values_list("stage", flat=True)
    )
    version = ModelVersion.objects.get()
    assert (
        version.signing_key.public_key_pem
        == vault.read_key("aegis-model-sign")["keys"]["1"]["public_key"]
    )


def test_a_vault_token_revoked_during_an_import_is_named_and_a_new_token_completes_it(aegis, hub):
    vault = aegis.openbao
    token = vault.create_token()
    aegis.settings.VAULT_TOKEN = token
    request = queued_import()

    def revoke() -> None:
        vault.api("POST", "auth/token/revoke", {"token": token})

    request = run_once(request, on_progress=at_first("stream", revoke))

    assert request.status == ImportRequest.Status.FAILED
    assert request.stage == "sign_model"
    assert f"Vault at {vault.addr}" in request.error
    assert "permission denied" in request.error
    assert token not in request.error
    assert_shown(request, "permission denied")

    aegis.settings.VAULT_TOKEN = vault.create_token()
    request = retry(request)
    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    assert_only_the_shard_fetched_again(hub)


def test_a_vault_policy_without_signing_is_reported_as_such(aegis, hub):
    vault = aegis.openbao
    vault.write_policy("read-only-keys", 'path "transit/keys/*" { capabilities = ["read"] }')
    aegis.settings.VAULT_TOKEN = vault.create_token(["read-only-keys"])

    request = run_once(queued_import())

    assert request.status == ImportRequest.Status.FAILED
    assert request.stage == "sign_model"
    assert "permission denied" in request.error
    assert "aegis-model-sign" in request.error
    assert not ModelVersion.objects.exists()


# ---- S3 --------------------------------------------------------------------------------------


@pytest.fixture
def s3_environment(aegis, private_seaweedfs):
    s3 = private_seaweedfs
    bucket = s3.create_bucket()
    settings = aegis.settings
    settings.AWS_ENDPOINT_URL_S3 = s3.endpoint_url
    settings.AWS_ACCESS_KEY_ID = s3.access_key
    settings.AWS_SECRET_ACCESS_KEY = s3.secret_key
    settings.AWS_SESSION_TOKEN = None
    settings.AWS_REGION = "us-east-1"
    settings.AEGIS_S3_BUCKET = bucket
    settings.AEGIS_S3_PREFIX = "models"
    settings.AEGIS_S3_MAX_ATTEMPTS = 2
    return s3, bucket


def bucket_keys(s3, bucket: str) -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_s3_stopped_during_the_upload_fails_the_import_and_a_retry_uploads_it(
    aegis, s3_environment, hub
):
    s3, bucket = s3_environment
    request = queued_import(upload_s3=True)

    request = run_once(request, on_progress=at_first("stream", s3.stop))

    assert request.status == ImportRequest.Status.FAILED
    assert request.stage == "stream"
    assert s3.endpoint_url in request.error
    assert "unreachable" in request.error
    assert "2 attempts" in request.error
    assert s3.secret_key not in request.error
    assert not ModelVersion.objects.exists()
    assert_shown(request, "unreachable")

    s3 = s3.restart()
    try:
        assert bucket_keys(s3, bucket) == []  # nothing half-written
        request = retry(request)
        assert request.status == ImportRequest.Status.SUCCEEDED, request.error
        assert_only_the_shard_fetched_again(hub)
        version = ModelVersion.objects.get()
        keys = bucket_keys(s3, bucket)
        assert version.model_path in {f"s3://{bucket}/{key}" for key in keys}
        assert all(f"import-{request.pk}/" in key for key in keys)
    finally:
        s3.stop()


# ---- the Hub ---------------------------------------------------------------------------------


def test_the_hub_answering_429_with_retry_after_is_waited_out(aegis, hub):
    aegis.settings.AEGIS_HUB_RETRY_WAIT_MS = 50
    hub.inject_fault(429, times=2, retry_after=1, path_contains="/api/models/")
    request = queued_import()

    request = run_once(request)

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    statuses = [
        entry.status for entry in hub.requests if entry.path.startswith(f"/api/models/{REPO}/")
    ]
    assert statuses[:3] == [429, 429, 200]


def test_a_hub_failing_with_500_fails_the_import_in_words_and_a_retry_completes(aegis, hub):
    aegis.settings.AEGIS_HUB_RETRIES = 2
    aegis.settings.AEGIS_HUB_RETRY_WAIT_MS = 50
    fault = hub.inject_fault(500, times=None, path_contains="/api/models/")
    request = queued_import()

    request = run_once(request)

    assert request.status == ImportRequest.Status.FAILED
    assert request.stage == "resolve"
    assert f"The Hub at {hub.url} answered HTTP 500" in request.error
    assert "after 2 retries" in request.error
    api_calls = [e for e in hub.requests if e.path.startswith("/api/models/")]
    assert [e.status for e in api_calls] == [500, 500, 500]
    assert_shown(request, "try again later")

    fault.remaining = 0
    request = retry(request)
    assert request.status == ImportRequest.Status.SUCCEEDED, request.error


def test_a_file_download_answered_429_is_retried_by_the_download(aegis, hub):
    hub.inject_fault(429, times=1, retry_after=0, path_contains="/config.json", methods=("GET",))

    request = run_once(queued_import())

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    gets = [
        e.status
        for e in hub.requests
        if e.method == "GET" and e.path.endswith("/config.json") and "/resolve/" in e.path
    ]
    assert gets[:2] == [429, 200]


# ---- a worker that dies between storing and registering ---------------------------------------

CRASH_AT_REGISTER = """
import os, signal, sys
import django
django.setup()
from registry import actions
def crash(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
actions.register = crash
from imports.jobs import run_import
run_import(int(sys.argv[1]))
"""


def test_a_worker_killed_between_store_and_register_is_registered_by_the_retry(aegis):
    from tests.imports.test_worker_processes import worker_environment

    request = queued_import()
    worker = subprocess.run(
        [sys.executable, "-c", CRASH_AT_REGISTER, str(request.pk)],
        cwd=BASE_DIR,
        env=worker_environment(aegis),
        capture_output=True,
        timeout=180,
    )
    assert worker.returncode == -9, worker.stderr.decode()[-2000:]
    request.refresh_from_db()
    assert request.status == ImportRequest.Status.RUNNING
    assert request.stage == "register"
    stored = stored_files(aegis.artifact_root)
    assert stored  # stored, not registered: what a kill at this point leaves
    assert not ModelVersion.objects.exists()

    assert fail_stale_imports([request.pk], max_silence=0.001) == 1
    request.refresh_from_db()
    assert request.error_code == "worker_lost"
    assert "register" in request.error

    request = retry(request)
    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    assert request.events.filter(kind="stage_skipped", stage="store").exists()
    version = ModelVersion.objects.get()
    assert stored_files(aegis.artifact_root) == stored  # the same objects, none added
    tarballs = [path for path in stored if path.name.endswith(".tar.gz")]
    assert [path.as_uri() for path in tarballs] == [version.model_path]
    assert os.path.getsize(tarballs[0]) == version.size
