"""Vault / OpenBao Transit: public keys, signing of digests, verification, health.

The private signing key never leaves Vault: Aegis sends a SHA-256 digest
(`prehashed=true, hash_algorithm=sha2-256`) and gets back `vault:v<N>:<base64 DER>`.
The DER signature verifies with `cryptography` (ECDSA(Prehashed(SHA256()))) and with
`openssl dgst -sha256 -verify key.pem -signature sig.der message`.

No Django here: callers build a `VaultConfig` from their settings and pass it in.
Secrets (tokens, secret ids, JWTs) never appear in messages or reprs.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import hvac
import hvac.exceptions
import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

AuthMethod = Literal["token", "approle", "jwt", "kubernetes"]
AUTH_METHODS: tuple[str, ...] = ("token", "approle", "jwt", "kubernetes")
SIGNING_KEY_TYPES: tuple[str, ...] = (
    "ecdsa-p256",
    "ecdsa-p384",
    "ecdsa-p521",
    "rsa-2048",
    "rsa-3072",
    "rsa-4096",
)
DIGEST_SIZE = 32  # sha2-256
IDENTITY_CLAIMS: tuple[str, ...] = (
    "iss",
    "sub",
    "repository",
    "ref",
    "sha",
    "actor",
    "workflow",
    "run_id",
)

T = TypeVar("T")


# -- errors --------------------------------------------------------------------------------


class VaultError(Exception):
    """Base class of every error this module raises."""


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


# -- configuration and results -------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class VaultConfig:
    """Where Vault is and how to log in. `__repr__` shows which secrets are set, never them."""

    addr: str
    auth_method: AuthMethod = "token"
    token: str | None = None
    namespace: str | None = None
    role_id: str | None = None
    secret_id: str | None = None
    approle_mount: str = "approle"
    jwt_role: str | None = None
    jwt: str | None = None
    jwt_mount: str = "jwt"
    kubernetes_role: str | None = None
    kubernetes_jwt_path: str = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    kubernetes_mount: str = "kubernetes"
    ca_bundle: str | None = None
    transit_mount: str = "transit"
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.addr.startswith(("http://", "https://")):
            raise VaultConfigError(
                f"Vault address {self.addr!r} must start with http:// or https://"
            )
        object.__setattr__(self, "addr", self.addr.rstrip("/"))
        object.__setattr__(self, "transit_mount", self.transit_mount.strip("/"))
        if self.namespace is not None:
            object.__setattr__(self, "namespace", self.namespace.strip("/") or None)
        if self.auth_method not in AUTH_METHODS:
            raise VaultConfigError(
                f"Vault auth method {self.auth_method!r} is not one of {', '.join(AUTH_METHODS)}"
            )
        if self.timeout <= 0:
            raise VaultConfigError(f"Vault timeout must be positive, got {self.timeout}")

    def __repr__(self) -> str:
        def secret(value: str | None) -> str:
            return "'<set>'" if value else "None"

        return (
            f"VaultConfig(addr={self.addr!r}, auth_method={self.auth_method!r}, "
            f"namespace={self.namespace!r}, token={secret(self.token)}, "
            f"role_id={secret(self.role_id)}, secret_id={secret(self.secret_id)}, "
            f"approle_mount={self.approle_mount!r}, jwt_role={self.jwt_role!r}, "
            f"jwt={secret(self.jwt)}, jwt_mount={self.jwt_mount!r}, "
            f"kubernetes_role={self.kubernetes_role!r}, "
            f"kubernetes_jwt_path={self.kubernetes_jwt_path!r}, "
            f"kubernetes_mount={self.kubernetes_mount!r}, ca_bundle={self.ca_bundle!r}, "
            f"transit_mount={self.transit_mount!r}, timeout={self.timeout!r})"
        )

    __str__ = __repr__


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


# -- helpers -------------------------------------------------------------------------------


def _vault_messages(error: hvac.exceptions.VaultError) -> str:
    """Vault's own error text, without Go's multi-error decoration."""
    errors = error.errors if isinstance(error.errors, list) else []
    parts = []
    for item in errors:
        text = str(item).strip()
        if text.startswith("1 error occurred:"):
            text = text.removeprefix("1 error occurred:").strip().removeprefix("*").strip()
        parts.append(text)
    return "; ".join(part for part in parts if part)


def _network_reason(error: requests.RequestException, timeout: float) -> str:
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


# -- client --------------------------------------------------------------------------------


class TransitClient:
    """Signs digests with, and reads public keys from, one Vault/OpenBao Transit mount.

    Logs in lazily on first use according to `config.auth_method`. A token obtained by
    logging in (AppRole, JWT, Kubernetes) that Vault later refuses is replaced once by
    logging in again, so a long-running worker survives token expiry.
    """

    def __init__(self, config: VaultConfig) -> None:
        self.config = config
        self._client: hvac.Client | None = None
        self._key_types: dict[str, str] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"TransitClient({self.config!r})"

    # -- connection and login -------------------------------------------------------------

    @property
    def _where(self) -> str:
        if self.config.namespace:
            return f"Vault at {self.config.addr} (namespace {self.config.namespace!r})"
        return f"Vault at {self.config.addr}"

    @property
    def _mount_url(self) -> str:
        return f"{self.config.addr}/v1/{self.config.transit_mount}"

    def _new_hvac_client(self, token: str, *, namespace: str | None) -> hvac.Client:
        # token="" (never None) keeps hvac from reading VAULT_TOKEN or ~/.vault-token.
        return hvac.Client(
            url=self.config.addr,
            token=token,
            verify=self.config.ca_bundle or True,
            timeout=self.config.timeout,
            namespace=namespace,
        )

    def _logged_in_client(self) -> hvac.Client:
        with self._lock:
            if self._client is None:
                self._client = self._login()
            return self._client

    def _login(self) -> hvac.Client:
        config = self.config
        method = config.auth_method
        if method == "token":
            if not config.token:
                raise VaultAuthError(
                    f"no Vault token is configured for {self._where}; set the token "
                    "(this client never reads ~/.vault-token)"
                )
            return self._new_hvac_client(config.token, namespace=config.namespace)

        client = self._new_hvac_client("", namespace=config.namespace)
        if method == "approle":
            if not config.role_id:
                raise VaultAuthError(f"AppRole login to {self._where} needs a role_id")
            mount = config.approle_mount
            self._run_login(
                f"AppRole login at auth/{mount}",
                lambda: client.auth.approle.login(
                    role_id=config.role_id, secret_id=config.secret_id, mount_point=mount
                ),
            )
        elif method == "jwt":
            if not config.jwt_role or not config.jwt:
                raise VaultAuthError(
                    f"JWT login to {self._where} needs both a role and a JWT "
                    "(in GitHub Actions, see github_actions_oidc_token)"
                )
            mount = config.jwt_mount
            self._run_login(
                f"JWT login as role {config.jwt_role!r} at auth/{mount}",
                lambda: client.auth.jwt.jwt_login(role=config.jwt_role, jwt=config.jwt, path=mount),
            )
        else:
            if not config.kubernetes_role:
                raise VaultAuthError(f"Kubernetes login to {self._where} needs a role")
            try:
                service_account_jwt = Path(config.kubernetes_jwt_path).read_text().strip()
            except OSError as error:
                raise VaultAuthError(
                    f"cannot read the Kubernetes service account token at "
                    f"{config.kubernetes_jwt_path}: {error.strerror}"
                ) from error
            mount = config.kubernetes_mount
            self._run_login(
                f"Kubernetes login as role {config.kubernetes_role!r} at auth/{mount}",
                lambda: client.auth.kubernetes.login(
                    role=config.kubernetes_role, jwt=service_account_jwt, mount_point=mount
                ),
            )
        if not client.adapter.token:
            raise VaultAuthError(f"{self._where} returned no client token after {method} login")
        return client

    def _run_login(self, what: str, login: Callable[[], object]) -> None:
        try:
            login()
        except requests.RequestException as error:
            raise VaultUnreachable(
                f"{self._where} is unreachable: {_network_reason(error, self.config.timeout)}"
            ) from None
        except (hvac.exceptions.VaultDown, hvac.exceptions.VaultNotInitialized) as error:
            raise VaultUnreachable(
                f"{self._where} is sealed or unavailable: {_vault_messages(error)}"
            ) from None
        except hvac.exceptions.VaultError as error:
            detail = _vault_messages(error) or type(error).__name__
            raise VaultAuthError(f"{self._where} rejected the {what}: {detail}") from None

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
                with self._lock:
                    self._client = None
                return operation(self._logged_in_client())
        except requests.RequestException as error:
            raise VaultUnreachable(
                f"{self._where} is unreachable: {_network_reason(error, self.config.timeout)}"
            ) from None
        except hvac.exceptions.VaultError as error:
            raise self._translate(error, key_name) from None

    def _translate(self, error: hvac.exceptions.VaultError, key_name: str | None) -> VaultError:
        detail = _vault_messages(error)
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
            where = self._mount_url
            if self.config.namespace:
                where += f" in namespace {self.config.namespace!r}"
            suffix = f": {detail}" if detail else ""
            return VaultKeyNotFound(f"{subject} does not exist at {where}{suffix}")
        if isinstance(error, hvac.exceptions.InvalidRequest):
            lowered = detail.lower()
            if "key not found" in lowered:  # sign: "signing key not found", verify: "...key..."
                where = self._mount_url
                if self.config.namespace:
                    where += f" in namespace {self.config.namespace!r}"
                return VaultKeyNotFound(f"{subject} does not exist at {where}")
            if "disallowed by policy" in lowered:
                return VaultKeyVersionRetired(
                    f"{self._where} no longer accepts that version of {subject}: {detail}"
                )
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

    # -- public API -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Vault's `/v1/sys/health` (unauthenticated; namespaces refuse it, so none is sent).

        Returns address, initialized, sealed, standby, version. Raises VaultUnreachable.
        """
        client = self._new_hvac_client("", namespace=None)
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
                f"{self._where} is unreachable: {_network_reason(error, self.config.timeout)}"
            ) from None
        except hvac.exceptions.VaultError as error:
            raise VaultUnreachable(
                f"{self._where} answered its health check with {type(error).__name__}: "
                f"{_vault_messages(error) or 'no detail'}"
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
        if len(digest) != DIGEST_SIZE:
            raise VaultSigningError(
                f"a SHA-256 digest is {DIGEST_SIZE} bytes, got {len(digest)} for key {key_name!r}"
            )
        parameters = self._signing_parameters(key_name)
        mount = self.config.transit_mount
        answer = self._call(
            key_name,
            lambda client: client.secrets.transit.sign_data(
                key_name,
                hash_input=base64.b64encode(digest).decode("ascii"),
                key_version=key_version,
                hash_algorithm="sha2-256",
                prehashed=True,
                mount_point=mount,
                **parameters,
            ),
        )
        data = answer.get("data") if isinstance(answer, dict) else None
        signature = data.get("signature") if isinstance(data, dict) else None
        version, der = _parse_vault_signature(key_name, signature)
        return TransitSignature(key_name=key_name, key_version=version, der=der)

    def verify_digest(self, key_name: str, digest: bytes, der: bytes, key_version: int) -> bool:
        """Ask Vault whether `der` is a valid signature of `digest` by that key version.

        False for a wrong signature; VaultKeyVersionRetired when the version is below the
        key's min_decryption_version.
        """
        if len(digest) != DIGEST_SIZE:
            raise VaultSigningError(
                f"a SHA-256 digest is {DIGEST_SIZE} bytes, got {len(digest)} for key {key_name!r}"
            )
        parameters = self._signing_parameters(key_name)
        signature = TransitSignature(key_name, key_version, der).vault_form
        mount = self.config.transit_mount
        answer = self._call(
            key_name,
            lambda client: client.secrets.transit.verify_signed_data(
                key_name,
                hash_input=base64.b64encode(digest).decode("ascii"),
                signature=signature,
                hash_algorithm="sha2-256",
                prehashed=True,
                mount_point=mount,
                **parameters,
            ),
        )
        data = answer.get("data") if isinstance(answer, dict) else None
        return bool(isinstance(data, dict) and data.get("valid") is True)

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
        if self.config.auth_method != "jwt" or not self.config.jwt:
            return {}
        try:
            claims = jwt.decode(
                self.config.jwt,
                options={"verify_signature": False, "verify_exp": False, "verify_aud": False},
            )
        except jwt.PyJWTError as error:
            raise VaultAuthError(
                f"the JWT configured for {self._where} is not a well-formed token "
                f"({type(error).__name__})"
            ) from None
        return {name: claims[name] for name in IDENTITY_CLAIMS if name in claims}


def github_actions_oidc_token(
    audience: str,
    *,
    environ: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> str:
    """Fetch a GitHub Actions OIDC token (a JWT) for `audience`, for Vault JWT login.

    Needs `permissions: id-token: write` in the workflow, which sets
    ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN.
    """
    env = os.environ if environ is None else environ
    url = env.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    request_token = env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if not url or not request_token:
        raise OidcTokenError(
            "ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set: "
            "run inside GitHub Actions with `permissions: id-token: write`"
        )
    where = url.split("?", 1)[0]
    try:
        response = requests.get(
            url,
            params={"audience": audience},
            headers={"Authorization": f"bearer {request_token}", "Accept": "application/json"},
            timeout=timeout,
        )
    except requests.RequestException as error:
        raise OidcTokenError(
            f"GitHub's OIDC token service at {where} is unreachable: "
            f"{_network_reason(error, timeout)}"
        ) from None
    if response.status_code != 200:
        raise OidcTokenError(
            f"GitHub's OIDC token service at {where} answered HTTP {response.status_code}"
        )
    try:
        value = response.json().get("value")
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str) or value.count(".") != 2:
        raise OidcTokenError(f"GitHub's OIDC token service at {where} returned no token")
    return value
