"""Imports run by real RQ worker processes: concurrent importers, killed workers, retries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import django_rq
import pytest
from django.conf import settings
from django.db import connection

from imports import actions
from imports.actions import ImportOptions, fail_stale_imports
from imports.models import ImportRequest
from imports.rebuild import rebuild_version
from registry.models import ModelVersion

pytestmark = pytest.mark.django_db(transaction=True)
BASE_DIR = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{host}:{port}/{db['NAME']}"


def worker_environment(environment) -> dict[str, str]:
    """The running test's settings, as a worker process reads them: from the environment."""
    s = environment.settings
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VAULT_", "AWS_", "AEGIS_", "HF_", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="aegis_catalog.settings",
        DATABASE_URL=database_url(),
        REDIS_URL=s.RQ_QUEUES["imports"]["URL"],
        HF_ENDPOINT=s.HF_ENDPOINT,
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",
        VAULT_ADDR=s.VAULT_ADDR,
        VAULT_TOKEN=s.VAULT_TOKEN,
        AEGIS_ARTIFACT_ROOT=str(s.AEGIS_ARTIFACT_ROOT),
        AEGIS_WORK_DIR=str(s.AEGIS_WORK_DIR),
        AEGIS_MIN_FREE_BYTES="0",
        AEGIS_IMPORT_HEARTBEAT_TIMEOUT=str(s.AEGIS_IMPORT_HEARTBEAT_TIMEOUT),
    )
    return env


def start_worker(environment, *, burst: bool = True) -> subprocess.Popen[bytes]:
    command = [sys.executable, "manage.py", "rqworker", "imports"]
    if burst:
        command.append("--burst")
    return subprocess.Popen(
        command,
        cwd=BASE_DIR,
        env=worker_environment(environment),
        start_new_session=True,  # its own process group: the test can kill worker and horse
    )


def wait_for(condition, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def queue(redis_url):
    imports_queue = django_rq.get_queue("imports")
    imports_queue.empty()
    yield imports_queue
    imports_queue.empty()


def options(repo_id: str, **overrides) -> ImportOptions:
    values: dict[str, Any] = {
        "repo_id": repo_id,
        "model_name": "shared",
        "version": "1",
        "register": True,
    }
    values.update(overrides)
    return ImportOptions(**values)


def test_two_importers_of_the_same_commit_make_one_artifact_and_one_version(aegis, queue):
    first = actions.start_import(options("acme/tiny-bert"), actor="alice")
    second = actions.start_import(options("acme/tiny-bert"), actor="bob")
    assert queue.count == 2
    workers = [start_worker(aegis), start_worker(aegis)]
    for worker in workers:
        assert worker.wait(timeout=120) == 0

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == ImportRequest.Status.SUCCEEDED
    assert ModelVersion.objects.count() == 1
    version = ModelVersion.objects.get()
    assert first.model_version == second.model_version == version
    linked = [request for request in (first, second) if "linked_to" in request.result]
    assert len(linked) == 1
    assert "already imported" in linked[0].events.latest("created_at", "pk").message
    artifacts = [path for path in Path(aegis.artifact_root).rglob("*.tar.gz") if path.is_file()]
    assert len(artifacts) == 1


@pytest.fixture
def slow_repo(aegis, fresh_hub_double):
    """A repo whose weights stream slowly, so a worker can be killed mid-download."""
    fresh_hub_double.add_repo(
        "acme/slow",
        {
            "config.json": '{"model_type": "slow"}',
            "model-00001.safetensors": os.urandom(600_000),
            "model-00002.safetensors": os.urandom(600_000),
        },
        card_data={"license": "mit"},
    )
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    aegis.settings.AEGIS_IMPORT_HEARTBEAT_TIMEOUT = 5
    fresh_hub_double.throttle_bytes_per_second = 200_000
    return fresh_hub_double


def started_pid(request: ImportRequest) -> int:
    event = request.events.filter(kind="started").order_by("-pk").first()
    return event.details["pid"] if event else 0


def test_a_killed_worker_fails_the_import_in_words_and_retry_does_not_refetch_files(
    aegis, slow_repo, queue
):
    request = actions.start_import(options("acme/slow", model_name="slow"), actor="alice")
    worker = start_worker(aegis, burst=False)
    try:
        snapshot = Path(settings.AEGIS_WORK_DIR) / f"import-{request.pk}" / "snapshot"
        wait_for(
            lambda: (snapshot / "config.json").is_file(),
            timeout=60,
            what="config.json to be downloaded",
        )
        request.refresh_from_db()
        assert request.stage == "stream"
        horse = wait_for(lambda: started_pid(request), timeout=10, what="the work-horse's pid")
        os.kill(horse, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(
            lambda: ImportRequest.objects.get(pk=request.pk).status == "failed",
            timeout=60,
            what="the import to show as failed",
        )
        assert time.monotonic() - killed_at < 60
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    request.refresh_from_db()
    assert "killed by signal 9" in request.error
    assert "stream" in request.error
    assert request.error_code == "worker_killed"
    assert slow_repo.body_fetches("acme/slow", "config.json") == 1

    slow_repo.throttle_bytes_per_second = None
    actions.retry_import(request, actor="alice")
    assert start_worker(aegis).wait(timeout=120) == 0
    request.refresh_from_db()
    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    assert request.attempts == 2
    assert slow_repo.body_fetches("acme/slow", "config.json") == 1
    assert request.events.filter(kind="stage_skipped", stage="resolve").exists()
    assert ModelVersion.objects.get().source_commit == slow_repo.resolve("acme/slow")


def s3_worker_environment(environment) -> dict[str, str]:
    s = environment.settings
    return {
        **worker_environment(environment),
        "AWS_ENDPOINT_URL_S3": s.AWS_ENDPOINT_URL_S3,
        "AWS_ACCESS_KEY_ID": s.AWS_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": s.AWS_SECRET_ACCESS_KEY,
        "AWS_REGION": s.AWS_REGION,
        "AEGIS_S3_BUCKET": s.AEGIS_S3_BUCKET,
        "AEGIS_S3_PREFIX": s.AEGIS_S3_PREFIX,
    }


def test_a_worker_killed_mid_stream_into_s3_leaves_no_upload_and_the_retry_gives_the_same_sha256(
    aegis_s3, slow_repo, queue, seaweedfs, s3_bucket
):
    request = actions.start_import(
        options("acme/slow", model_name="slow", upload_s3=True), actor="alice"
    )
    client = seaweedfs.client()
    command = [sys.executable, "manage.py", "rqworker", "imports"]
    worker = subprocess.Popen(
        command, cwd=BASE_DIR, env=s3_worker_environment(aegis_s3), start_new_session=True
    )
    try:
        wait_for(
            lambda: client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads"),
            timeout=60,
            what="the tarball's multipart upload to begin",
        )
        assert ImportRequest.objects.get(pk=request.pk).stage == "stream"
        horse = wait_for(lambda: started_pid(request), timeout=10, what="the work-horse's pid")
        os.kill(horse, signal.SIGKILL)
        wait_for(
            lambda: ImportRequest.objects.get(pk=request.pk).status == "failed",
            timeout=60,
            what="the import to show as failed",
        )
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    assert len(client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])) == 1

    slow_repo.throttle_bytes_per_second = None
    actions.retry_import(request, actor="alice")
    retry = subprocess.Popen(
        [*command, "--burst"], cwd=BASE_DIR, env=s3_worker_environment(aegis_s3)
    )
    assert retry.wait(timeout=120) == 0
    request.refresh_from_db()
    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    # The same bytes as the tarball packaged afresh from the Hub (rebuild: download again,
    # package, compare with the stored object and the registered sha256).
    assert rebuild_version(ModelVersion.objects.get()).reproduced


def test_an_import_whose_whole_worker_died_is_failed_once_its_heartbeat_is_stale(
    aegis, slow_repo, queue
):
    request = actions.start_import(options("acme/slow", model_name="slow"), actor="alice")
    worker = start_worker(aegis, burst=False)
    wait_for(
        lambda: ImportRequest.objects.get(pk=request.pk).stage == "stream",
        timeout=60,
        what="the one-pass stage",
    )
    horse = wait_for(lambda: started_pid(request), timeout=10, what="the work-horse's pid")
    # The worker first, then its work-horse (RQ puts it in a session of its own): nobody is
    # left to report anything.
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    os.kill(horse, signal.SIGKILL)
    assert ImportRequest.objects.get(pk=request.pk).status == "running"
    assert fail_stale_imports() == 0  # the heartbeat is still fresh
    wait_for(lambda: fail_stale_imports() == 1, timeout=30, what="the heartbeat to go stale")
    request.refresh_from_db()
    assert request.status == "failed"
    assert request.error_code == "worker_lost"
    assert "stopped responding during the stream stage" in request.error
