"""Signing through Vault Transit with one trusted key version."""

from __future__ import annotations

from aegis_catalog.lib.vault import TransitClient
from registry.attestation import SignedDigest
from registry.models import IssuedSignature, SigningKey


class TrustedTransitSigner:
    """Signs digests through Transit with one trusted key version, reusing earlier signatures.

    ECDSA signatures are randomised; reusing the signature Vault issued for the same bytes keeps
    ``model.sig``, and so the tarball, byte-reproducible.
    """

    def __init__(self, transit: TransitClient, key: SigningKey) -> None:
        self.transit = transit
        self.key = key

    def __call__(self, digest: bytes) -> SignedDigest:
        cached = IssuedSignature.objects.filter(
            pae_sha256=digest.hex(), signing_key=self.key
        ).first()
        if cached is not None:
            return SignedDigest(bytes(cached.signature_der), self.key.name, self.key.version)
        signature = self.transit.sign_digest(self.key.name, digest, key_version=self.key.version)
        IssuedSignature.objects.get_or_create(
            pae_sha256=digest.hex(),
            signing_key=self.key,
            defaults={"signature_der": signature.der},
        )
        return SignedDigest(signature.der, self.key.name, signature.key_version)
