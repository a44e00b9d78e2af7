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
from registry import attestation
from registry.models import ModelVersion, RegisteredModel, SigningKey


class RegistryError(Exception):
    """A registry change was refused; the message says why."""


class VersionAlreadyExists(RegistryError):
    pass


class UnknownSigningKey(RegistryError):
    pass


@dataclass(frozen=True)
class CardFields:
    """The model card metadata the registry keeps as real fields."""

    author: str = ""
    license: str = ""
    pipeline_tag: str = ""
    library_name: str = ""
    base_model: str = ""
    tags: Sequence[str] = ()
    datasets: Sequence[str] = ()
    languages: Sequence[str] = ()
    gated: str = "no"


# --- trust store --------------------------------------------------------------------------


@transaction.atomic
def record_signing_keys(info: TransitKeyInfo, *, vault_addr: str, mount: str) -> list[SigningKey]:
    """Store every public key version Vault lists; mark the versions it stopped listing revoked.

    Vault lists only versions at or above ``min_decryption_version``, so a version that
    disappears from the listing was retired on purpose: artifacts it signed no longer verify.
    """
    rows: list[SigningKey] = []
    listed: set[int] = set()
    for key in info.versions:
        listed.add(key.version)
        fingerprint = attestation.public_key_fingerprint(key.public_key_pem)
        row, _ = SigningKey.objects.get_or_create(
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
    SigningKey.objects.filter(
        vault_addr=vault_addr,
        transit_mount=mount,
        name=info.name,
        revoked=False,
        version__lt=info.min_decryption_version,
    ).exclude(version__in=listed).update(revoked=True, revoked_at=timezone.now())
    return rows


def sync_signing_keys(client: TransitClient, key_name: str) -> SigningKey:
    """Read the key's public versions from Vault into the trust store; return the latest."""
    info = client.read_public_keys(key_name)
    rows = record_signing_keys(
        info, vault_addr=client.config.addr, mount=client.config.transit_mount
    )
    latest = [row for row in rows if row.version == info.latest_version]
    if not latest:
        raise UnknownSigningKey(
            f"Vault lists no public key for the latest version {info.latest_version} of "
            f"transit key {key_name!r}"
        )
    return latest[0]


@transaction.atomic
def revoke_signing_key(key: SigningKey, *, actor: str) -> SigningKey:
    key.revoked = True
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked", "revoked_at"])
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


@transaction.atomic
def register(
    *,
    actor: str,
    model_name: str,
    version: str,
    card: CardFields,
    card_data: Mapping[str, Any],
    model_path: str,
    sha256: str,
    size: int,
    manifest: Sequence[Mapping[str, Any]],
    model_signature: Mapping[str, Any],
    attestation_bundle: Mapping[str, Any],
    signing_key: SigningKey,
    source_repo: str,
    source_revision: str,
    source_commit: str,
    source_endpoint: str,
    import_options: Mapping[str, Any],
    scan_results: Sequence[Mapping[str, Any]],
    imported_at: datetime | None = None,
    user: User | AnonymousUser | None = None,
) -> ModelVersion:
    """Create or update the registered model from its card, and add the signed version.

    The only way a version enters the registry. Raises ``VersionAlreadyExists`` when the
    name already has that version (nothing is changed then).
    """
    card_values = {
        "source_repo": source_repo,
        "author": card.author,
        "license": card.license,
        "pipeline_tag": card.pipeline_tag,
        "library_name": card.library_name,
        "base_model": card.base_model,
        "tags": list(card.tags),
        "datasets": list(card.datasets),
        "languages": list(card.languages),
        "gated": card.gated,
        "card_data": dict(card_data),
    }
    model, created = RegisteredModel.objects.select_for_update().get_or_create(
        name=model_name, defaults=card_values
    )
    if ModelVersion.objects.filter(model=model, version=version).exists():
        raise VersionAlreadyExists(f"{model_name} already has a version {version}")
    if not created:
        for key, value in card_values.items():
            setattr(model, key, value)
    _clean(model)
    if not created:
        model.save()
    row = ModelVersion(
        model=model,
        version=version,
        model_path=model_path,
        sha256=sha256,
        size=size,
        file_count=len(manifest),
        manifest=list(manifest),
        model_signature=dict(model_signature),
        attestation=dict(attestation_bundle),
        signing_key=signing_key,
        source_repo=source_repo,
        source_revision=source_revision,
        source_commit=source_commit,
        source_endpoint=source_endpoint,
        import_options=dict(import_options),
        scan_results=list(scan_results),
        imported_by=actor,
        imported_by_user=_user_or_none(user),
        imported_at=imported_at or timezone.now(),
    )
    _clean(row, exclude=["model"])
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError as error:
        raise VersionAlreadyExists(f"{model_name} already has a version {version}") from error
    return row


@transaction.atomic
def set_version_status(
    version: ModelVersion, status: str, *, actor: str, reason: str
) -> ModelVersion:
    """Deprecate, yank or restore a version; a reason is required for the record."""
    if status not in ModelVersion.Status.values:
        raise RegistryError(f"unknown status {status!r}")
    if not reason.strip():
        raise RegistryError("a reason is required to change a version's status")
    version.status = status
    version.status_reason = reason.strip()
    version.save(update_fields=["status", "status_reason"])
    return version


def find_version_by_digest(sha256: str) -> ModelVersion | None:
    return (
        ModelVersion.objects.select_related("model", "signing_key")
        .filter(sha256=sha256)
        .order_by("-imported_at")
        .first()
    )
