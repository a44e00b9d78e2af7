"""Approvals: with ``ImportPolicy.require_approval`` on, a version an import registers awaits a
registry admin who is not its requester; approved it becomes active, rejected its stored
objects are removed and it is never served. Each step is audited in its own transaction.
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.utils import timezone

from aegis_catalog import services
from aegis_catalog.lib.storage import StorageError
from registry import audit
from registry.admin_site import is_registry_admin
from registry.models import ImportPolicy, ModelVersion, VersionApproval
from registry.provenance import stored_urls

logger = logging.getLogger(__name__)

APPROVAL_REQUESTED = "approval.requested"
APPROVAL_APPROVED = "approval.approved"
APPROVAL_REJECTED = "approval.rejected"


class ApprovalError(Exception):
    """An approval or rejection that cannot be made; the message says why."""


def approval_required() -> bool:
    return bool(ImportPolicy.current().require_approval)


def _audit(version: ModelVersion, action: str, *, actor: str, user, details: dict) -> None:
    audit.record(
        action, actor=actor, object_type="version", object_id=version.pk,
        object_repr=f"{version.model.name} {version.version}", model_name=version.model.name,
        details=details, user=user,
    )  # fmt: skip


def request_approval(
    version: ModelVersion, *, actor: str, user: User | AnonymousUser | None = None
) -> VersionApproval:
    """Record that ``version`` (registered as awaiting) waits for a decision (inside the
    registration's transaction)."""
    approval = VersionApproval.objects.create(
        version=version,
        requested_by=actor,
        requested_by_user=user if isinstance(user, User) else None,
    )
    _audit(
        version, APPROVAL_REQUESTED, actor=actor, user=user,
        details={"sha256": version.sha256, "source_repo": version.source_repo,
                 "source_commit": version.source_commit},
    )  # fmt: skip
    return approval


def _pending(version: ModelVersion, user: User | AnonymousUser, reason: str) -> VersionApproval:
    """The pending approval ``user`` may decide, locked; ApprovalError says why not."""
    if not is_registry_admin(user):
        raise ApprovalError("only a registry admin approves or rejects a version")
    if not reason.strip():
        raise ApprovalError("a reason is required")
    approval = (
        VersionApproval.objects.select_for_update().select_related("version__model")
        .filter(version=version).first()
    )  # fmt: skip
    if approval is None or approval.decision != VersionApproval.Decision.PENDING:
        raise ApprovalError(f"{version.model.name} {version.version} awaits no approval")
    same_user = approval.requested_by_user_id is not None and approval.requested_by_user_id == (
        user.pk
    )
    if same_user or approval.requested_by == user.get_username():
        raise ApprovalError(
            f"{approval.requested_by} requested this import: another registry admin decides"
        )
    return approval


def _decide(approval: VersionApproval, decision: str, status: str, *, actor: str, reason: str):
    approval.decision, approval.decided_by = decision, actor
    approval.decided_at, approval.reason = timezone.now(), reason.strip()
    approval.save(update_fields=["decision", "decided_by", "decided_at", "reason"])
    version = approval.version
    version.status, version.status_reason = status, reason.strip()
    version.save(update_fields=["status", "status_reason"])


@transaction.atomic
def approve(version: ModelVersion, *, user: User, reason: str) -> ModelVersion:
    """A registry admin other than the requester approves: the version becomes active."""
    approval = _pending(version, user, reason)
    actor = user.get_username()
    _decide(approval, approval.Decision.APPROVED, ModelVersion.Status.ACTIVE, actor=actor,
            reason=reason)  # fmt: skip
    _audit(
        approval.version, APPROVAL_APPROVED, actor=actor, user=user,
        details={"requested_by": approval.requested_by, "reason": reason.strip()},
    )  # fmt: skip
    return approval.version


def reject(version: ModelVersion, *, user: User, reason: str) -> ModelVersion:
    """A registry admin other than the requester rejects: the stored objects (tarball, model
    signature, attestation, aegis.json) are removed, then the version is recorded rejected. A
    store that fails leaves the approval pending, to be rejected again."""
    with transaction.atomic():
        _pending(version, user, reason)  # checked before anything is removed
    shared = ModelVersion.objects.filter(model_path=version.model_path).exclude(pk=version.pk)
    if not shared.exclude(status=ModelVersion.Status.REJECTED).exists():
        for url in stored_urls(version):
            try:
                services.served_store_for(url).delete(url)
            except StorageError as error:
                raise ApprovalError(f"the store did not remove {url}: {error}") from error
    with transaction.atomic():
        approval = _pending(version, user, reason)
        actor = user.get_username()
        _decide(approval, approval.Decision.REJECTED, ModelVersion.Status.REJECTED, actor=actor,
                reason=reason)  # fmt: skip
        _audit(
            approval.version, APPROVAL_REJECTED, actor=actor, user=user,
            details={"requested_by": approval.requested_by, "reason": reason.strip(),
                     "removed": list(stored_urls(version))},
        )  # fmt: skip
    return approval.version
