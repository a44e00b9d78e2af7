"""Logging in to Vault / OpenBao: a token, AppRole, JWT (CI OIDC) or Kubernetes.

`VaultSession` holds one logged-in hvac client for a `VaultConfig`, logs in lazily and, when
asked to forget the client, logs in again on next use (a long-running worker survives token
expiry). `github_actions_oidc_token` fetches the JWT a GitHub Actions run logs in with.
Secrets (tokens, secret ids, JWTs) never appear in messages.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import jwt
import requests

from aegis_catalog.lib.vault.config import VaultConfig
from aegis_catalog.lib.vault.errors import (
    OidcTokenError,
    VaultAuthError,
    VaultUnreachable,
    network_reason,
    vault_messages,
)

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


class VaultSession:
    """One logged-in hvac client for `config`, shared by threads."""

    def __init__(self, config: VaultConfig) -> None:
        self.config = config
        self._client: hvac.Client | None = None
        self._lock = threading.RLock()

    @property
    def where(self) -> str:
        """Vault's address (and namespace), as messages name it."""
        if self.config.namespace:
            return f"Vault at {self.config.addr} (namespace {self.config.namespace!r})"
        return f"Vault at {self.config.addr}"

    def new_hvac_client(self, token: str, *, namespace: str | None) -> hvac.Client:
        """A client with `token` (not logged in by this call)."""
        # token="" (never None) keeps hvac from reading VAULT_TOKEN or ~/.vault-token.
        return hvac.Client(
            url=self.config.addr,
            token=token,
            verify=self.config.ca_bundle or True,
            timeout=self.config.timeout,
            namespace=namespace,
        )

    def client(self) -> hvac.Client:
        """The logged-in client, logging in first if there is none yet."""
        with self._lock:
            if self._client is None:
                self._client = self._login()
            return self._client

    def forget(self) -> None:
        """Drop the client (its token may have expired): the next `client()` logs in again."""
        with self._lock:
            self._client = None

    def _login(self) -> hvac.Client:
        config = self.config
        method = config.auth_method
        if method == "token":
            if not config.token:
                raise VaultAuthError(
                    f"no Vault token is configured for {self.where}; set the token "
                    "(this client never reads ~/.vault-token)"
                )
            return self.new_hvac_client(config.token, namespace=config.namespace)
        client = self.new_hvac_client("", namespace=config.namespace)
        if method == "approle":
            self._approle_login(client)
        elif method == "jwt":
            self._jwt_login(client)
        else:
            self._kubernetes_login(client)
        if not client.adapter.token:
            raise VaultAuthError(f"{self.where} returned no client token after {method} login")
        return client

    def _approle_login(self, client: hvac.Client) -> None:
        config = self.config
        if not config.role_id:
            raise VaultAuthError(f"AppRole login to {self.where} needs a role_id")
        mount = config.approle_mount
        self._run_login(
            f"AppRole login at auth/{mount}",
            lambda: client.auth.approle.login(
                role_id=config.role_id, secret_id=config.secret_id, mount_point=mount
            ),
        )

    def _jwt_login(self, client: hvac.Client) -> None:
        config = self.config
        if not config.jwt_role or not config.jwt:
            raise VaultAuthError(
                f"JWT login to {self.where} needs both a role and a JWT "
                "(in GitHub Actions, see github_actions_oidc_token)"
            )
        mount = config.jwt_mount
        self._run_login(
            f"JWT login as role {config.jwt_role!r} at auth/{mount}",
            lambda: client.auth.jwt.jwt_login(role=config.jwt_role, jwt=config.jwt, path=mount),
        )

    def _kubernetes_login(self, client: hvac.Client) -> None:
        config = self.config
        if not config.kubernetes_role:
            raise VaultAuthError(f"Kubernetes login to {self.where} needs a role")
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

    def _run_login(self, what: str, login: Callable[[], object]) -> None:
        try:
            login()
        except requests.RequestException as error:
            raise VaultUnreachable(
                f"{self.where} is unreachable: {network_reason(error, self.config.timeout)}"
            ) from None
        except (hvac.exceptions.VaultDown, hvac.exceptions.VaultNotInitialized) as error:
            raise VaultUnreachable(
                f"{self.where} is sealed or unavailable: {vault_messages(error)}"
            ) from None
        except hvac.exceptions.VaultError as error:
            detail = vault_messages(error) or type(error).__name__
            raise VaultAuthError(f"{self.where} rejected the {what}: {detail}") from None

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
                f"the JWT configured for {self.where} is not a well-formed token "
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
            f"{network_reason(error, timeout)}"
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
