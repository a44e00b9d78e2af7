"""The `VaultError` family, and the wording of Vault's and the network's failures in messages.

Messages name the Vault address (and namespace) and say what to do; secrets (tokens, secret ids,
JWTs) never appear in them.
"""

from __future__ import annotations

import hvac.exceptions
import requests


class VaultError(Exception):
    """Base class of every error of the Vault client (`aegis_catalog.lib.vault`)."""


class VaultConfigError(VaultError, ValueError):
    """The Vault configuration is incomplete or malformed."""


class VaultUnreachable(VaultError):
    """Vault did not answer (refused, timed out, TLS failure) or is sealed/unavailable."""


class VaultPermissionDenied(VaultError):
    """Vault answered 403: the token lacks the capability, or is invalid or expired."""


class VaultKeyNotFound(VaultError):
    """The Transit key (or its mount or namespace) does not exist."""


class VaultAuthError(VaultError):
    """Logging in failed: no token configured, AppRole/JWT/Kubernetes login rejected."""


class OidcTokenError(VaultAuthError):
    """A CI OIDC token (GitHub Actions) could not be obtained."""


class VaultSigningError(VaultError):
    """Any other failure of a Transit operation."""


class VaultUnsupportedKeyType(VaultSigningError):
    """The key's type cannot sign a SHA-256 digest (ed25519, symmetric keys)."""


class VaultKeyVersionRetired(VaultSigningError):
    """The key version is below the key's min_decryption_version (revoked in Vault)."""


def vault_messages(error: hvac.exceptions.VaultError) -> str:
    """Vault's own error text, without Go's multi-error decoration."""
    errors = error.errors if isinstance(error.errors, list) else []
    parts = []
    for item in errors:
        text = str(item).strip()
        if text.startswith("1 error occurred:"):
            text = text.removeprefix("1 error occurred:").strip().removeprefix("*").strip()
        parts.append(text)
    return "; ".join(part for part in parts if part)


def network_reason(error: requests.RequestException, timeout: float) -> str:
    """Why a request got no answer, in a few words a person can act on."""
    if isinstance(error, requests.ConnectTimeout):
        return f"no connection within {timeout:g} s"
    if isinstance(error, requests.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(error, requests.exceptions.SSLError):
        return "TLS verification failed (check the CA bundle and the server certificate)"
    text = str(error)
    if "Connection refused" in text or "ECONNREFUSED" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "host name does not resolve"
    if "Connection reset" in text:
        return "connection reset"
    return f"connection failed ({type(error).__name__})"
