"""The audit trail: append events to the hash chain, and check the chain.

``record`` is called by the actions, inside the transaction of the change it records, so an
event exists exactly when its change does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import models, transaction
from django.utils import timezone

from registry.models import GENESIS_HASH, AuditChainHead, AuditEvent, chain_hash


class Action(models.TextChoices):
    IMPORT_REQUESTED = "import.requested", "import requested"
    IMPORT_STARTED = "import.started", "import started"
    IMPORT_STAGE_STARTED = "import.stage_started", "import stage started"
    IMPORT_STAGE_FINISHED = "import.stage_finished", "import stage finished"
    IMPORT_STAGE_SKIPPED = "import.stage_skipped", "import stage skipped"
    IMPORT_NOTE = "import.note", "import note"
    IMPORT_SUCCEEDED = "import.succeeded", "import succeeded"
    IMPORT_FAILED = "import.failed", "import failed"
    IMPORT_RETRIED = "import.retried", "import retried"
    IMPORT_CANCELLED = "import.cancelled", "import cancelled"
    MODEL_CREATED = "registry.model_created", "model created"
    MODEL_EDITED = "registry.model_edited", "model edited"
    VERSION_CREATED = "registry.version_created", "version created"
    VERSION_EDITED = "registry.version_edited", "version edited"
    VERSION_DEPRECATED = "registry.version_deprecated", "version deprecated"
    VERSION_YANKED = "registry.version_yanked", "version yanked"
    VERSION_RESTORED = "registry.version_restored", "version restored"
    KEY_ADDED = "key.added", "signing key added"
    KEY_ROTATED = "key.rotated", "signing key rotated"
    KEY_REVOKED = "key.revoked", "signing key revoked"
    VERIFICATION_PASSED = "verification.passed", "verification passed"
    VERIFICATION_FAILED = "verification.failed", "verification failed"
    VERSION_REBUILT = "verification.rebuilt", "rebuilt from the Hub"
    STAFF_SIGNED_IN = "auth.staff_signed_in", "staff signed in"
    POLICY_EDITED = "policy.edited", "import policy edited"
    POLICY_OVERRIDE_GRANTED = "policy.override_granted", "policy override granted"
    API_TOKEN_CREATED = "auth.api_token_created", "API token created"
    API_TOKEN_REVOKED = "auth.api_token_revoked", "API token revoked"
    HUB_REPO_CHOSEN = "serving.hub_repo_chosen", "model chosen for a Hub repo id"
    UPSTREAM_CHANGED = "upstream.changed", "changed upstream"
    UPSTREAM_IN_SYNC = "upstream.in_sync", "in sync with upstream again"


def _json_safe(value: Any) -> Any:
    """What the database will give back: JSON types only, so the hash survives a round trip."""
    return json.loads(json.dumps(value, default=str))


def record(
    action: str,
    *,
    actor: str,
    object_type: str,
    object_id: Any,
    object_repr: str,
    model_name: str = "",
    details: dict[str, Any] | None = None,
    user: User | AnonymousUser | None = None,
) -> AuditEvent:
    """Append one event to the chain (joining the caller's transaction, if any)."""
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
        if head is None:  # a migration creates it; a flushed test database does not have it
            AuditChainHead.objects.get_or_create(pk=1)
            head = AuditChainHead.objects.select_for_update().get(pk=1)
        event = AuditEvent(
            sequence=head.last_sequence + 1,
            created_at=timezone.now(),
            actor=actor[:300],
            actor_user=user if isinstance(user, User) else None,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            object_repr=object_repr[:300],
            model_name=model_name,
            details=_json_safe(details or {}),
            previous_hash=head.last_hash,
        )
        event.hash = event.compute_hash()
        event.save()
        head.advance(event)
    return event


@dataclass(frozen=True)
class ChainReport:
    """The result of checking the chain: ``broken`` is None when every link holds."""

    checked: int
    broken: AuditEvent | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


def _in_order(batch: int) -> Iterator[AuditEvent]:
    last = 0
    while True:
        events = list(AuditEvent.objects.filter(sequence__gt=last).order_by("sequence")[:batch])
        if not events:
            return
        yield from events
        last = events[-1].sequence


def verify_chain(*, batch: int = 5000) -> ChainReport:
    """Recompute every link, oldest first; report the first event that does not hold."""
    previous_hash = GENESIS_HASH
    expected_sequence = 1
    checked = 0
    for event in _in_order(batch):
        if event.sequence != expected_sequence:
            return ChainReport(
                checked,
                event,
                f"event #{expected_sequence} is missing (the next one is #{event.sequence})",
            )
        if event.previous_hash != previous_hash:
            return ChainReport(
                checked,
                event,
                f"event #{event.sequence} does not point to the hash of event "
                f"#{event.sequence - 1}",
            )
        if chain_hash(event.previous_hash, event.content()) != event.hash:
            return ChainReport(
                checked,
                event,
                f"event #{event.sequence} (id {event.pk}, {event.action} of "
                f"{event.object_repr}) does not match its hash: "
                "it was changed after it was written",
            )
        previous_hash = event.hash
        expected_sequence += 1
        checked += 1
    head = AuditChainHead.objects.filter(pk=1).first() or AuditChainHead()
    if head.last_sequence != checked or head.last_hash != previous_hash:
        return ChainReport(
            checked,
            None if checked == 0 else AuditEvent.objects.get(sequence=checked),
            f"the chain ends at event #{checked}, but #{head.last_sequence} was written: "
            "later events were removed",
        )
    return ChainReport(checked)
