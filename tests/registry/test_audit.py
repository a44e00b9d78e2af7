"""The audit trail: written with each change, append-only, hash-chained, checkable."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from registry import actions, audit
from registry.models import AuditEvent, AuditLogIsAppendOnly, ModelVersion
from tests.tampering import database_guard_off

pytestmark = pytest.mark.django_db


@pytest.fixture
def imported(aegis) -> ModelVersion:
    call_command(
        "hf_import",
        "--repo-id", "acme/tiny-bert", "--model-name", "tiny-bert", "--version", "1.0",
        "--register", "--no-progress", "--actor", "alice",
    )  # fmt: skip
    return ModelVersion.objects.select_related("model", "signing_key").get()


def actions_of(**filters) -> list[str]:
    return list(
        AuditEvent.objects.filter(**filters).order_by("sequence").values_list("action", flat=True)
    )


def test_an_import_writes_its_story_to_the_chain(imported):
    written = actions_of()
    assert written[0] == "import.requested"
    for action in (
        "import.started",
        "import.stage_finished",
        "key.added",
        "registry.model_created",
        "registry.version_created",
        "import.succeeded",
    ):
        assert action in written
    assert written.index("registry.version_created") < written.index("import.succeeded")
    requested = AuditEvent.objects.get(action="import.requested")
    assert requested.actor == "alice"
    assert requested.model_name == "tiny-bert"
    created = AuditEvent.objects.get(action="registry.version_created")
    assert created.details["sha256"] == imported.sha256
    assert created.details["source_commit"] == imported.source_commit
    assert audit.verify_chain().ok


def test_editing_a_versions_license_records_before_and_after(imported):
    diff = actions.edit_version(imported, {"license": "mit"}, actor="root")
    assert diff == {"license": {"before": "apache-2.0", "after": "mit"}}
    event = AuditEvent.objects.get(action="registry.version_edited")
    assert event.actor == "root"
    assert event.details["changes"]["license"] == {"before": "apache-2.0", "after": "mit"}
    imported.refresh_from_db()
    assert imported.license == "mit"


def test_integrity_fields_cannot_be_edited_through_the_actions(imported):
    with pytest.raises(actions.RegistryError, match="sha256"):
        actions.edit_version(imported, {"sha256": "0" * 64}, actor="root")
    imported.refresh_from_db()
    assert imported.sha256 != "0" * 64
    assert not AuditEvent.objects.filter(action="registry.version_edited").exists()


def test_yank_and_restore_are_recorded_with_their_reason(imported):
    actions.set_version_status(imported, "yanked", actor="root", reason="bad weights")
    actions.set_version_status(imported, "active", actor="root", reason="false alarm")
    yanked = AuditEvent.objects.get(action="registry.version_yanked")
    assert yanked.details == {"before": "active", "after": "yanked", "reason": "bad weights"}
    assert AuditEvent.objects.get(action="registry.version_restored").details["after"] == "active"


def test_a_revoked_key_version_is_recorded(aegis, transit_key):
    from aegis_catalog import services

    client = services.transit_client()
    actions.sync_signing_keys(client, transit_key)
    aegis.openbao.rotate(transit_key)
    aegis.openbao.set_min_decryption_version(transit_key, 2)
    actions.sync_signing_keys(client, transit_key, actor="ops")
    rotated = AuditEvent.objects.get(action="key.rotated")
    assert rotated.object_repr == f"{transit_key} v2"
    revoked = AuditEvent.objects.get(action="key.revoked")
    assert revoked.object_repr == f"{transit_key} v1"
    assert revoked.actor == "ops"


def test_verification_runs_are_recorded(imported, capsys):
    call_command("verify_artifact", imported.model_path)
    passed = AuditEvent.objects.get(action="verification.passed")
    assert "model_signature" in passed.details["checks"]
    actions.set_version_status(imported, "yanked", actor="root", reason="withdrawn")
    with pytest.raises(CommandError):
        call_command("verify_artifact", imported.model_path)
    failed = AuditEvent.objects.get(action="verification.failed")
    assert failed.details["failed_check"] == "not_yanked"
    assert failed.object_repr == "tiny-bert 1.0"


def test_the_orm_refuses_to_change_or_delete_events(imported):
    event = AuditEvent.objects.earliest("sequence")
    event.actor = "mallory"
    with pytest.raises(AuditLogIsAppendOnly):
        event.save()
    with pytest.raises(AuditLogIsAppendOnly):
        event.delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(actor="mallory")
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.all().delete()


def test_a_row_edited_in_the_database_breaks_the_chain_at_that_event(imported, capsys):
    call_command("verify_audit_chain")
    assert "audit chain intact" in capsys.readouterr().out
    target = AuditEvent.objects.get(action="registry.version_created")
    with database_guard_off(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET actor = %s WHERE id = %s",
            ["mallory", target.pk],
        )
    with pytest.raises(CommandError) as error:
        call_command("verify_audit_chain")
    message = str(error.value)
    assert f"event #{target.sequence} (id {target.pk}" in message
    assert "registry.version_created" in message
    assert "changed after it was written" in message


def test_removing_the_newest_event_is_detected(imported):
    newest = AuditEvent.objects.latest("sequence")
    with database_guard_off(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [newest.pk])
    report = audit.verify_chain()
    assert not report.ok
    assert "later events were removed" in report.reason


def test_staff_sign_in_is_recorded(client, django_user_model):
    django_user_model.objects.create_user("root", password="pw-for-tests", is_staff=True)
    django_user_model.objects.create_user("dana", password="pw-for-tests")
    assert client.login(username="root", password="pw-for-tests")
    assert client.login(username="dana", password="pw-for-tests")
    signed_in = AuditEvent.objects.filter(action="auth.staff_signed_in")
    assert [event.actor for event in signed_in] == ["root"]


def test_an_import_refuses_to_sign_with_a_revoked_latest_key(imported):
    actions.revoke_signing_key(imported.signing_key, actor="root", reason="key leaked")
    with pytest.raises(CommandError, match="is revoked in the trust store"):
        call_command(
            "hf_import",
            "--repo-id", "acme/tiny-bert", "--model-name", "tiny-bert-b", "--version", "1.0",
            "--include", "*.json", "--register", "--no-progress",
        )  # fmt: skip
    assert ModelVersion.objects.count() == 1
