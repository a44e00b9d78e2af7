"""Vault / OpenBao: logging in, and Transit signing, verification and public keys.

The private signing key never leaves Vault: Aegis sends a SHA-256 digest and gets back a DER
signature that verifies with `cryptography` and with `openssl`. `config.py` holds `VaultConfig`
(callers build it from their settings and pass it in: no Django here), `auth.py` the logins
(token, AppRole, JWT, Kubernetes) and the GitHub Actions OIDC token, `transit.py` the
`TransitClient`, and `errors.py` the `VaultError` family. Secrets (tokens, secret ids, JWTs)
never appear in messages or reprs.
"""

from __future__ import annotations

from aegis_catalog.lib.vault.auth import IDENTITY_CLAIMS, github_actions_oidc_token
from aegis_catalog.lib.vault.config import AUTH_METHODS, AuthMethod, VaultConfig
from aegis_catalog.lib.vault.errors import (
    OidcTokenError,
    VaultAuthError,
    VaultConfigError,
    VaultError,
    VaultKeyNotFound,
    VaultKeyVersionRetired,
    VaultPermissionDenied,
    VaultSigningError,
    VaultUnreachable,
    VaultUnsupportedKeyType,
)
from aegis_catalog.lib.vault.transit import (
    DIGEST_SIZE,
    SIGNING_KEY_TYPES,
    TransitClient,
    TransitKeyInfo,
    TransitPublicKey,
    TransitSignature,
)

__all__ = [
    "AUTH_METHODS",
    "DIGEST_SIZE",
    "IDENTITY_CLAIMS",
    "SIGNING_KEY_TYPES",
    "AuthMethod",
    "OidcTokenError",
    "TransitClient",
    "TransitKeyInfo",
    "TransitPublicKey",
    "TransitSignature",
    "VaultAuthError",
    "VaultConfig",
    "VaultConfigError",
    "VaultError",
    "VaultKeyNotFound",
    "VaultKeyVersionRetired",
    "VaultPermissionDenied",
    "VaultSigningError",
    "VaultUnreachable",
    "VaultUnsupportedKeyType",
    "github_actions_oidc_token",
]
