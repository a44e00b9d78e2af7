"""`/imports/<id>/` and its `/progress/` partial, with Retry and Cancel."""

from __future__ import annotations

import re
from html import unescape

import pytest

from imports.actions import ImportOptions, record_event, start_import
from imports.jobs import run_import
from imports.models import ImportEvent, ImportRequest, Stage
from registry.models import ModelVersion

pytestmark = pytest.mark.django_db


def new_import(user, repo_id="acme/tiny-bert", version="1.0", **options) -> ImportRequest:
    return start_import(
        ImportOptions(
            repo_id=repo_id, model_name=repo_id.split("/")[1], version=version, **options
        ),
        actor=user.username,
        user=user,
        enqueue=False,
    )


def bar_value(html: str, stage: str) -> str | None:
    row = html[html.index(f'data-stage="{stage}"') :]
    row = row[: row.index("</tr>")]
    match = re.search(r'<progress max="100" (?:value="(\d+)")?', row)
    assert match is not None
    return match.group(1)


def test_it_shows_a_finished_import_at_100_percent_with_its_registry_entry(
    aegis, alice, alice_client
):
    request = new_import(alice)
    assert run_import(request.pk) == "succeeded"

    response = alice_client.get(f"/imports/{request.pk}/")

    html = response.content.decode()
    version = ModelVersion.objects.get()
    assert response.status_code == 200
    assert 'id="import-status" class="status status-succeeded">succeeded<' in html
    assert '<span class="percent" id="overall-percent">100%</span>' in html
    for stage in ("resolve", "stream", "sign_model", "attest", "store", "register"):
        assert bar_value(html, stage) == "100"
    for stage in ("download", "check", "scan", "package"):  # all four done in the one pass
        assert f'data-stage="{stage}"' not in html
    assert 'href="/registry/tiny-bert/1.0/" id="registry-link"' in html
    assert version.sha256 in html
    assert "hx-trigger" not in html  # ended: nothing polls
    assert (
        "Download, check, scan and package done" in html
        and "asked to import acme/tiny-bert@main" in html
    )
    assert ">Retry<" not in html and ">Cancel<" not in html


def test_it_polls_the_progress_partial_while_the_import_runs(bob, bob_client):
    request = new_import(bob)
    ImportRequest.objects.filter(pk=request.pk).update(
        status=ImportRequest.Status.RUNNING, stage=Stage.DOWNLOAD, bytes_done=50, bytes_total=200
    )
    record_event(request, ImportEvent.Kind.STARTED, "attempt 1 started")
    for stage in (Stage.RESOLVE, Stage.PREFLIGHT):
        record_event(request, ImportEvent.Kind.STAGE_STARTED, "x", stage=stage)
        record_event(request, ImportEvent.Kind.STAGE_FINISHED, "x done", stage=stage)
    record_event(request, ImportEvent.Kind.STAGE_STARTED, "Download", stage=Stage.DOWNLOAD)

    response = bob_client.get(f"/imports/{request.pk}/progress/", HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert f'hx-get="/imports/{request.pk}/progress/" hx-trigger="every 1s"' in html
    assert bar_value(html, "resolve") == "100"
    assert bar_value(html, "preflight") == "100"
    assert bar_value(html, "download") == "25"
    assert "50\xa0bytes of 200\xa0bytes" in html
    assert bar_value(html, "check") == "0"
    assert 'id="import-status" class="status status-running">running<' in html


def test_it_stops_polling_once_the_import_ended(bob, bob_client):
    request = new_import(bob)
    ImportRequest.objects.filter(pk=request.pk).update(status=ImportRequest.Status.CANCELLED)

    html = bob_client.get(
        f"/imports/{request.pk}/progress/", HTTP_HX_REQUEST="true"
    ).content.decode()

    assert 'id="progress"' in html
    assert "hx-trigger" not in html and "hx-get" not in html


def test_it_shows_the_error_in_words_and_retry_for_importers(aegis, alice, alice_client):
    request = new_import(alice, repo_id="acme/does-not-exist", version="1")
    assert run_import(request.pk) == "failed"

    html = alice_client.get(f"/imports/{request.pk}/").content.decode()

    assert 'status-failed">failed<' in html
    assert 'id="import-error"' in html
    assert "has no model 'acme/does-not-exist'" in unescape(html)
    assert "The import failed at “Resolve revision”" in html
    assert '<tr class="stage stage-failed" data-stage="resolve">' in html
    assert f'action="/imports/{request.pk}/retry/"' in html


def test_it_hides_retry_and_cancel_from_viewers(bob, bob_client):
    request = new_import(bob)

    html = bob_client.get(f"/imports/{request.pk}/").content.decode()

    assert "/cancel/" not in html and "/retry/" not in html


def test_it_cancels_a_queued_import(alice, alice_client):
    request = new_import(alice)

    response = alice_client.post(f"/imports/{request.pk}/cancel/", follow=True)

    request.refresh_from_db()
    assert response.redirect_chain == [(f"/imports/{request.pk}/", 303)]
    assert request.status == ImportRequest.Status.CANCELLED
    assert "alice cancelled the import" in response.content.decode()
    assert f'action="/imports/{request.pk}/retry/"' in response.content.decode()


def test_it_retries_a_failed_import(alice, alice_client, settings):
    request = new_import(alice)
    ImportRequest.objects.filter(pk=request.pk).update(
        status=ImportRequest.Status.FAILED, error="boom"
    )

    response = alice_client.post(f"/imports/{request.pk}/retry/", follow=True)

    request.refresh_from_db()
    assert request.status == ImportRequest.Status.QUEUED
    assert request.error == ""
    assert "alice retried the import" in response.content.decode()
    assert "finished stages are kept" in response.content.decode()


def test_it_says_why_a_succeeded_import_cannot_be_retried(alice, alice_client):
    request = new_import(alice)
    ImportRequest.objects.filter(pk=request.pk).update(status=ImportRequest.Status.SUCCEEDED)

    response = alice_client.post(f"/imports/{request.pk}/retry/", follow=True)

    assert "only failed or cancelled imports can be retried" in response.content.decode()


def test_it_refuses_retry_and_cancel_from_viewers(bob, bob_client):
    request = new_import(bob)

    assert bob_client.post(f"/imports/{request.pk}/cancel/").status_code == 403
    assert bob_client.post(f"/imports/{request.pk}/retry/").status_code == 403
    request.refresh_from_db()
    assert request.status == ImportRequest.Status.QUEUED


def test_it_answers_404_for_an_unknown_import(bob_client):
    assert bob_client.get("/imports/999999/").status_code == 404
    assert bob_client.get("/imports/999999/progress/").status_code == 404
