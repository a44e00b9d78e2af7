"""Vault / OpenBao Transit: public keys, signing of digests, verification, health.

The private signing key never leaves Vault: Aegis sends a SHA-256 digest
(`prehashed=true, hash_algorithm=sha2-256`) and gets back `vault:v<N>:<base64 DER>`.
The DER signature verifies with `cryptography` (ECDSA(Prehashed(SHA256()))) and with
`openssl dgst -sha256 -verify key.pem -signature sig.der message`.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

import hvac
import hvac.exceptions
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from aegis_catalog.lib.vault.auth import VaultSession
from aegis_catalog.lib.vault.config import VaultConfig
from aegis_catalog.lib.vault.errors import (
    VaultError,
    VaultKeyNotFound,
    VaultKeyVersionRetired,
    VaultPermissionDenied,
    VaultSigningError,
    VaultUnreachable,
    VaultUnsupportedKeyType,
    network_reason,
    vault_messages,
)

SIGNING_KEY_TYPES: tuple[str, ...] = (
    "ecdsa-p256",
    "ecdsa-p384",
    "ecdsa-p521",
    "rsa-2048",
    "rsa-3072",
    "rsa-4096",
)
DIGEST_SIZE = 32  # sha2-256

T = TypeVar("T")


@dataclass(frozen=True)
class TransitPublicKey:
    """One version of a Transit key's public half."""

    version: int
    algorithm: str  # the Transit key type: "ecdsa-p256", "ed25519", "rsa-2048", ...
    public_key_pem: str
    created_at: datetime | None


@dataclass(frozen=True)
class TransitKeyInfo:
    """A Transit key and the versions Vault still lists (>= min_decryption_version)."""

    name: str
    type: str
    latest_version: int
    min_decryption_version: int
    versions: tuple[TransitPublicKey, ...]

    def version(self, number: int) -> TransitPublicKey:
        for entry in self.versions:
            if entry.version == number:
                return entry
        raise KeyError(number)


@dataclass(frozen=True)
class TransitSignature:
    """A signature made by Transit: DER bytes (ASN.1 for ECDSA, PKCS#1 v1.5 for RSA)."""

    key_name: str
    key_version: int
    der: bytes

    @property
    def vault_form(self) -> str:
        """The `vault:v<N>:<base64>` form Transit's verify endpoint takes."""
        return f"vault:v{self.key_version}:{base64.b64encode(self.der).decode('ascii')}"


def _parse_created_at(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    # Go prints nanoseconds; Python keeps microseconds.
    if "." in text:
        head, _, tail = text.partition(".")
        digits = tail[: len(tail) - len(tail.lstrip("0123456789"))]
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _normalise_public_key(key_type: str, public_key: str) -> str:
    """PEM SubjectPublicKeyInfo, as cryptography serialises it (stable fingerprints)."""
    if key_type == "ed25519":
        raw = base64.b64decode(public_key)
        loaded: Any = Ed25519PublicKey.from_public_bytes(raw)
    else:
        loaded = serialization.load_pem_public_key(public_key.encode("ascii"))
    return str(
        loaded.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")
    )


def _parse_vault_signature(key_name: str, value: object) -> tuple[int, bytes]:
    if not isinstance(value, str) or not value.startswith("vault:v"):
        raise VaultSigningError(
            f"Transit returned no signature in the expected form for key {key_name!r}"
        )
    try:
        _, version_text, encoded = value.split(":", 2)
        version = int(version_text.removeprefix("v"))
        der = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error) as error:
        raise VaultSigningError(
            f"Transit returned a malformed signature for key {key_name!r}"
        ) from error
    return version, der


class TransitClient:
    """Signs digests with, and reads public keys from, one Vault/OpenBao Transit mount.

    Logs in lazily on first use according to `config.auth_method`. A token obtained by
    logging in (AppRole, JWT, Kubernetes) that Vault later refuses is replaced once by
    logging in again, so a long-running worker survives token expiry.
    """

    def __init__(self, config: VaultConfig) -> None:
        self.config = config
        self._session = VaultSession(config)
        self._key_types: dict[str, str] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"TransitClient({self.config!r})"

    # -- connection -----------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return self._session.where

    @property
    def _mount_url(self) -> str:
        return f"{self.config.addr}/v1/{self.config.transit_mount}"

    def _key_location(self) -> str:
        """The mount's URL, and the namespace when there is one (for "does not exist")."""
        where = self._mount_url
        if self.config.namespace:
            where += f" in namespace {self.config.namespace!r}"
        return where

    def _logged_in_client(self) -> hvac.Client:
        return self._session.client()

    def _call(self, key_name: str | None, operation: Callable[[hvac.Client], T]) -> T:
        """Run one Transit operation, mapping hvac and network errors to ours."""
        try:
            client = self._logged_in_client()
            try:
                return operation(client)
            except hvac.exceptions.Forbidden:
                if self.config.auth_method == "token":
                    raise
                # The login token may have expired: log in again, once.
                self._session.forget()
                return operation(self._logged_in_client())
        except requests.RequestException as error:
            raise VaultUnreachable(
                f"{self._where} is unreachable: {network_reason(error, self.config.timeout)}"
            ) from None
        except hvac.exceptions.VaultError as error:
            raise self._translate(error, key_name) from None

    def _translate(self, error: hvac.exceptions.VaultError, key_name: str | None) -> VaultError:
        detail = vault_messages(error)
        subject = f"transit key {key_name!r}" if key_name else f"mount {self.config.transit_mount}"
        if isinstance(error, hvac.exceptions.Forbidden):
            return VaultPermissionDenied(
                f"{self._where} refused the token for {subject}: permission denied"
            )
        if isinstance(error, hvac.exceptions.VaultDown | hvac.exceptions.VaultNotInitialized):
            return VaultUnreachable(f"{self._where} is sealed or unavailable: {detail}")
        if isinstance(error, hvac.exceptions.InvalidPath):
            # 404: missing key (empty errors), missing mount ("no handler for route"),
            # or missing namespace ("namespace not found").
            suffix = f": {detail}" if detail else ""
            return VaultKeyNotFound(f"{subject} does not exist at {self._key_location()}{suffix}")
        if isinstance(error, hvac.exceptions.InvalidRequest):
            refused = self._translate_invalid_request(detail, subject)
            if refused is not None:
                return refused
        if isinstance(error, hvac.exceptions.InternalServerError) and (
            "no such key version" in detail
        ):
            return VaultKeyVersionRetired(
                f"{self._where} has no usable version of {subject} as requested: {detail}"
            )
        if isinstance(error, hvac.exceptions.ParamValidationError):
            return VaultSigningError(f"invalid Transit request for {subject}: {error.args[0]}")
        status = type(error).__name__
        return VaultSigningError(
            f"{self._where} failed the request for {subject} ({status}): {detail or 'no detail'}"
        )

    def _translate_invalid_request(self, detail: str, subject: str) -> VaultError | None:
        """A 400 that means a missing key or a retired key version; None for any other."""
        lowered = detail.lower()
        if "key not found" in lowered:  # sign: "signing key not found", verify: "...key..."
            return VaultKeyNotFound(f"{subject} does not exist at {self._key_location()}")
        if "disallowed by policy" in lowered:
            return VaultKeyVersionRetired(
                f"{self._where} no longer accepts that version of {subject}: {detail}"
            )
        return None

    # -- public API -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Vault's `/v1/sys/health` (unauthenticated; namespaces refuse it, so none is sent).

        Returns address, initialized, sealed, standby, version. Raises VaultUnreachable.
        """
        client = self._session.new_hvac_client("", namespace=None)
        try:
            answer = client.sys.read_health_status(
                method="GET",
                standby_ok=True,
                sealed_code=200,
                uninit_code=200,
                performance_standby_code=200,
                dr_secondary_code=200,
            )
        except requests.RequestException as error:
            raise VaultUnreachable(
                f"{self._where} is unreachable: {network_reason(error, self.config.timeout)}"
            ) from None
        except hvac.exceptions.VaultError as error:
            raise VaultUnreachable(
                f"{self._where} answered its health check with {type(error).__name__}: "
                f"{vault_messages(error) or 'no detail'}"
            ) from None
        if not isinstance(answer, dict):
            raise VaultUnreachable(
                f"{self._where} answered its health check with HTTP "
                f"{getattr(answer, 'status_code', '?')}"
            )
        return {
            "address": self.config.addr,
            "initialized": bool(answer.get("initialized")),
            "sealed": bool(answer.get("sealed")),
            "standby": bool(answer.get("standby")),
            "version": answer.get("version"),
        }

    def read_public_keys(self, key_name: str) -> TransitKeyInfo:
        """Every version Vault lists for `key_name` (those >= min_decryption_version)."""
        mount = self.config.transit_mount
        answer = self._call(
            key_name, lambda client: client.secrets.transit.read_key(key_name, mount_point=mount)
        )
        data = answer["data"] if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise VaultSigningError(f"{self._where} returned no data for transit key {key_name!r}")
        key_type = str(data.get("type", ""))
        with self._lock:
            self._key_types[key_name] = key_type
        versions = []
        for version_text, entry in sorted(
            (data.get("keys") or {}).items(), key=lambda item: int(item[0])
        ):
            if not isinstance(entry, dict) or not entry.get("public_key"):
                raise VaultUnsupportedKeyType(
                    f"transit key {key_name!r} is of type {key_type}, which has no public key; "
                    f"Aegis needs a signing key ({', '.join(SIGNING_KEY_TYPES)})"
                )
            versions.append(
                TransitPublicKey(
                    version=int(version_text),
                    algorithm=key_type,
                    public_key_pem=_normalise_public_key(key_type, str(entry["public_key"])),
                    created_at=_parse_created_at(entry.get("creation_time")),
                )
            )
        return TransitKeyInfo(
            name=key_name,
            type=key_type,
            latest_version=int(data.get("latest_version", 0)),
            min_decryption_version=int(data.get("min_decryption_version", 1)),
            versions=tuple(versions),
        )

    def _key_type(self, key_name: str) -> str:
        with self._lock:
            known = self._key_types.get(key_name)
        if known is None:
            known = self.read_public_keys(key_name).type
        return known

    def _signing_parameters(self, key_name: str) -> dict[str, Any]:
        key_type = self._key_type(key_name)
        if key_type == "ed25519":
            raise VaultUnsupportedKeyType(
                f"transit key {key_name!r} is of type ed25519, which signs whole messages and "
                "cannot sign a prehashed SHA-256 digest; use an ecdsa-p256 (or rsa) key"
            )
        if key_type.startswith("ecdsa-"):
            return {"marshaling_algorithm": "asn1"}
        if key_type.startswith("rsa-"):
            return {"signature_algorithm": "pkcs1v15"}
        raise VaultUnsupportedKeyType(
            f"transit key {key_name!r} is of type {key_type}, which cannot sign; "
            f"use one of {', '.join(SIGNING_KEY_TYPES)}"
        )

    def sign_digest(
        self, key_name: str, digest: bytes, *, key_version: int | None = None
    ) -> TransitSignature:
        """Sign a SHA-256 digest; returns the DER signature and the key version used."""
        answer = self._digest_operation("sign_data", key_name, digest, key_version=key_version)
        data = answer.get("data") if isinstance(answer, dict) else None
        signature = data.get("signature") if isinstance(data, dict) else None
        version, der = _parse_vault_signature(key_name, signature)
        return TransitSignature(key_name=key_name, key_version=version, der=der)

    def verify_digest(self, key_name: str, digest: bytes, der: bytes, key_version: int) -> bool:
        """Ask Vault whether `der` is a valid signature of `digest` by that key version.

        False for a wrong signature; VaultKeyVersionRetired when the version is below the
        key's min_decryption_version.
        """
        signature = TransitSignature(key_name, key_version, der).vault_form
        answer = self._digest_operation("verify_signed_data", key_name, digest, signature=signature)
        data = answer.get("data") if isinstance(answer, dict) else None
        return bool(isinstance(data, dict) and data.get("valid") is True)

    def _digest_operation(
        self,
        method: Literal["sign_data", "verify_signed_data"],
        key_name: str,
        digest: bytes,
        **arguments: Any,
    ) -> Any:
        """Call a Transit endpoint that takes a prehashed SHA-256 digest (sign or verify), with
        the signature parameters the key's type needs."""
        if len(digest) != DIGEST_SIZE:
            raise VaultSigningError(
                f"a SHA-256 digest is {DIGEST_SIZE} bytes, got {len(digest)} for key {key_name!r}"
            )
        parameters = self._signing_parameters(key_name)
        mount = self.config.transit_mount
        return self._call(
            key_name,
            lambda client: getattr(client.secrets.transit, method)(
                key_name,
                hash_input=base64.b64encode(digest).decode("ascii"),
                hash_algorithm="sha2-256",
                prehashed=True,
                mount_point=mount,
                **arguments,
                **parameters,
            ),
        )

    def create_key(self, name: str, key_type: str = "ecdsa-p256") -> TransitKeyInfo:
        """Create a Transit key (a no-op if it exists with the same type)."""
        mount = self.config.transit_mount
        self._call(
            name,
            lambda client: client.secrets.transit.create_key(
                name, key_type=key_type, mount_point=mount
            ),
        )
        info = self.read_public_keys(name)
        if info.type != key_type:
            raise VaultSigningError(
                f"transit key {name!r} already exists at {self._mount_url} with type "
                f"{info.type}, not {key_type}"
            )
        return info

    def rotate_key(self, name: str) -> TransitKeyInfo:
        """Add a new key version; later signatures use it. Returns the key after rotation."""
        mount = self.config.transit_mount
        self._call(name, lambda client: client.secrets.transit.rotate_key(name, mount_point=mount))
        return self.read_public_keys(name)

    def login_identity(self) -> dict[str, Any]:
        """Who is signing, for the audit trail: for JWT auth, the (unverified) claims of the
        configured token that name the CI run (repository, ref, actor, sub, ...); {} otherwise.
        Vault verifies the token at login; this only reads it.
        """
        return self._session.login_identity()
