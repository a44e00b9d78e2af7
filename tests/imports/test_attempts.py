"""An import's attempts: a stale one is reaped when shown, retried or cancelled, an attempt
given up for lost changes nothing once another attempt runs, and content whose version was
yanked or a name bound to another repo is refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone

from aegis_catalog.lib.vault import VaultUnreachable
from imports import actions, pipeline
from imports.actions import ImportOptions
from imports.errors import ImportSuperseded
from imports.jobs import run_import
from imports.models import ImportRequest
from registry import actions as registry_actions
from registry.models import ModelVersion
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def queued(**options: object) -> ImportRequest:
    values: dict[str, Any] = {
        "repo_id": "acme/tiny-bert",
        "model_name": "tiny-bert",
        "version": "1.0",
    }
    values.update(options)
    return actions.start_import(ImportOptions(**values), actor="alice", enqueue=False)


def running_for_six_hours() -> ImportRequest:
    request = actions.claim_import(queued().pk)
    assert request is not None
    ImportRequest.objects.filter(pk=request.pk).update(
        stage="download", heartbeat_at=timezone.now() - timedelta(hours=6)
    )
    request.refresh_from_db()
    return request


def test_showing_an_import_whose_worker_is_gone_marks_it_failed(aegis, client):
    request = running_for_six_hours()
    client.force_login(make_user("viewer-user", "viewer"))

    for url in (f"/imports/{request.pk}/", f"/imports/{request.pk}/progress/"):
        page = client.get(url)
        assert page.status_code == 200
    request.refresh_from_db()
    assert request.status == ImportRequest.Status.FAILED
    assert request.error_code == "worker_lost"
    assert "stopped responding" in page.content.decode()
    assert request.events.filter(kind="failed").count() == 1


def test_retrying_an_import_whose_worker_is_gone_queues_it_again(aegis):
    request = running_for_six_hours()
    actions.retry_import(request, actor="alice", enqueue=False)
    request.refresh_from_db()
    assert request.status == ImportRequest.Status.QUEUED
    failed = request.events.get(kind="failed")
    assert failed.details["code"] == "worker_lost"
    assert "download" in failed.message or "stopped responding" in failed.message


def test_cancelling_an_import_whose_worker_is_gone_ends_it(aegis):
    request = running_for_six_hours()
    actions.cancel_import(request, actor="alice")
    request.refresh_from_db()
    assert request.status == ImportRequest.Status.CANCELLED
    assert request.finished_at is not None
    assert "stopped responding" in request.events.get(kind="cancelled").message


def test_an_attempt_given_up_for_lost_changes_nothing_once_another_runs(aegis):
    lost = running_for_six_hours()
    actions.retry_import(lost, actor="alice", enqueue=False)
    current = actions.claim_import(lost.pk)
    assert current is not None and current.attempts == lost.attempts + 1
    with pytest.raises(ImportSuperseded):
        actions.begin_stage(lost, "package")
    with pytest.raises(ImportSuperseded):
        actions.save_progress(lost, state={"package": "stale"})
    with pytest.raises(ImportSuperseded):
        actions.finish_import(lost, {"commit": "0" * 40, "sha256": "f" * 64}, None)
    assert actions.fail_import(lost, RuntimeError("late")) is False
    current.refresh_from_db()
    assert (current.status, current.stage, current.state) == (
        ImportRequest.Status.RUNNING, "download", {},
    )  # fmt: skip


def test_content_whose_version_was_yanked_is_refused_not_linked(aegis):
    first = queued()
    assert run_import(first.pk) == "succeeded"
    version = ModelVersion.objects.get()
    registry_actions.set_version_status(version, "yanked", actor="root", reason="bad weights")
    with pytest.raises(actions.ImportRejected, match="yanked \\(bad weights\\)"):
        actions.request_import(
            ImportOptions("acme/tiny-bert", "tiny-bert", "2.0"), actor="alice", enqueue=False
        )
    second = queued(version="2.0")  # as a request racing the yank would be
    assert run_import(second.pk) == "failed"
    second.refresh_from_db()
    assert second.error_code == "yanked"
    assert "tiny-bert 1.0, which is yanked (bad weights)" in second.error
    assert second.model_version is None
    assert ModelVersion.objects.count() == 1


def test_a_name_stays_bound_to_the_repo_it_was_imported_from(aegis):
    assert run_import(queued().pk) == "succeeded"
    with pytest.raises(actions.ImportRejected, match="holds versions imported from acme/tiny-bert"):
        queued(repo_id="acme/other", version="2.0")


def test_a_blocked_import_leaves_no_file_on_disk_and_a_failed_one_keeps_its_own(
    aegis, fresh_hub_double, monkeypatch
):
    from imports import workdirs

    fresh_hub_double.add_repo(
        "acme/evil", {"weights.dat": b"cos\nsystem\n(S'id'\ntR.", "config.json": "{}"},
        card_data={"license": "mit"},
    )  # fmt: skip
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    blocked = queued(repo_id="acme/evil", model_name="evil")
    assert run_import(blocked.pk) == "failed"
    assert not workdirs.work_dir_of(blocked.pk).exists()

    aegis.settings.HF_ENDPOINT = aegis.hub.url
    # Vault fails after the files arrived (at the provenance signature).
    monkeypatch.setattr(pipeline, "attest_artifact", mock.Mock(side_effect=VaultUnreachable("x")))
    failed = queued()
    assert run_import(failed.pk) == "failed"
    assert (workdirs.work_dir_of(failed.pk) / "snapshot" / "config.json").is_file()
    assert workdirs.clean_work_dirs() == []  # kept for a retry, within the age limit
    assert workdirs.clean_work_dirs(max_age=timedelta(0)) == [failed.pk]
    assert not workdirs.work_dir_of(failed.pk).exists()


def test_a_second_process_waits_for_the_work_dir_then_says_it_is_busy(aegis):
    from imports import workdirs

    busy = pytest.raises(workdirs.WorkDirBusy, match="import #7 still works")
    with workdirs.held(7), busy, workdirs.held(7, wait_seconds=0):
        pass


def test_the_maintenance_job_fails_lost_imports(aegis):
    from imports.jobs import maintain_imports

    request = running_for_six_hours()
    assert maintain_imports()["lost"] == 1
    request.refresh_from_db()
    assert request.error_code == "worker_lost"
