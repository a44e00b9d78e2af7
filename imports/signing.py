"""Signing through Vault Transit with one trusted key version."""

from __future__ import annotations

from aegis_catalog.lib.vault import TransitClient
from registry.attestation import SignedDigest
from registry.models import SigningKey


class TrustedTransitSigner:
    """Signs digests through Transit with one trusted key version.

    ECDSA signatures are randomised, and that is fine: no signature is inside the tarball, so
    its bytes do not depend on them. A retried import reuses the signatures its earlier attempt
    saved with the stage outputs instead of asking Vault again.
    """

    def __init__(self, transit: TransitClient, key: SigningKey) -> None:
        self.transit = transit
        self.key = key

    def __call__(self, digest: bytes) -> SignedDigest:
        signature = self.transit.sign_digest(self.key.name, digest, key_version=self.key.version)
        return SignedDigest(signature.der, self.key.name, signature.key_version)
