"""Every change to the registry goes through these functions, each atomic and with an actor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from aegis_catalog.lib.vault import TransitClient, TransitKeyInfo
from registry import approvals, attestation, audit
from registry.card import CardMetadata
from registry.models import (
    ImportPolicy,
    ModelVersion,
    PolicyOverride,
    RegisteredModel,
    SigningKey,
)

SYSTEM_ACTOR = "aegis"


class RegistryError(Exception):
    """A registry change was refused; the message says why."""


class VersionAlreadyExists(RegistryError):
    pass


class UnknownSigningKey(RegistryError):
    pass


# --- trust store --------------------------------------------------------------------------


@transaction.atomic
def record_signing_keys(
    info: TransitKeyInfo, *, vault_addr: str, mount: str, actor: str = SYSTEM_ACTOR
) -> list[SigningKey]:
    """Store every public key version Vault lists; mark the versions it stopped listing revoked.

    Vault lists only versions at or above ``min_decryption_version``, so a version that
    disappears from the listing was retired on purpose: artifacts it signed no longer verify.
    """
    rows: list[SigningKey] = []
    listed: set[int] = set()
    for key in info.versions:
        listed.add(key.version)
        fingerprint = attestation.public_key_fingerprint(key.public_key_pem)
        row, created = SigningKey.objects.get_or_create(
            vault_addr=vault_addr,
            transit_mount=mount,
            name=info.name,
            version=key.version,
            fingerprint=fingerprint,
            defaults={
                "algorithm": key.algorithm,
                "public_key_pem": key.public_key_pem,
                "vault_created_at": key.created_at,
            },
        )
        rows.append(row)
        if created:
            _audit_key(
                row,
                audit.Action.KEY_ROTATED if key.version > 1 else audit.Action.KEY_ADDED,
                actor=actor,
                details={"vault": vault_addr, "mount": mount},
            )
    retired = SigningKey.objects.filter(
        vault_addr=vault_addr,
        transit_mount=mount,
        name=info.name,
        revoked=False,
        version__lt=info.min_decryption_version,
    ).exclude(version__in=listed)
    for row in retired:
        _revoke(
            row,
            actor=actor,
            reason=f"Vault's min_decryption_version is {info.min_decryption_version}",
        )
    return rows


def sync_signing_keys(
    client: TransitClient, key_name: str, *, actor: str = SYSTEM_ACTOR
) -> SigningKey:
    """Read the key's public versions from Vault into the trust store; return the latest."""
    info = client.read_public_keys(key_name)
    rows = record_signing_keys(
        info, vault_addr=client.config.addr, mount=client.config.transit_mount, actor=actor
    )
    latest = [row for row in rows if row.version == info.latest_version]
    if not latest:
        raise UnknownSigningKey(
            f"Vault lists no public key for the latest version {info.latest_version} of "
            f"transit key {key_name!r}"
        )
    if latest[0].revoked:
        raise RegistryError(
            f"the latest version ({info.latest_version}) of transit key {key_name!r} is revoked "
            "in the trust store: rotate the key in Vault before signing"
        )
    return latest[0]


def _audit_key(
    key: SigningKey, action: str, *, actor: str, details: dict[str, Any], user: Any = None
) -> None:
    audit.record(
        action,
        actor=actor,
        user=user,
        object_type="signing_key",
        object_id=key.pk,
        object_repr=f"{key.name} v{key.version}",
        details={"fingerprint": key.fingerprint, **details},
    )


def _revoke(key: SigningKey, *, actor: str, reason: str, user: Any = None) -> None:
    key.revoked = True
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked", "revoked_at"])
    _audit_key(key, audit.Action.KEY_REVOKED, actor=actor, details={"reason": reason}, user=user)


@transaction.atomic
def revoke_signing_key(
    key: SigningKey, *, actor: str, reason: str, user: User | AnonymousUser | None = None
) -> SigningKey:
    """Stop trusting a key version: artifacts it signed no longer verify."""
    if not reason.strip():
        raise RegistryError("a reason is required to revoke a signing key")
    if not key.revoked:
        _revoke(key, actor=actor, reason=reason.strip(), user=user)
    return key


# --- registration ---------------------------------------------------------------------------


def _clean(instance: Any, exclude: Sequence[str] = ()) -> None:
    try:
        instance.full_clean(exclude=list(exclude))
    except ValidationError as error:
        problems = "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items()
        )
        raise RegistryError(f"the registry refused {instance}: {problems}") from None


def _user_or_none(user: User | AnonymousUser | None) -> User | None:
    if isinstance(user, User):
        return user
    return None


@dataclass(frozen=True)
class NewVersion:
    """Everything the registry records about a version an import produced."""

    model_name: str
    version: str
    card: CardMetadata
    card_data: Mapping[str, Any]
    model_path: str
    sha256: str
    size: int
    manifest: Sequence[Mapping[str, Any]]
    model_signature: Mapping[str, Any]
    attestation_bundle: Mapping[str, Any]
    signing_key: SigningKey
    source_repo: str
    source_revision: str
    source_commit: str
    source_endpoint: str
    import_options: Mapping[str, Any]
    scan_results: Sequence[Mapping[str, Any]]

    def card_values(self) -> dict[str, Any]:
        """The registered model's fields, from the card at the imported commit."""
        card = self.card
        return {
            "source_repo": self.source_repo,
            "author": card.author,
            "license": card.license,
            "pipeline_tag": card.pipeline_tag,
            "library_name": card.library_name,
            "base_model": card.base_model,
            "tags": list(card.tags),
            "datasets": list(card.datasets),
            "languages": list(card.languages),
            "gated": card.gated,
            "card_data": dict(self.card_data),
        }


@transaction.atomic
def register(
    new: NewVersion,
    *,
    actor: str,
    imported_at: datetime | None = None,
    user: User | AnonymousUser | None = None,
) -> ModelVersion:
    """Create or update the registered model from its card, and add the signed version.

    The only way a version enters the registry. Raises ``VersionAlreadyExists`` when the
    name already has that version (nothing is changed then).
    """
    card_values = new.card_values()
    model, created = RegisteredModel.objects.select_for_update().get_or_create(
        name=new.model_name, defaults=card_values
    )
    if ModelVersion.objects.filter(model=model, version=new.version).exists():
        raise VersionAlreadyExists(f"{new.model_name} already has a version {new.version}")
    if model.source_repo != new.source_repo:
        # The name is bound to its repo: another repo's card must not overwrite this one's.
        raise RegistryError(
            f"{new.model_name} holds versions imported from {model.source_repo}; "
            f"{new.source_repo} cannot be registered under that name"
        )
    before = _values(model, MODEL_EDITABLE_FIELDS)
    if not created:
        for key, value in card_values.items():
            setattr(model, key, value)
    _clean(model)
    if not created:
        model.save()
    awaiting = approvals.approval_required()
    row = _create_version(
        new, model, actor=actor, user=user, imported_at=imported_at, awaiting=awaiting
    )
    if created:
        _audit_model(model, audit.Action.MODEL_CREATED, actor=actor, user=user, details=card_values)
    elif before != _values(model, MODEL_EDITABLE_FIELDS):
        changes = _changes(before, _values(model, MODEL_EDITABLE_FIELDS))
        _audit_model(
            model, audit.Action.MODEL_EDITED, actor=actor, user=user, details={"changes": changes}
        )
    _audit_version(
        row,
        audit.Action.VERSION_CREATED,
        actor=actor,
        user=user,
        details={
            "sha256": new.sha256,
            "size": new.size,
            "model_path": new.model_path,
            "source_repo": new.source_repo,
            "source_commit": new.source_commit,
            "signing_key": f"{new.signing_key.name} v{new.signing_key.version}",
            "files": len(new.manifest),
            "status": row.status,
        },
    )
    if awaiting:
        approvals.request_approval(row, actor=actor, user=user)
    return row


def _create_version(
    new: NewVersion,
    model: RegisteredModel,
    *,
    actor: str,
    user: User | AnonymousUser | None,
    imported_at: datetime | None,
    awaiting: bool = False,
) -> ModelVersion:
    row = ModelVersion(
        status=ModelVersion.Status.AWAITING if awaiting else ModelVersion.Status.ACTIVE,
        model=model,
        version=new.version,
        model_path=new.model_path,
        sha256=new.sha256,
        size=new.size,
        file_count=len(new.manifest),
        manifest=list(new.manifest),
        model_signature=dict(new.model_signature),
        attestation=dict(new.attestation_bundle),
        signing_key=new.signing_key,
        source_repo=new.source_repo,
        source_revision=new.source_revision,
        source_commit=new.source_commit,
        source_endpoint=new.source_endpoint,
        import_options=dict(new.import_options),
        scan_results=list(new.scan_results),
        license=new.card.license,
        imported_by=actor,
        imported_by_user=_user_or_none(user),
        imported_at=imported_at or timezone.now(),
    )
    _clean(row, exclude=["model"])
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError as error:
        raise VersionAlreadyExists(
            f"{new.model_name} already has a version {new.version}"
        ) from error
    return row


STATUS_ACTIONS = {
    ModelVersion.Status.ACTIVE: audit.Action.VERSION_RESTORED,
    ModelVersion.Status.DEPRECATED: audit.Action.VERSION_DEPRECATED,
    ModelVersion.Status.YANKED: audit.Action.VERSION_YANKED,
}


@transaction.atomic
def set_version_status(
    version: ModelVersion,
    status: str,
    *,
    actor: str,
    reason: str,
    user: User | AnonymousUser | None = None,
) -> ModelVersion:
    """Deprecate, yank or restore a version; a reason is required for the record."""
    if status not in STATUS_ACTIONS:
        raise RegistryError(f"a version cannot be set to {status!r} here")
    if version.status in (ModelVersion.Status.AWAITING, ModelVersion.Status.REJECTED):
        raise RegistryError(
            f"{version.model.name} {version.version} is {version.get_status_display()}: it is "
            "approved or rejected on the approvals page, not deprecated, yanked or restored"
        )
    if not reason.strip():
        raise RegistryError("a reason is required to change a version's status")
    before = version.status
    version.status = status
    version.status_reason = reason.strip()
    version.save(update_fields=["status", "status_reason"])
    _audit_version(
        version,
        STATUS_ACTIONS[ModelVersion.Status(status)],
        actor=actor,
        user=user,
        details={"before": before, "after": status, "reason": reason.strip()},
    )
    return version


# Fields a person may correct; digests, signatures, source and who/when are not among them.
MODEL_EDITABLE_FIELDS = (
    "author",
    "license",
    "pipeline_tag",
    "library_name",
    "base_model",
    "tags",
    "datasets",
    "languages",
    "gated",
)
VERSION_EDITABLE_FIELDS = ("license",)


def _values(instance: Any, fields: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in fields}


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: {"before": before[name], "after": after[name]}
        for name in before
        if before[name] != after[name]
    }


def _apply_edit(
    instance: Any, changes: Mapping[str, Any], editable: Sequence[str]
) -> dict[str, dict[str, Any]]:
    refused = sorted(set(changes) - set(editable))
    if refused:
        raise RegistryError(f"these fields cannot be edited: {', '.join(refused)}")
    before = _values(instance, editable)
    for name, value in changes.items():
        setattr(instance, name, value)
    _clean(instance, exclude=["model"] if isinstance(instance, ModelVersion) else ())
    diff = _changes(before, _values(instance, editable))
    if diff:
        instance.save(update_fields=list(diff))
    return diff


@transaction.atomic
def edit_model(
    model: RegisteredModel, changes: Mapping[str, Any], *, actor: str, user: Any = None
) -> dict[str, dict[str, Any]]:
    """Correct a model's card fields; records each field's before and after."""
    return _edit(model, changes, actor=actor, user=user)


@transaction.atomic
def edit_version(
    version: ModelVersion, changes: Mapping[str, Any], *, actor: str, user: Any = None
) -> dict[str, dict[str, Any]]:
    """Correct a version's editable fields; records each field's before and after."""
    return _edit(version, changes, actor=actor, user=user)


def _edit(
    instance: RegisteredModel | ModelVersion, changes: Mapping[str, Any], *, actor: str, user: Any
) -> dict[str, dict[str, Any]]:
    if isinstance(instance, ModelVersion):
        diff = _apply_edit(instance, changes, VERSION_EDITABLE_FIELDS)
        if diff:
            _audit_version(
                instance, audit.Action.VERSION_EDITED, actor=actor, user=user,
                details={"changes": diff},
            )  # fmt: skip
    else:
        diff = _apply_edit(instance, changes, MODEL_EDITABLE_FIELDS)
        if diff:
            _audit_model(
                instance, audit.Action.MODEL_EDITED, actor=actor, user=user,
                details={"changes": diff},
            )  # fmt: skip
    return diff


def _audit_model(
    model: RegisteredModel, action: str, *, actor: str, user: Any, details: dict[str, Any]
) -> None:
    audit.record(
        action, actor=actor, user=user, object_type="model", object_id=model.pk,
        object_repr=model.name, model_name=model.name, details=details,
    )  # fmt: skip


def _audit_version(
    version: ModelVersion, action: str, *, actor: str, user: Any, details: dict[str, Any]
) -> None:
    audit.record(
        action, actor=actor, user=user, object_type="version", object_id=version.pk,
        object_repr=f"{version.model.name} {version.version}", model_name=version.model.name,
        details=details,
    )  # fmt: skip


@transaction.atomic
def record_verification(
    version: ModelVersion | None,
    *,
    artifact: str,
    actor: str,
    passed: bool,
    checks: Sequence[str],
    failed_check: str = "",
    error: str = "",
    user: User | AnonymousUser | None = None,
) -> None:
    """Record that someone verified an artifact, and what came of it."""
    details = {"artifact": artifact, "checks": list(checks)}
    if not passed:
        details.update(failed_check=failed_check, error=error)
    audit.record(
        audit.Action.VERIFICATION_PASSED if passed else audit.Action.VERIFICATION_FAILED,
        actor=actor,
        user=user,
        object_type="version" if version else "artifact",
        object_id=version.pk if version else artifact.rsplit("/", 1)[-1][:100],
        object_repr=f"{version.model.name} {version.version}" if version else artifact,
        model_name=version.model.name if version else "",
        details=details,
    )


def record_rebuild(
    version: ModelVersion,
    *,
    actor: str,
    reproduced: bool,
    rebuilt_sha256: str = "",
    stored_sha256: str = "",
    difference: str = "",
    error: str = "",
    user: User | AnonymousUser | None = None,
) -> None:
    """Record a rebuild of a version from the Hub: whether it gave the registered and the stored
    bytes, the first difference, or why it could not be made (``error``)."""
    details: dict[str, object] = {
        "commit": version.source_commit,
        "registered_sha256": version.sha256,
        "reproduced": reproduced,
    }
    optional = dict(rebuilt_sha256=rebuilt_sha256, stored_sha256=stored_sha256, error=error)
    details.update({key: value for key, value in optional.items() if value})
    if difference:
        details["difference"] = difference
    audit.record(
        audit.Action.VERSION_REBUILT,
        actor=actor,
        user=user,
        object_type="version",
        object_id=version.pk,
        object_repr=f"{version.model.name} {version.version}",
        model_name=version.model.name,
        details=details,
    )


# --- import policy ---------------------------------------------------------------------------

POLICY_EDITABLE_FIELDS = (
    "allowed_licenses",
    "unknown_license",
    "pickle_policy",
    "max_import_bytes",
    "require_commit",
    "require_approval",
    "remote_code",
    "malformed_weights",
    "template_injection",
    "keras_code",
    "onnx_external_data",
    "onnx_custom_ops",
)


@transaction.atomic
def edit_import_policy(
    policy: ImportPolicy,
    changes: Mapping[str, Any],
    *,
    actor: str,
    user: User | AnonymousUser | None = None,
) -> dict[str, dict[str, Any]]:
    """Change the import policy; records each changed rule's before and after."""
    diff = _apply_edit(policy, changes, POLICY_EDITABLE_FIELDS)
    if diff:
        audit.record(
            audit.Action.POLICY_EDITED,
            actor=actor,
            user=user,
            object_type="policy",
            object_id=policy.pk,
            object_repr="import policy",
            details={"changes": diff},
        )
    return diff


@transaction.atomic
def grant_policy_override(
    import_request: Any,
    *,
    reason: str,
    actor: str,
    user: User | AnonymousUser | None = None,
) -> PolicyOverride:
    """Let one import blocked by a policy rule past that rule, once; the reason is required.

    ``import_request`` is an ``imports.ImportRequest`` that failed with a policy error
    (``error_code`` ``policy:<rule>``). Only registry admins may grant an override.
    """
    from registry.admin_site import is_registry_admin

    if user is None or not is_registry_admin(user):
        raise RegistryError("only registry admins can override the import policy")
    reason = reason.strip()
    if not reason:
        raise RegistryError("a reason is required to override the import policy")
    if len(reason) > 1000:
        raise RegistryError("the reason is longer than 1000 characters")
    code = str(import_request.error_code or "")
    if import_request.status != "failed" or not code.startswith("policy:"):
        raise RegistryError(
            f"import #{import_request.pk} was not blocked by the import policy: nothing to override"
        )
    rule = code.removeprefix("policy:")
    override = PolicyOverride.objects.create(
        import_request_id=import_request.pk,
        rule=rule,
        reason=reason,
        blocked_because=import_request.error,
        granted_by=actor,
        granted_by_user=_user_or_none(user),
    )
    audit.record(
        audit.Action.POLICY_OVERRIDE_GRANTED,
        actor=actor,
        user=user,
        object_type="import",
        object_id=import_request.pk,
        object_repr=(
            f"import #{import_request.pk} {import_request.repo_id}@{import_request.revision}"
        ),
        model_name=import_request.model_name,
        details={"rule": rule, "reason": reason, "blocked_because": import_request.error},
    )
    return override


def mark_policy_overrides_used(
    import_request_id: int, rules: Sequence[str]
) -> list[PolicyOverride]:
    """The overrides of this import that just let it past ``rules``: stamped as used."""
    overrides = list(
        PolicyOverride.objects.filter(
            import_request_id=import_request_id, rule__in=list(rules), used_at__isnull=True
        )
    )
    now = timezone.now()
    for override in overrides:
        override.used_at = now
        override.save(update_fields=["used_at"])
    return overrides
