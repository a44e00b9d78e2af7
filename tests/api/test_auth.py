"""Must-show 3: tokens act with their user's groups; revoked or expired tokens and bad headers
get 401; a read-only token reads and writes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from api.actions import create_token, hash_token, revoke_token
from api.models import ApiToken
from imports.models import ImportRequest
from tests.factories import ApiClient, token_for

pytestmark = pytest.mark.django_db

IMPORT = {"repo_id": "acme/tiny-bert", "model_name": "tiny-bert", "version": "1.0"}


def error_of(response):
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]


def test_it_refuses_a_revoked_token_with_401(alice):
    secret = token_for(alice)
    api = ApiClient(secret)
    assert api.get("/api/v1/models").status_code == 200

    revoke_token(ApiToken.objects.get(token_hash=hash_token(secret)), actor=alice)
    response = api.get("/api/v1/models")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert error_of(response) == {
        "code": "unauthenticated",
        "message": "The API token is not valid or was revoked.",
    }


@pytest.mark.parametrize(
    "header",
    [
        "Bearer ",
        "Bearer aegis_not-a-real-token",
        "Basic YWxpY2U6cHc=",
        "aegis_abc",
        "Bearer x" * 50,
    ],
)
def test_it_refuses_unknown_or_malformed_authorization_with_401(alice, header):
    response = Client().get("/api/v1/models", headers={"Authorization": header})

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"


def test_it_refuses_anonymous_requests_with_401(db):
    response = Client().get("/api/v1/versions")

    assert response.status_code == 401
    assert "API token" in error_of(response)["message"]


def test_it_refuses_a_token_of_a_deactivated_user(alice):
    api = ApiClient(token_for(alice))
    alice.is_active = False
    alice.save()

    assert api.get("/api/v1/models").status_code == 401


def test_it_refuses_an_expired_token_with_401_saying_so(alice):
    created = create_token(alice, "ci", expires_in_days=30)
    api = ApiClient(created.secret)
    assert api.get("/api/v1/models").status_code == 200

    ApiToken.objects.filter(pk=created.token.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    response = api.get("/api/v1/models")

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"
    assert "expired on" in error_of(response)["message"]


def test_a_read_only_token_reads_but_cannot_import(alice, hub):
    api = ApiClient(create_token(alice, "loader", scope="read-only").secret)  # alice imports

    assert api.get("/api/v1/models").status_code == 200
    response = api.post("/api/v1/imports", IMPORT)

    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"
    assert "read-only" in error_of(response)["message"]
    assert not ImportRequest.objects.exists()


def test_a_read_write_token_of_an_importer_still_imports(
    alice, hub, django_capture_on_commit_callbacks
):
    api = ApiClient(create_token(alice, "ci", scope="read-write", expires_in_days=90).secret)

    with django_capture_on_commit_callbacks(execute=False):
        response = api.post("/api/v1/imports", IMPORT)

    assert response.status_code == 202, response.content


def test_it_gives_a_viewers_token_403_on_import(bob_api, hub):
    response = bob_api.post("/api/v1/imports", IMPORT)

    assert response.status_code == 403
    assert error_of(response) == {
        "code": "forbidden",
        "message": "You need to be in the importer group to import models.",
    }
    assert not ImportRequest.objects.exists()


def test_it_lets_an_auditors_token_read_audit_events(charlie, charlie_api):
    response = charlie_api.get("/api/v1/audit/events", action="auth.api_token_created")

    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 1
    event = body["items"][0]
    assert (event["actor"], event["action"], event["object_type"]) == (
        "charlie",
        "auth.api_token_created",
        "api_token",
    )
    assert len(event["hash"]) == 64 and len(event["previous_hash"]) == 64


@pytest.mark.parametrize("who", ["alice_api", "bob_api"])
def test_it_gives_importers_and_viewers_403_on_audit_events(request, who):
    api = request.getfixturevalue(who)

    response = api.get("/api/v1/audit/events")

    assert response.status_code == 403
    assert "auditor or registry-admin" in error_of(response)["message"]


def test_it_gives_a_token_of_a_user_in_no_group_403(nobody):
    response = ApiClient(token_for(nobody)).get("/api/v1/models")

    assert response.status_code == 403


def test_it_judges_a_bad_token_alone_even_with_a_session(alice):
    client = Client()
    client.force_login(alice)

    response = client.get("/api/v1/models", headers={"Authorization": "Bearer aegis_wrong"})

    assert response.status_code == 401


def test_it_accepts_the_browser_session_for_reads(alice):
    client = Client()
    client.force_login(alice)

    assert client.get("/api/v1/models").status_code == 200


def test_it_requires_csrf_for_session_writes(alice, hub):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    response = client.post("/api/v1/imports", IMPORT, content_type="application/json")

    assert response.status_code == 403
    assert "CSRF" in error_of(response)["message"]
    assert not ImportRequest.objects.exists()


def test_it_accepts_session_writes_with_the_csrf_token(
    alice, hub, django_capture_on_commit_callbacks
):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/account/tokens/")  # the page sets the CSRF cookie
    csrf = client.cookies["csrftoken"].value

    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            "/api/v1/imports",
            IMPORT,
            content_type="application/json",
            headers={"X-CSRFToken": csrf},
        )

    assert response.status_code == 202, response.content
    assert ImportRequest.objects.get().actor == "alice"


def test_it_needs_no_csrf_with_a_token(alice_api, hub, django_capture_on_commit_callbacks):
    alice_api.client = Client(enforce_csrf_checks=True)

    with django_capture_on_commit_callbacks(execute=False):
        response = alice_api.post("/api/v1/imports", IMPORT)

    assert response.status_code == 202, response.content


def test_it_keeps_only_the_hash_and_records_last_use(alice):
    secret = token_for(alice)
    token = ApiToken.objects.get()
    assert secret not in (token.token_hash, token.prefix) and secret.startswith(token.prefix)
    assert token.token_hash == hash_token(secret) and token.last_used_at is None

    ApiClient(secret).get("/api/v1/models")

    token.refresh_from_db()
    assert token.last_used_at is not None


def test_it_documents_the_bearer_scheme_in_openapi(db):
    schema = Client().get("/api/v1/openapi.json").json()

    assert schema["components"]["securitySchemes"] == {
        "TokenOrSession": {"type": "http", "scheme": "bearer"}
    }
    assert all(
        operation["security"] == [{"TokenOrSession": []}]
        for path in schema["paths"].values()
        for operation in path.values()
    )
