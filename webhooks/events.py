"""The events webhooks receive: actions of the audit trail, under their own names."""

from __future__ import annotations

from typing import Any

# Audit actions sent to webhooks (registry.audit.Action), with what each tells.
EVENTS: dict[str, str] = {
    "import.succeeded": "an import registered a version",
    "import.failed": "an import failed (its error and error code in details)",
    "registry.version_yanked": "a version was yanked",
    "upstream.changed": "a registered model's upstream repo changed",
    "approval.requested": "a version awaits approval",
    "approval.approved": "a version was approved (now active)",
    "approval.rejected": "a version was rejected (its stored files removed)",
}


def payload_of(event: Any) -> dict[str, Any]:
    """The JSON sent for an audit event: the event's own fields, its sequence and hash in the
    chain (a receiver can match it against the audit trail)."""
    return {
        "event": event.action,
        "audit": {
            "sequence": event.sequence,
            "hash": event.hash,
            "created_at": event.created_at.isoformat(),
            "actor": event.actor,
            "object_type": event.object_type,
            "object_id": event.object_id,
            "object_repr": event.object_repr,
            "model_name": event.model_name,
            "details": event.details,
        },
    }
