"""Anchors: the audit chain's head signed through Vault and kept in the artifact store, so a
rewrite of the whole table (every hash recomputed) is still reported."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from aegis_catalog import services
from registry import anchors, audit
from registry.models import AuditChainHead, AuditEvent, chain_hash
from tests.tampering import database_guard_off

pytestmark = pytest.mark.django_db


def record(n: int) -> None:
    for index in range(n):
        audit.record(
            "registry.version_edited", actor="root", object_type="version", object_id=index,
            object_repr=f"tiny-bert {index}", model_name="tiny-bert", details={"i": index},
        )  # fmt: skip


def anchor(aegis) -> anchors.Anchor | None:
    return anchors.anchor_chain(
        services.transit_client(), services.artifact_store(), key_name="aegis-model-sign"
    )


def rewrite_the_whole_table(sequence: int, actor: str) -> None:
    """Change one event and recompute every hash after it, and the head: the chain holds."""
    previous = AuditEvent.objects.get(sequence=sequence - 1).hash if sequence > 1 else "0" * 64
    with database_guard_off(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE registry_auditchainhead DISABLE TRIGGER USER")
        else:
            cursor.execute("DROP TRIGGER aegis_audit_head_moves_forward")
        for event in AuditEvent.objects.filter(sequence__gte=sequence).order_by("sequence"):
            content = event.content()
            if event.sequence == sequence:
                content["actor"] = actor
            new_hash = chain_hash(previous, content)
            cursor.execute(
                "UPDATE registry_auditevent SET actor = %s, previous_hash = %s, hash = %s "
                "WHERE id = %s",
                [content["actor"], previous, new_hash, event.pk],
            )
            previous = new_hash
        cursor.execute("UPDATE registry_auditchainhead SET last_hash = %s", [previous])


def test_an_anchor_is_signed_and_stored_outside_the_database(aegis, capsys):
    record(2)
    anchors.anchor_chain(  # the key is read into the trust store: events of its own
        services.transit_client(), services.artifact_store(), key_name="aegis-model-sign"
    )
    record(1)
    written = anchor(aegis)
    head = AuditChainHead.objects.get(pk=1)
    assert written is not None and written.sequence == head.last_sequence
    assert anchor(aegis) is None  # the head has not moved since
    stored = Path(written.url.removeprefix("file://"))
    assert stored.is_relative_to(Path(aegis.artifact_root))
    statement = anchors.read_anchor(services.artifact_store(), written.url)
    assert statement.hash == AuditEvent.objects.get(sequence=written.sequence).hash
    call_command("verify_audit_chain")
    assert "signed anchor(s) hold" in capsys.readouterr().out


def test_a_rewrite_of_the_whole_table_is_reported_by_the_anchor(aegis):
    record(4)
    written = anchor(aegis)
    assert written is not None
    rewrite_the_whole_table(2, actor="mallory")
    assert audit.verify_chain().ok  # every hash was recomputed: the chain alone cannot tell
    count, problems = anchors.verify_anchors(services.artifact_store())
    assert count == 1
    assert problems == [
        f"event #{written.sequence} no longer has the hash anchored at {written.anchored_at}: "
        "the table was rewritten behind the anchor"
    ]
    with pytest.raises(CommandError, match="rewritten behind the anchor"):
        call_command("verify_audit_chain")


def test_an_altered_anchor_does_not_verify(aegis):
    record(2)
    written = anchor(aegis)
    assert written is not None
    path = Path(written.url.removeprefix("file://"))
    bundle = json.loads(path.read_text())
    statement = anchors.anchor_statement(2, "f" * 64, written.anchored_at)
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    path.write_text(json.dumps(bundle))
    _, problems = anchors.verify_anchors(services.artifact_store())
    assert len(problems) == 1 and "does not verify" in problems[0]
