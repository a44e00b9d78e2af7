"""Item 2: every model answers as aegis/<name> and under its Hub repo id; when several came from
one repo the first registered answers until a registry admin chooses another (audited)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from registry.models import AuditEvent
from serving.models import HubRepoChoice
from tests.factories import signed_in
from tests.serving.conftest import hf_import


@pytest.fixture
def two_models(aegis: Any, transit_key: str):
    return hf_import(transit_key, "1.0", "v1.0"), hf_import(transit_key, "7", "main", "bert-copy")


def sha_of(viewer_token: str, repo_id: str, revision: str = "main") -> str:
    answer = Client().get(
        f"/hf/api/models/{repo_id}/revision/{revision}",
        headers={"Authorization": f"Bearer {viewer_token}"},
    )
    assert answer.status_code == 200, answer.content
    return str(answer.json()["sha"])


@pytest.mark.django_db
def test_a_registry_admin_chooses_which_model_answers_for_a_hub_repo(
    two_models, viewer_token, rosa, settings
):
    first, copy = two_models
    assert sha_of(viewer_token, "aegis/tiny-bert") == first.sha256[:40]
    assert sha_of(viewer_token, "aegis/bert-copy") == copy.sha256[:40]
    assert sha_of(viewer_token, "acme/tiny-bert") == first.sha256[:40]  # the first registered

    admin = signed_in(rosa)
    answer = admin.post(
        "/admin/serving/hubrepochoice/add/", {"repo_id": "acme/tiny-bert", "model": copy.model.pk}
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    assert sha_of(viewer_token, "acme/tiny-bert") == copy.sha256[:40]
    event = AuditEvent.objects.get(action="serving.hub_repo_chosen")
    assert event.actor == "rosa" and event.details == {
        "repo_id": "acme/tiny-bert", "before": "tiny-bert", "after": "bert-copy",
    }  # fmt: skip

    choice = HubRepoChoice.objects.get()
    answer = admin.post(f"/admin/serving/hubrepochoice/{choice.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302
    assert sha_of(viewer_token, "acme/tiny-bert") == first.sha256[:40]
    assert AuditEvent.objects.filter(action="serving.hub_repo_chosen").count() == 2

    settings.AEGIS_HF_NAMESPACE = "models"
    assert sha_of(viewer_token, "models/bert-copy", "7") == copy.sha256[:40]


@pytest.mark.django_db
def test_a_model_with_no_version_from_the_repo_cannot_be_chosen_for_it(two_models, rosa):
    first, _copy = two_models
    answer = signed_in(rosa).post(
        "/admin/serving/hubrepochoice/add/", {"repo_id": "acme/other", "model": first.model.pk}
    )
    assert answer.status_code == 200
    assert "No version of tiny-bert was imported from acme/other." in answer.content.decode()
    assert not HubRepoChoice.objects.exists()
    assert not AuditEvent.objects.filter(action="serving.hub_repo_chosen").exists()
