"""What an attacker with the database owner's rights can do to the audit trail: switch its
triggers off and edit rows. Tests use it to show the chain check and the anchors notice."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from registry.models import AuditEvent


@contextmanager
def database_guard_off() -> Iterator[None]:
    """Switch the audit table's triggers off (inside a test's transaction, which puts them back;
    a transactional test must put them back itself with ``database_guard_on``)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE {AuditEvent._meta.db_table} DISABLE TRIGGER USER")
        else:
            cursor.execute("DROP TRIGGER aegis_audit_event_no_update")
    yield


def tamper(sequence: int, **fields: object) -> None:
    """Change an event's columns in the database, behind the ORM's and the triggers' back."""
    assignments = ", ".join(f"{name} = %s" for name in fields)
    with database_guard_off(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET {assignments} WHERE sequence = %s",
            [*fields.values(), sequence],  # type: ignore[list-item]
        )
