"""POST `/hub/<org>/<name>/import/`: importers start imports; viewers get 403."""

from __future__ import annotations

import django_rq
import pytest

from imports.models import ImportEvent, ImportRequest
from tests.factories import import_form, make_version

pytestmark = pytest.mark.django_db

URL = "/hub/acme/tiny-bert/import/"


form = import_form


def test_it_refuses_viewers(bob_client, hub):
    response = bob_client.post(URL, form())

    assert response.status_code == 403
    assert "importer group" in response.content.decode()
    assert not ImportRequest.objects.exists()


def test_it_refuses_anonymous_users(client, hub):
    response = client.post(URL, form())

    assert response.status_code == 302
    assert not ImportRequest.objects.exists()


def test_it_refuses_get(alice_client, hub):
    assert alice_client.get(URL).status_code == 405


def test_it_creates_the_request_and_queues_the_job_on_commit(
    alice, alice_client, hub, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = alice_client.post(
            URL, form(include="*.json\n*.safetensors", exclude="tokenizer/*")
        )

    request = ImportRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/imports/{request.pk}/"
    assert (request.repo_id, request.model_name, request.version) == (
        "acme/tiny-bert",
        "tiny-bert",
        "1.0",
    )
    assert request.include_patterns == ["*.json", "*.safetensors"]
    assert request.exclude_patterns == ["tokenizer/*"]
    assert request.requested_by == alice and request.actor == "alice"
    assert request.status == ImportRequest.Status.QUEUED
    assert ImportEvent.objects.filter(request=request, kind=ImportEvent.Kind.REQUESTED).exists()
    assert len(callbacks) == 1
    request.refresh_from_db()
    queue = django_rq.get_queue("imports")
    job = queue.fetch_job(request.job_id)
    try:
        assert job is not None
        assert job.func_name == "imports.jobs.run_import"
        assert job.args == (request.pk,)
        assert request.job_id in queue.job_ids
    finally:
        if job is not None:
            job.delete()


def test_it_links_to_the_existing_version_instead_of_importing_again(alice_client, hub):
    commit = hub.resolve("acme/tiny-bert")
    version = make_version(
        "tiny-bert", "2026.1", source_repo="acme/tiny-bert", commit=commit, include=["*.json"]
    )

    response = alice_client.post(URL, form(version="2026.2", include="*.json"), follow=True)

    assert response.redirect_chain[0] == (version.get_absolute_url(), 302)
    assert "already in the registry as tiny-bert 2026.1" in response.content.decode()
    assert not ImportRequest.objects.exists()


def test_it_imports_again_when_the_file_patterns_differ(alice_client, hub):
    commit = hub.resolve("acme/tiny-bert")
    make_version("tiny-bert", "2026.1", source_repo="acme/tiny-bert", commit=commit)

    response = alice_client.post(URL, form(version="2026.2", exclude="*.txt"))

    assert response.status_code == 302
    assert ImportRequest.objects.get().exclude_patterns == ["*.txt"]


def test_it_imports_again_when_the_commit_differs(alice_client, hub):
    old = hub.demo.commits["acme/tiny-bert"][0]
    make_version("tiny-bert", "2026.1", source_repo="acme/tiny-bert", commit=old)

    response = alice_client.post(URL, form(version="2026.2"))

    assert response.status_code == 302
    assert ImportRequest.objects.count() == 1


def test_it_shows_why_start_import_rejected_the_request(alice_client, hub):
    make_version("tiny-bert", "1.0", source_repo="other/repo", commit="b" * 40)

    response = alice_client.post(URL, form())

    assert response.status_code == 400
    assert "tiny-bert already has a version 1.0 in the registry" in response.content.decode()
    assert not ImportRequest.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model_name": "../etc"}, "invalid model name"),
        ({"version": ""}, "This field is required"),
        ({"revision": "a..b"}, "not a valid branch"),
        ({"revision": "no-such-branch"}, "has no branch, tag or commit"),
        ({"upload_s3": "on"}, "No S3 bucket is configured"),
        ({"include": "x" * 3001}, "at most 3000"),
    ],
)
def test_it_rerenders_the_form_with_the_error(alice_client, hub, overrides, message):
    response = alice_client.post(URL, form(**overrides))

    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert 'id="import-form"' in html
    assert not ImportRequest.objects.exists()


def test_it_refuses_an_invalid_repo_id(alice_client, hub):
    response = alice_client.post("/hub/acme/bad..name/import/", form())

    assert response.status_code == 404
    assert not ImportRequest.objects.exists()
