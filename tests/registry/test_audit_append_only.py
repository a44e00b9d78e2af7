"""The audit trail cannot be changed, by the ORM or by the database: deleting a user keeps the
chain, an event given an existing id is refused, the chain head only moves forward, and the
database refuses UPDATE (and on PostgreSQL DELETE) of an event, whoever connects."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import DatabaseError, connection, transaction

from registry import audit
from registry.models import AuditChainHead, AuditEvent, AuditLogIsAppendOnly

pytestmark = pytest.mark.django_db


def record(user: User | None = None, action: str = "registry.version_edited") -> AuditEvent:
    return audit.record(
        action, actor=user.username if user else "root", user=user, object_type="version",
        object_id=1, object_repr="tiny-bert 1.0", model_name="tiny-bert", details={"n": 1},
    )  # fmt: skip


def test_deleting_a_user_leaves_their_events_and_the_chain_as_they_were():
    dana = User.objects.create_user("dana")
    event = record(dana)
    record()
    dana_id = dana.pk
    dana.delete()
    assert audit.verify_chain().ok
    event = AuditEvent.objects.get(pk=event.pk)
    assert (event.actor, event.actor_user_id) == ("dana", dana_id)


def test_a_new_event_with_an_existing_id_is_refused():
    event = record()
    forged = AuditEvent(
        pk=event.pk, sequence=event.sequence, created_at=event.created_at, actor="mallory",
        action=event.action, object_type="version", object_id="1", object_repr="x",
        previous_hash=event.previous_hash, hash=event.hash,
    )  # fmt: skip
    with pytest.raises(AuditLogIsAppendOnly):
        forged.save()
    assert AuditEvent.objects.get(pk=event.pk).actor == "root"


def test_the_chain_head_moves_only_as_events_are_appended():
    record()
    head = AuditChainHead.objects.get(pk=1)
    head.last_hash = "0" * 64
    with pytest.raises(AuditLogIsAppendOnly):
        head.save()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditChainHead.objects.filter(pk=1).update(last_sequence=0)
    with pytest.raises(AuditLogIsAppendOnly):
        head.delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditChainHead.objects.all().delete()
    assert audit.verify_chain().ok


def raw(sql: str, params: list[Any]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_the_database_refuses_a_raw_update_of_an_event():
    event = record()
    with pytest.raises(DatabaseError, match="append-only"):
        raw(f"UPDATE {AuditEvent._meta.db_table} SET actor = %s WHERE id = %s", ["x", event.pk])
    assert AuditEvent.objects.get(pk=event.pk).actor == "root"
    assert audit.verify_chain().ok


def test_the_database_refuses_to_move_the_chain_head_back_or_to_a_made_up_hash():
    record()
    record()
    table = AuditChainHead._meta.db_table
    with pytest.raises(DatabaseError, match="moves only forward"):
        raw(f"UPDATE {table} SET last_sequence = %s WHERE id = 1", [1])
    with pytest.raises(DatabaseError, match="moves only forward"):
        raw(f"UPDATE {table} SET last_sequence = %s, last_hash = %s WHERE id = 1", [3, "f" * 64])
    assert audit.verify_chain().ok


def test_the_database_refuses_a_raw_delete_of_an_event():
    if connection.vendor == "sqlite":
        if os.environ.get("CI"):
            pytest.fail("CI runs the suite on PostgreSQL (DATABASE_URL)")
        pytest.skip("SQLite keeps DELETE for the test database's flush; CI checks PostgreSQL")
    event = record()
    with pytest.raises(DatabaseError, match="append-only"):
        raw(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [event.pk])
    assert AuditEvent.objects.filter(pk=event.pk).exists()
