"""Build the outside-service clients of ``aegis_catalog.lib`` from Django settings."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import cast

from django.conf import settings

from aegis_catalog.lib.hub import HubClient
from aegis_catalog.lib.storage import ArtifactStore, LocalStore, S3Config, S3Store, store_for_url
from aegis_catalog.lib.vault import (
    AuthMethod,
    TransitClient,
    VaultConfig,
    github_actions_oidc_token,
)


def hub_client(*, interactive: bool = False, retries: int | None = None) -> HubClient:
    """The Hub client; `interactive` (a page someone waits for) gives up at the first HTTP
    429/5xx instead of backing off like an import does; `retries` for a caller that repeats
    requests itself (the upstream watch bounds its waits)."""
    if retries is None:
        retries = 0 if interactive else settings.AEGIS_HUB_RETRIES
    return HubClient(
        settings.HF_ENDPOINT,
        settings.HF_TOKEN,
        retries=retries,
        retry_wait=settings.AEGIS_HUB_RETRY_WAIT_MS / 1000,
        download_workers=settings.AEGIS_HUB_DOWNLOAD_WORKERS,
    )


def _jwt() -> str | None:
    """The configured JWT, else (in a GitHub Actions job) the job's own OIDC token."""
    if settings.VAULT_JWT or settings.VAULT_AUTH_METHOD != "jwt":
        return settings.VAULT_JWT
    if os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL"):
        return github_actions_oidc_token(settings.VAULT_JWT_AUDIENCE or settings.VAULT_ADDR)
    return None


def vault_config() -> VaultConfig:
    return VaultConfig(
        addr=settings.VAULT_ADDR,
        auth_method=cast(AuthMethod, settings.VAULT_AUTH_METHOD),
        token=settings.VAULT_TOKEN,
        namespace=settings.VAULT_NAMESPACE,
        role_id=settings.VAULT_ROLE_ID,
        secret_id=settings.VAULT_SECRET_ID,
        approle_mount=settings.VAULT_APPROLE_MOUNT,
        jwt_role=settings.VAULT_JWT_ROLE,
        jwt=_jwt(),
        jwt_mount=settings.VAULT_JWT_MOUNT,
        kubernetes_role=settings.VAULT_KUBERNETES_ROLE,
        kubernetes_mount=settings.VAULT_KUBERNETES_MOUNT,
        kubernetes_jwt_path=settings.VAULT_KUBERNETES_JWT_PATH,
        ca_bundle=settings.VAULT_CACERT,
        transit_mount=settings.AEGIS_TRANSIT_MOUNT,
    )


def transit_client() -> TransitClient:
    return TransitClient(vault_config())


def s3_config(bucket: str | None = None) -> S3Config:
    return S3Config(
        endpoint_url=settings.AWS_ENDPOINT_URL_S3,
        access_key_id=settings.AWS_ACCESS_KEY_ID,
        secret_access_key=settings.AWS_SECRET_ACCESS_KEY,
        session_token=settings.AWS_SESSION_TOKEN,
        region=settings.AWS_REGION,
        bucket=bucket or settings.AEGIS_S3_BUCKET,
        prefix=settings.AEGIS_S3_PREFIX,
        max_attempts=settings.AEGIS_S3_MAX_ATTEMPTS,
        max_concurrency=settings.AEGIS_S3_MAX_CONCURRENCY,
    )


def artifact_store(*, upload_s3: bool = False, bucket: str | None = None) -> ArtifactStore:
    """Where new artifacts go: S3 when asked, else the local artifact directory."""
    if upload_s3:
        return S3Store(s3_config(bucket))
    return LocalStore(settings.AEGIS_ARTIFACT_ROOT)


def served_store_for(url: str) -> ArtifactStore:
    """The store a download reads ``url`` from: a ``file://`` URL only inside the artifact
    directory (a registry row edited to point at another file is refused, not served). An S3
    store is shared by the requests of a process: making its boto3 client costs more than
    serving a small file."""
    store = store_for_url(url, local_root=settings.AEGIS_ARTIFACT_ROOT, s3=s3_config())
    return _shared_s3_store(store.config) if isinstance(store, S3Store) else store


@lru_cache(maxsize=8)
def _shared_s3_store(config: S3Config) -> S3Store:
    """One store (one thread-safe boto3 client) per configuration and process."""
    return S3Store(config)


def store_for(url: str) -> ArtifactStore:
    """The store that can read an existing artifact URL (file:// or s3://)."""
    return store_for_url(url, local_root=None, s3=s3_config())
