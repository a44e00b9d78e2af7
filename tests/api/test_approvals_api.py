"""The approval queue and a model's upstream watch state in the API."""

from __future__ import annotations

import pytest
from django.utils import timezone

from registry.models import ModelVersion, UpstreamState, VersionApproval
from tests.factories import ApiClient, make_registry_admin, make_version, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def awaiting():
    item = make_version("tiny-bert", "2.0")
    item.status = ModelVersion.Status.AWAITING
    item.save()
    VersionApproval.objects.create(version=item, requested_by="ivy")
    return item


def decide(client: ApiClient, decision: str, reason: str = "checked"):
    return client.post(
        "/api/v1/models/tiny-bert/versions/2.0/approval",
        {"decision": decision, "reason": reason},
    )


def test_it_lists_the_queue_for_auditors_and_registry_admins(awaiting, charlie_api, bob_api):
    body = charlie_api.get("/api/v1/approvals").json()
    [item] = body["pending"]
    assert (item["model"], item["version"], item["status"], item["requested_by"]) == (
        "tiny-bert", "2.0", "awaiting", "ivy",
    )  # fmt: skip
    assert item["html_url"].endswith("/registry/tiny-bert/2.0/")
    assert body["decided"] == []
    assert bob_api.get("/api/v1/approvals").status_code == 403  # a viewer


def test_a_registry_admin_who_did_not_ask_approves(awaiting, rosa, charlie_api, alice_api):
    assert decide(charlie_api, "approve").status_code == 403  # an auditor
    assert decide(alice_api, "approve").status_code == 403  # an importer
    ivy = ApiClient(token_for(make_registry_admin("ivy")))
    refused = decide(ivy, "approve")
    assert (
        refused.status_code == 409
        and "another registry admin" in refused.json()["error"]["message"]
    )

    answer = decide(ApiClient(token_for(rosa)), "approve", "scans clean")

    assert answer.status_code == 200, answer.content
    assert answer.json()["decision"] == "approved" and answer.json()["status"] == "active"
    assert answer.json()["decided_by"] == "rosa" and answer.json()["reason"] == "scans clean"
    awaiting.refresh_from_db()
    assert awaiting.status == "active"
    again = decide(ApiClient(token_for(rosa)), "reject")
    assert again.status_code == 409


def test_a_decision_needs_a_reason_and_a_known_version(awaiting, rosa):
    client = ApiClient(token_for(rosa))
    assert decide(client, "approve", "").status_code == 422
    assert decide(client, "maybe").status_code == 422
    missing = client.post(
        "/api/v1/models/tiny-bert/versions/9.9/approval", {"decision": "approve", "reason": "x"}
    )
    assert missing.status_code == 404


def test_it_answers_a_models_upstream_state(awaiting, bob_api):
    answer = bob_api.get("/api/v1/models/tiny-bert/upstream").json()
    assert answer["state"] == "not_checked" and answer["diff"] == {}

    UpstreamState.objects.create(
        model=awaiting.model, state="changed", needs_attention=True, baseline=awaiting,
        tracked_revision="main", upstream_commit="a" * 40,
        diff={"license": {"before": "mit", "after": "other"}}, checked_at=timezone.now(),
    )  # fmt: skip
    answer = bob_api.get("/api/v1/models/tiny-bert/upstream").json()
    assert (answer["state"], answer["needs_attention"], answer["baseline_version"]) == (
        "changed", True, "2.0",
    )  # fmt: skip
    assert answer["diff"]["license"] == {"before": "mit", "after": "other"}
    assert bob_api.get("/api/v1/models/nope/upstream").status_code == 404


def test_the_openapi_description_has_them(bob_api):
    paths = bob_api.get("/api/v1/openapi.json").json()["paths"]
    assert "/api/v1/approvals" in paths
    assert "post" in paths["/api/v1/models/{name}/versions/{version}/approval"]
    assert "/api/v1/models/{name}/upstream" in paths
