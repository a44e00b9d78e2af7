"""The registry in the Django admin: audited edits, read-only integrity, reasons, access."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.urls import reverse

from registry.models import AuditEvent, ModelVersion, SigningKey

pytestmark = pytest.mark.django_db


def user_in(django_user_model, username: str, group: str, *codenames: str):
    user = django_user_model.objects.create_user(username, password="pw-for-tests")
    members, _ = Group.objects.get_or_create(name=group)
    members.permissions.add(*Permission.objects.filter(codename__in=codenames))
    user.groups.add(members)
    return user


@pytest.fixture
def registry_admin(django_user_model):
    return user_in(
        django_user_model,
        "rosa",
        "registry-admin",
        "view_registeredmodel",
        "change_registeredmodel",
        "view_modelversion",
        "change_modelversion",
        "view_signingkey",
        "change_signingkey",
        "view_auditevent",
    )


@pytest.fixture
def admin_client(client, registry_admin):
    client.force_login(registry_admin)
    return client


@pytest.fixture
def version(aegis) -> ModelVersion:
    call_command(
        "hf_import",
        "--repo-id", "acme/tiny-bert", "--model-name", "tiny-bert", "--version", "1.0",
        "--register", "--no-progress", "--actor", "alice",
    )  # fmt: skip
    return ModelVersion.objects.select_related("model").get()


def change_url(obj) -> str:
    return reverse(f"admin:registry_{obj._meta.model_name}_change", args=[obj.pk])


def test_an_admin_edits_a_license_and_the_audit_trail_has_before_after_and_name(
    admin_client, version
):
    original_sha256 = version.sha256
    response = admin_client.post(
        change_url(version),
        {"license": "mit", "sha256": "0" * 64, "imported_by": "mallory", "_save": "Save"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    version.refresh_from_db()
    assert version.license == "mit"
    assert version.sha256 == original_sha256
    assert version.imported_by == "alice"
    event = AuditEvent.objects.get(action="registry.version_edited")
    assert event.actor == "rosa"
    assert event.details["changes"] == {"license": {"before": "apache-2.0", "after": "mit"}}


def test_the_change_form_shows_integrity_fields_read_only(admin_client, version):
    page = admin_client.get(change_url(version)).content.decode()
    assert 'name="license"' in page
    for field in ("sha256", "model_signature", "attestation", "source_commit", "imported_by"):
        assert f'name="{field}"' not in page
    assert version.sha256 in page


def test_yanking_needs_a_reason_and_records_it(admin_client, version):
    changelist = reverse("admin:registry_modelversion_changelist")
    selection = {"action": "yank", "_selected_action": [version.pk], "index": 0}
    admin_client.post(changelist, {**selection, "reason": ""})
    version.refresh_from_db()
    assert version.status == "active"
    admin_client.post(changelist, {**selection, "reason": "weights withdrawn upstream"})
    version.refresh_from_db()
    assert version.status == "yanked"
    assert version.status_reason == "weights withdrawn upstream"
    event = AuditEvent.objects.get(action="registry.version_yanked")
    assert event.actor == "rosa"
    assert event.details["reason"] == "weights withdrawn upstream"


def test_a_model_edit_in_the_admin_is_audited(admin_client, version):
    model = version.model
    form = {
        "author": "acme-labs",
        "license": model.license,
        "pipeline_tag": model.pipeline_tag,
        "library_name": model.library_name,
        "base_model": model.base_model,
        "tags": '["bert", "tiny", "reviewed"]',
        "datasets": '["wikitext"]',
        "languages": '["en"]',
        "gated": model.gated,
        "_save": "Save",
    }
    response = admin_client.post(change_url(model), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="registry.model_edited")
    assert event.details["changes"] == {
        "author": {"before": "acme", "after": "acme-labs"},
        "tags": {"before": ["bert", "tiny"], "after": ["bert", "tiny", "reviewed"]},
    }


def test_a_signing_key_can_only_be_revoked(admin_client, version):
    key = SigningKey.objects.get(pk=version.signing_key_id)
    response = admin_client.post(change_url(key), {"revoked": "on", "_save": "Save"})
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked
    assert AuditEvent.objects.filter(action="key.revoked", object_id=str(key.pk)).exists()
    assert admin_client.post(change_url(key), {"_save": "Save"}).status_code == 403
    key.refresh_from_db()
    assert key.revoked


def test_audit_events_are_read_only_in_the_admin(admin_client, version):
    event = AuditEvent.objects.earliest("sequence")
    assert admin_client.get(change_url(event)).status_code == 200
    response = admin_client.post(change_url(event), {"actor": "mallory"})
    assert response.status_code == 403
    delete = reverse("admin:registry_auditevent_delete", args=[event.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.actor != "mallory"


def test_an_auditor_gets_403_on_the_admin(client, django_user_model, version):
    auditor = user_in(django_user_model, "audrey", "auditor", "view_modelversion")
    client.force_login(auditor)
    assert client.get("/admin/").status_code == 403
    assert client.get(change_url(version)).status_code == 403
    assert client.get("/admin/login/").status_code == 403


def test_an_anonymous_visitor_is_sent_to_sign_in(client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
