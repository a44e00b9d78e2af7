"""Anchors of the audit chain: its head, signed through Vault Transit and kept in the artifact
store, outside the database.

The hash chain shows a changed event only while the chain itself is trusted: someone able to
rewrite the whole table could recompute every hash after the change. An anchor says "at this
time the chain's event #N had hash H", signed by a key only Vault holds, in a store the
database's users cannot write. ``verify_anchors`` recomputes nothing: it checks each anchor's
signature against the trust store and that event #N still has hash H. An anchor is an in-toto
statement in a DSSE bundle, so the README's openssl recipe verifies it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from aegis_catalog import services
from aegis_catalog.lib.storage import ArtifactStore, StorageError
from aegis_catalog.lib.vault import TransitClient
from registry import attestation
from registry.actions import SYSTEM_ACTOR, sync_signing_keys
from registry.models import AuditChainHead, AuditEvent, SigningKey

ANCHOR_PREFIX = "audit-anchors"
ANCHOR_PREDICATE_TYPE = "https://aegis-catalog.dev/audit-anchor/v1"
CHAIN_SUBJECT = "aegis-audit-chain"


class AnchorError(Exception):
    """An anchor could not be written or read; the message says why."""


@dataclass(frozen=True)
class Anchor:
    """One signed statement of the chain's head, as stored."""

    url: str
    sequence: int
    hash: str
    anchored_at: str


def _key(sequence: int) -> str:
    return f"{ANCHOR_PREFIX}/{sequence:012d}.sigstore.json"


def anchor_statement(sequence: int, chain_hash: str, anchored_at: str) -> dict[str, Any]:
    return {
        "_type": attestation.IN_TOTO_STATEMENT_TYPE,
        "subject": [{"name": CHAIN_SUBJECT, "digest": {"sha256": chain_hash}}],
        "predicateType": ANCHOR_PREDICATE_TYPE,
        "predicate": {"sequence": sequence, "anchoredAt": anchored_at},
    }


def anchor_chain(
    transit: TransitClient, store: ArtifactStore, *, key_name: str, actor: str = SYSTEM_ACTOR
) -> Anchor | None:
    """Sign the chain's head and store the anchor; None when the head has not moved since the
    last anchor. (Anchoring writes no audit event, or every run would find the head moved.)"""
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None or head.last_sequence == 0:
        return None
    url = store.url_for(_key(head.last_sequence))
    if store.exists(url):
        return None
    key = sync_signing_keys(transit, key_name, actor=actor)
    anchored_at = timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    bundle = attestation.sign_statement(
        anchor_statement(head.last_sequence, head.last_hash, anchored_at),
        lambda digest: _sign(transit, key, digest),
        key.public_key_pem,
    )
    stored = store.put_bytes(
        attestation.bundle_to_bytes(bundle), _key(head.last_sequence), sha256=None,
        content_type="application/json",
    )  # fmt: skip
    return Anchor(stored.url, head.last_sequence, head.last_hash, anchored_at)


def _sign(transit: TransitClient, key: SigningKey, digest: bytes) -> attestation.SignedDigest:
    signed = transit.sign_digest(key.name, digest, key_version=key.version)
    return attestation.SignedDigest(signed.der, key.name, signed.key_version)


def read_anchor(store: ArtifactStore, url: str) -> Anchor:
    """An anchor whose signature verifies with a trusted, unrevoked key of the trust store."""
    try:
        stream, _ = store.open_read(url)
        with stream:
            bundle = attestation.load_bundle(stream.read())
    except (StorageError, attestation.AttestationError) as error:
        raise AnchorError(f"the anchor {url} cannot be read: {error}") from error
    hint = attestation.bundle_key_hint(bundle)
    key = SigningKey.objects.filter(fingerprint=hint, revoked=False).first()
    if key is None:
        raise AnchorError(f"the anchor {url} is signed by no trusted key ({hint})")
    try:
        statement = attestation.verify_bundle(bundle, key.public_key_pem)
        sequence = int(statement["predicate"]["sequence"])
        chain_hash = str(statement["subject"][0]["digest"]["sha256"])
        anchored_at = str(statement["predicate"]["anchoredAt"])
    except (attestation.AttestationError, KeyError, IndexError, TypeError, ValueError) as error:
        raise AnchorError(f"the anchor {url} does not verify: {error}") from error
    if statement.get("predicateType") != ANCHOR_PREDICATE_TYPE:
        raise AnchorError(f"{url} is not an audit anchor")
    return Anchor(url, sequence, chain_hash, anchored_at)


def verify_anchors(store: ArtifactStore) -> tuple[int, list[str]]:
    """How many anchors were checked, and what each broken one says (empty: all hold)."""
    problems = []
    urls = store.list_urls(ANCHOR_PREFIX)
    for url in urls:
        try:
            anchor = read_anchor(store, url)
        except AnchorError as error:
            problems.append(str(error))
            continue
        event = AuditEvent.objects.filter(sequence=anchor.sequence).first()
        if event is None:
            problems.append(
                f"event #{anchor.sequence}, anchored at {anchor.anchored_at}, is gone: "
                "events were removed from the table"
            )
        elif event.hash != anchor.hash:
            problems.append(
                f"event #{anchor.sequence} no longer has the hash anchored at "
                f"{anchor.anchored_at}: the table was rewritten behind the anchor"
            )
    return len(urls), problems


def anchor_audit_chain() -> str:
    """The periodic job (``aegis_catalog.cron``): anchor the chain's head when it moved."""
    anchor = anchor_chain(
        services.transit_client(), services.artifact_store(), key_name=settings.AEGIS_SIGN_KEY
    )
    return f"anchored #{anchor.sequence}" if anchor else "nothing new to anchor"
