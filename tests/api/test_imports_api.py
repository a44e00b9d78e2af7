"""POST /api/v1/imports and GET /api/v1/imports/{id}: the import form's rules, as JSON."""

from __future__ import annotations

import socket

import django_rq
import pytest

from imports.models import ImportEvent, ImportRequest
from tests.factories import make_version

pytestmark = pytest.mark.django_db

URL = "/api/v1/imports"


def body(**overrides):
    return {"repo_id": "acme/tiny-bert", "model_name": "tiny-bert", "version": "1.0", **overrides}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_it_queues_the_import_and_answers_202(
    alice, alice_api, hub, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = alice_api.post(
            URL, body(include=["*.json", "*.safetensors"], exclude=["tokenizer/*"])
        )

    assert response.status_code == 202, response.content
    request = ImportRequest.objects.get()
    data = response.json()
    assert data["id"] == request.pk and data["status"] == "queued"
    assert response["Location"] == f"http://testserver/api/v1/imports/{request.pk}"
    assert (request.repo_id, request.model_name, request.version) == (
        "acme/tiny-bert",
        "tiny-bert",
        "1.0",
    )
    assert request.include_patterns == ["*.json", "*.safetensors"]
    assert request.exclude_patterns == ["tokenizer/*"]
    assert (request.requested_by, request.actor, request.source) == (alice, "alice", "api")
    assert [event["kind"] for event in data["events"]] == ["requested"]
    assert len(callbacks) == 1
    request.refresh_from_db()
    queue = django_rq.get_queue("imports")
    job = queue.fetch_job(request.job_id)
    try:
        assert job is not None and job.args == (request.pk,)
    finally:
        if job is not None:
            job.delete()


def test_it_links_to_the_existing_version_instead_of_importing_again(alice_api, hub):
    commit = hub.resolve("acme/tiny-bert")
    make_version(
        "tiny-bert", "2026.1", source_repo="acme/tiny-bert", commit=commit, include=["*.json"]
    )

    response = alice_api.post(URL, body(version="2026.2", include=["*.json"]))

    assert response.status_code == 200
    data = response.json()
    assert data["existing_version"]["version"] == "2026.1"
    assert "already in the registry as tiny-bert 2026.1" in data["message"]
    assert not ImportRequest.objects.exists()


def test_it_answers_409_when_the_version_is_taken(alice_api, hub):
    make_version("tiny-bert", "1.0", source_repo="other/repo", commit="b" * 40)

    response = alice_api.post(URL, body())

    assert response.status_code == 409
    assert response.json() == {
        "error": {
            "code": "conflict",
            "message": "tiny-bert already has a version 1.0 in the registry",
            "field": "version",
        }
    }
    assert not ImportRequest.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "status", "field", "message"),
    [
        ({"model_name": "../etc"}, 422, "model_name", "String should match pattern"),
        ({"version": ""}, 422, "version", "String should match pattern"),
        ({"revision": "a..b"}, 422, "revision", "not a valid branch"),
        ({"revision": "no-such-branch"}, 404, "revision", "has no branch, tag or commit"),
        ({"repo_id": "acme/bad..name"}, 422, "repo_id", "cannot contain '..'"),
        ({"repo_id": "acme/no-such-model"}, 404, "repo_id", "acme/no-such-model"),
        ({"upload_s3": True}, 422, "upload_s3", "No S3 bucket is configured"),
        ({"include": ["a,b"]}, 422, "include.0", "String should match pattern"),
        ({"include": ["*"] * 11}, 422, "include", "at most 10 items"),
        ({"register": "maybe"}, 422, "register", "valid boolean"),
        ({"register": 0}, 422, "register", "valid boolean"),
        ({"revision": "r\u00e9vision"}, 422, "revision", "String should match pattern"),
    ],
)
def test_it_refuses_invalid_input_with_the_field(alice_api, hub, overrides, status, field, message):
    response = alice_api.post(URL, body(**overrides))

    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["field"] == field
    assert message in error["message"]
    assert not ImportRequest.objects.exists()


def test_it_refuses_a_missing_field_and_a_body_that_is_not_json(alice_api, hub):
    missing = alice_api.post(URL, {"repo_id": "acme/tiny-bert", "model_name": "tiny-bert"})
    broken = alice_api.client.post(
        URL, "{not json", content_type="application/json", headers=alice_api.headers
    )

    assert missing.status_code == 422
    assert missing.json()["error"] == {
        "code": "invalid",
        "message": "version: Field required",
        "field": "version",
    }
    assert broken.status_code == 400
    assert broken.json()["error"] == {
        "code": "bad_request",
        "message": "The request body is not valid JSON.",
    }


def test_it_answers_503_when_redis_is_down_and_imports_nothing(alice_api, hub, settings):
    settings.RQ_QUEUES = {
        **settings.RQ_QUEUES,
        "imports": {"URL": f"redis://:s3cret-pass@127.0.0.1:{closed_port()}/0"},
    }

    response = alice_api.post(URL, body())

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "unavailable" and "Redis" in error["message"]
    assert "s3cret-pass" not in response.content.decode()
    assert not ImportRequest.objects.exists()


def test_it_answers_405_with_the_error_body(alice_api):
    response = alice_api.get(URL)

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_it_shows_an_imports_status_and_events(
    alice, bob_api, hub, django_capture_on_commit_callbacks
):
    from imports.actions import ImportOptions, start_import

    request = start_import(
        ImportOptions(repo_id="acme/tiny-bert", model_name="tiny-bert", version="1.0"),
        actor="alice",
        user=alice,
        enqueue=False,
    )
    ImportEvent.objects.create(request=request, kind="note", message="a note for the timeline")

    response = bob_api.get(f"{URL}/{request.pk}")

    assert response.status_code == 200
    data = response.json()
    assert (data["status"], data["is_terminal"], data["requested_by"]) == ("queued", False, "alice")
    assert data["register"] is True and data["links"]["version"] is None
    assert data["links"]["html"] == f"http://testserver/imports/{request.pk}/"
    assert [event["message"] for event in data["events"]][-1] == "a note for the timeline"


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [("/api/v1/imports/999", 404, "import_id"), ("/api/v1/imports/0", 422, "import_id"),
     ("/api/v1/imports/x", 422, "import_id"), ("/api/v1/imports/1/x", 404, None)],
)  # fmt: skip
def test_it_answers_an_unknown_import_with_the_error_body(bob_api, path, status, field):
    response = bob_api.get(path)

    assert response.status_code == status
    assert response.json()["error"].get("field") == field
