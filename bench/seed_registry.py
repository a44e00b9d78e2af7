"""Fill the bench database with registered models and versions, and as many finished
imports (one per version); print a session cookie.

Usage: python bench/seed_registry.py VERSIONS   (env: DATABASE_URL of the bench database)
Prints one JSON line {"sessionid": ..., "versions": N, "imports": N}.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_catalog.settings")

if TYPE_CHECKING:
    from registry.models import ModelVersion, RegisteredModel, SigningKey

VERSIONS_PER_MODEL = 20


def main() -> None:
    import django

    django.setup()
    from registry.models import ModelVersion

    total = int(sys.argv[1])
    key = bench_signing_key()
    models = bench_models(-(-total // VERSIONS_PER_MODEL))
    versions = ModelVersion.objects.bulk_create(bench_versions(models, total, key), batch_size=500)
    session = superuser_session()
    imports = bench_imports(versions)
    figures = {"sessionid": session, "versions": ModelVersion.objects.count(), "imports": imports}
    print(json.dumps(figures), flush=True)


def bench_signing_key() -> SigningKey:
    """A signing key row with a fresh P-256 public key (the versions only point at it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from registry.models import SigningKey

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return SigningKey.objects.create(
        name="bench-key",
        version=1,
        algorithm="ecdsa-p256",
        public_key_pem=pem,
        fingerprint=hashlib.sha256(pem.encode()).hexdigest(),
        vault_addr="http://bench.invalid",
    )


def bench_models(count: int) -> list[RegisteredModel]:
    """`count` registered models with licenses and tasks in turn."""
    from registry.models import RegisteredModel

    licenses = ["mit", "apache-2.0", "cc-by-4.0"]
    tasks = ["text-generation", "text-classification", "image-classification"]
    return RegisteredModel.objects.bulk_create(
        RegisteredModel(
            name=f"bench-model-{index:04d}",
            source_repo=f"bench-org/model-{index:04d}",
            author="bench-org",
            license=licenses[index % 3],
            pipeline_tag=tasks[index % 3],
            library_name="transformers",
            tags=["bench", tasks[index % 3]],
        )
        for index in range(count)
    )


def bench_versions(
    models: list[RegisteredModel], total: int, key: SigningKey
) -> list[ModelVersion]:
    """`total` unsaved versions, VERSIONS_PER_MODEL to a model, a minute apart."""
    from registry.models import ModelVersion

    start = datetime(2026, 1, 1, tzinfo=UTC)
    manifest = [{"path": "model.safetensors", "size": 1, "sha256": "0" * 64}]
    versions = []
    for number in range(total):
        model = models[number // VERSIONS_PER_MODEL]
        digest = hashlib.sha256(f"{model.name}-{number}".encode()).hexdigest()
        versions.append(
            ModelVersion(
                model=model,
                version=str(number % VERSIONS_PER_MODEL + 1),
                license=model.license,
                model_path=f"s3://bench/{model.name}/{number}.tar.gz",
                sha256=digest,
                size=1024,
                file_count=1,
                manifest=manifest,
                model_signature={},
                attestation={},
                signing_key=key,
                source_repo=model.source_repo,
                source_revision="main",
                source_commit=digest[:40],
                source_endpoint="https://huggingface.co",
                imported_by="bench",
                imported_at=start + timedelta(minutes=number),
            )
        )
    return versions


def bench_imports(versions: list[ModelVersion]) -> int:
    """One succeeded import per version, requested by `bench`, a minute apart."""
    from django.contrib.auth import get_user_model

    from imports.models import ImportRequest

    user = get_user_model().objects.get(username="bench")
    ImportRequest.objects.bulk_create(
        (
            ImportRequest(
                repo_id=version.source_repo,
                revision="main",
                commit=version.source_commit,
                model_name=version.model.name,
                version=version.version,
                sign_key="bench-key",
                requested_by=user,
                actor="bench",
                status=ImportRequest.Status.SUCCEEDED,
                model_version=version,
                started_at=version.imported_at - timedelta(seconds=90),
                finished_at=version.imported_at,
            )
            for version in versions
        ),
        batch_size=500,
    )
    return ImportRequest.objects.count()


def superuser_session() -> str:
    """The session cookie of a new superuser `bench`, signed in."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    user = get_user_model().objects.create_superuser("bench", "bench@example.invalid", None)
    client = Client()
    client.force_login(user)
    return str(client.cookies[settings.SESSION_COOKIE_NAME].value)


if __name__ == "__main__":
    main()
