"""Test factories: users in groups, signed-in clients, registry rows and audit events written
as the product writes them. The user fixtures built on them are in tests/conftest.py."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from django.contrib.auth.models import Group, Permission, User
from django.db.models import QuerySet
from django.test import Client

from api.actions import create_token
from registry.models import (
    GENESIS_HASH,
    AuditChainHead,
    AuditEvent,
    ModelVersion,
    RegisteredModel,
    SigningKey,
)

PASSWORD = "correct horse battery staple 42"


def make_user(username: str, *groups: str, **extra: Any) -> User:
    user = User.objects.create_user(username, f"{username}@example.org", PASSWORD, **extra)
    for name in groups:
        # get_or_create: a transactional test's flush removed the migration's groups
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


# What the registry-admin group needs in the admin (tests/registry/test_admin.py does the same).
REGISTRY_ADMIN_PERMISSIONS = (
    "view_registeredmodel",
    "change_registeredmodel",
    "view_modelversion",
    "change_modelversion",
    "view_signingkey",
    "change_signingkey",
    "view_auditevent",
    "view_importpolicy",
    "change_importpolicy",
    "view_policyoverride",
    "view_hubrepochoice",
    "view_webhook",
    "add_webhook",
    "change_webhook",
    "delete_webhook",
    "view_delivery",
    "add_hubrepochoice",
    "change_hubrepochoice",
    "delete_hubrepochoice",
    "view_servedversion",
)


def make_registry_admin(username: str) -> User:
    """A registry-admin group member with the admin permissions of that group."""
    user = make_user(username, "registry-admin")
    group = Group.objects.get(name="registry-admin")
    group.permissions.add(*Permission.objects.filter(codename__in=REGISTRY_ADMIN_PERMISSIONS))
    return user


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def signing_key() -> SigningKey:
    key, _ = SigningKey.objects.get_or_create(
        name="aegis-model-sign",
        version=1,
        vault_addr="http://127.0.0.1:8200",
        fingerprint="ab" * 32,
        defaults={"algorithm": "ecdsa-p256", "public_key_pem": "-----BEGIN PUBLIC KEY-----\n"},
    )
    return key


def make_version(
    model_name: str,
    version: str,
    *,
    source_repo: str = "acme/tiny-bert",
    commit: str = "0" * 40,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    key: SigningKey | None = None,
    **model_fields: Any,
) -> ModelVersion:
    """A registry row as an import would write it (no artifact behind it)."""
    model, _ = RegisteredModel.objects.get_or_create(
        name=model_name, defaults={"source_repo": source_repo, **model_fields}
    )
    return ModelVersion.objects.create(
        model=model,
        version=version,
        model_path=f"file:///srv/artifacts/{model_name}-{version}.tar.gz",
        sha256="cd" * 32,
        size=1234,
        file_count=1,
        manifest=[{"path": "config.json", "size": 12, "sha256": "ef" * 32,
                   "hub_digest": "12" * 20, "hub_digest_kind": "git-blob-sha1"}],
        model_signature={},
        attestation={},
        signing_key=key or signing_key(),
        source_repo=source_repo,
        source_revision="main",
        source_commit=commit,
        source_endpoint="https://huggingface.co",
        import_options={"include": include or [], "exclude": exclude or []},
        scan_results=[],
        imported_by="alice",
        imported_at=datetime(2026, 11, 2, 10, 0, tzinfo=UTC),
    )  # fmt: skip


def bulk_registry(models: int = 1000, versions_per_model: int = 5) -> None:
    """Many registry rows, written with bulk_create (for query-count tests)."""
    key = signing_key()
    licenses = ["mit", "apache-2.0", "cc-by-4.0"]
    RegisteredModel.objects.bulk_create(
        RegisteredModel(
            name=f"model-{index:04d}",
            source_repo=f"org-{index % 7}/model-{index:04d}",
            author=f"org-{index % 7}",
            license=licenses[index % 3],
            pipeline_tag="text-classification" if index % 2 else "fill-mask",
            tags=["demo", f"t{index % 5}"],
        )
        for index in range(models)
    )
    rows = list(RegisteredModel.objects.order_by("pk"))
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    ModelVersion.objects.bulk_create(
        ModelVersion(
            model=model,
            version=f"1.{number}",
            model_path=f"file:///srv/{model.name}-1.{number}.tar.gz",
            sha256=f"{number:064x}",
            size=100 + number,
            file_count=2,
            manifest=[],
            model_signature={},
            attestation={},
            signing_key=key,
            source_repo=model.source_repo,
            source_revision="main",
            source_commit=f"{number:040x}",
            source_endpoint="https://huggingface.co",
            imported_by="alice",
            imported_at=moment.replace(day=1 + number),
        )
        for model in rows
        for number in range(versions_per_model)
    )


def append_audit_events(events: Iterable[Mapping[str, Any]], *, batch_size: int = 5000) -> int:
    """Append events to the audit hash chain with ``bulk_create``, linked exactly as
    ``registry.audit.record`` links them, and move the chain head; returns how many.

    Each mapping gives AuditEvent fields; ``created_at`` (aware) and ``actor`` are required,
    ``action`` defaults to ``registry.version_edited``. Lets tests date events in the past
    and write many quickly; ``verify_chain()`` must accept the result.
    """
    head = AuditChainHead.objects.filter(pk=1).first()
    sequence = head.last_sequence if head else 0
    previous_hash = head.last_hash if head else GENESIS_HASH
    written = 0
    iterator = iter(events)
    while batch := list(islice(iterator, batch_size)):
        rows = []
        for fields in batch:
            sequence += 1
            event = AuditEvent(
                sequence=sequence,
                created_at=fields["created_at"],
                actor=fields["actor"],
                action=fields.get("action", "registry.version_edited"),
                object_type=fields.get("object_type", "version"),
                object_id=str(fields.get("object_id", "1")),
                object_repr=fields.get("object_repr", "tiny-bert 1.0"),
                model_name=fields.get("model_name", "tiny-bert"),
                details=fields.get("details", {}),
                previous_hash=previous_hash,
            )
            event.hash = event.compute_hash()
            previous_hash = event.hash
            rows.append(event)
        AuditEvent.objects.bulk_create(rows)
        written += len(rows)
    # The guarded manager refuses to move the head other than one event at a time; a plain
    # QuerySet moves it past the batch, as the database would see a real append do.
    if (
        not QuerySet(model=AuditChainHead)
        .filter(pk=1)
        .update(last_sequence=sequence, last_hash=previous_hash)
    ):
        AuditChainHead.objects.create(pk=1, last_sequence=sequence, last_hash=previous_hash)
    return written


def import_form(**overrides: Any) -> dict[str, str]:
    """The Hub model page's import form as a browser posts it (tiny-bert 1.0 at main)."""
    data = {
        "model_name": "tiny-bert",
        "version": "1.0",
        "revision": "main",
        "include": "",
        "exclude": "",
        "register": "on",
    }
    data.update(overrides)
    return data


def member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    """The bytes of a regular file in a tarball."""
    handle = tar.extractfile(member)
    assert handle is not None, f"{member.name} is not a regular file"
    return handle.read()


def token_for(user: User, name: str = "tests") -> str:
    return create_token(user, name).secret


class ApiClient:
    """Django's test client with a bearer token on every request."""

    def __init__(self, token: str | None) -> None:
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params, headers=self.headers)

    def post(self, path: str, body: Any) -> Any:
        return self.client.post(path, body, content_type="application/json", headers=self.headers)


def process_env(directory: Path, **settings: str) -> dict[str, str]:
    """The environment of an Aegis process of its own (``manage.py`` in a subprocess): its own
    SQLite database, var, artifact and work directories under ``directory``, none of this
    process's Aegis, Vault, S3 or Hub settings; ``settings`` adds to it."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VAULT_", "AWS_", "AEGIS_", "HF_", "DJANGO_", "DATABASE_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="aegis_catalog.settings",
        DATABASE_URL=f"sqlite:///{directory}/aegis.sqlite3",  # its own database, never CI's
        AEGIS_VAR_DIR=str(directory / "var"),
        AEGIS_ARTIFACT_ROOT=str(directory / "artifacts"),
        AEGIS_WORK_DIR=str(directory / "work"),
        AEGIS_MIN_FREE_BYTES="0",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",
        **settings,
    )
    return env


HTMX = {"HX-Request": "true"}


def verify_now(client: Client, name: str = "tiny-bert", version: str = "1.0") -> str:
    """Press "Verify now" (htmx): the run is queued as one job, which runs here; returns the
    panel the page's poll then gets (with the refreshed timeline)."""
    import django_rq
    from django.test import TestCase

    from registry.models import VerificationRun

    queue = django_rq.get_queue("default")
    queue.empty()
    url = f"/registry/{name}/{version}/verify/"
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(url, headers=HTMX)
    assert response.status_code == 200, response.content[:2000]
    run = VerificationRun.objects.latest("pk")
    assert f'hx-get="{url}{run.pk}/"' in response.content.decode()
    jobs = queue.get_jobs()
    assert [(job.func_name, job.args) for job in jobs] == [
        ("registry.jobs.verification_job", (run.pk,))
    ]
    jobs[0].perform()
    queue.empty()
    polled = client.get(f"{url}{run.pk}/", headers=HTMX)
    assert polled.status_code == 200
    return polled.content.decode()


def imported(repo_id: str, name: str = "", version: str = "1") -> Any:
    """An import of `repo_id` (as `name`, by default the repo's name) run to its end in this
    process; the ImportRequest, refreshed."""
    from imports import actions
    from imports.actions import ImportOptions
    from imports.jobs import run_import

    request = actions.start_import(
        ImportOptions(repo_id, name or repo_id.split("/")[1], version), actor="alice", enqueue=False
    )
    run_import(request.pk)
    request.refresh_from_db()
    return request
