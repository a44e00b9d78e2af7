"""Where Vault is and how Aegis logs in to it (`VaultConfig`), built by callers from settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aegis_catalog.lib.vault.errors import VaultConfigError

AuthMethod = Literal["token", "approle", "jwt", "kubernetes"]
AUTH_METHODS: tuple[str, ...] = ("token", "approle", "jwt", "kubernetes")


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
