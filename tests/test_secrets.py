"""Must-show 5: imports run with distinctive secrets (HF token, Vault token, AppRole secret id,
S3 secret key) against a failing Hub, Vault and S3; then the logs (every logger at DEBUG, and
the output of an hf_import process), AuditEvent, ImportEvent, the stored errors, results and
state, the pages and /healthz are searched for each secret: none may appear."""

from __future__ import annotations

import json
import logging
import secrets
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core import serializers
from django.test import Client

from devservers.hub_double import demo_repos
from imports import actions
from imports.actions import ImportOptions
from imports.jobs import run_import
from imports.models import ImportEvent, ImportRequest
from registry.models import AuditEvent, ModelVersion
from tests.factories import make_user, process_env

pytestmark = pytest.mark.django_db(transaction=True)
BASE_DIR = Path(__file__).resolve().parents[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def distinctive(kind: str) -> str:
    return f"{kind}SECRET{secrets.token_hex(12)}"


def run(options: ImportOptions) -> ImportRequest:
    request = actions.start_import(options, actor="alice", enqueue=False)
    run_import(request.pk)
    request.refresh_from_db()
    return request


@dataclass
class Secrets:
    hf_token: str
    vault_token: str
    role_id: str
    secret_id: str
    s3_secret: str
    wrong_hf_token: str = field(default_factory=lambda: distinctive("hf_wrong"))
    wrong_secret_id: str = field(default_factory=lambda: distinctive("approle_wrong"))
    wrong_s3_secret: str = field(default_factory=lambda: distinctive("s3wrong"))

    def every(self) -> list[str]:
        return [
            self.hf_token,
            self.vault_token,
            self.secret_id,
            self.s3_secret,
            self.wrong_hf_token,
            self.wrong_secret_id,
            self.wrong_s3_secret,
        ]


def make_secrets(settings, vault, hub) -> Secrets:
    """Distinctive secrets, each made valid where it belongs: the Hub double, Vault, S3."""
    hf_token = distinctive("hf_")
    hub.tokens.add(hf_token)
    vault_token = distinctive("vaulttoken")
    vault.api("POST", "auth/token/create", {"id": vault_token, "policies": ["aegis-signer"]})
    role_id, _ = vault.enable_approle("aegis-secrets-test")
    secret_id = distinctive("approle")
    vault.api(
        "POST", "auth/approle/role/aegis-secrets-test/custom-secret-id", {"secret_id": secret_id}
    )
    return Secrets(hf_token, vault_token, role_id, secret_id, settings.AWS_SECRET_ACCESS_KEY)


def options(version: str) -> ImportOptions:
    return ImportOptions("acme/tiny-bert", f"secrets-{version}", "1", upload_s3=True)


def run_imports(settings, vault, hub, keys: Secrets) -> dict[str, ImportRequest]:
    """One import that works, then one per failure of the Hub, Vault and S3."""
    outcomes: dict[str, ImportRequest] = {}
    # 1. Everything works, signing through an AppRole login.
    settings.VAULT_AUTH_METHOD = "approle"
    settings.VAULT_ROLE_ID, settings.VAULT_SECRET_ID = keys.role_id, keys.secret_id
    outcomes["ok"] = run(options("1"))
    assert outcomes["ok"].status == "succeeded", outcomes["ok"].error
    # 2. The Hub answers 500, then refuses the token.
    fault = hub.inject_fault(500, times=None, path_contains="/api/models/")
    outcomes["hub 500"] = run(options("2"))
    fault.remaining = 0
    settings.HF_TOKEN = keys.wrong_hf_token
    outcomes["hub token"] = run(options("3"))
    settings.HF_TOKEN = keys.hf_token
    # 3. Vault: wrong AppRole secret, unreachable, then the token revoked.
    settings.VAULT_SECRET_ID = keys.wrong_secret_id
    outcomes["approle"] = run(options("4"))
    settings.VAULT_AUTH_METHOD, settings.VAULT_TOKEN = "token", keys.vault_token
    good_vault = settings.VAULT_ADDR
    settings.VAULT_ADDR = f"http://127.0.0.1:{closed_port()}"
    outcomes["vault down"] = run(options("5"))
    settings.VAULT_ADDR = good_vault
    vault.api("POST", "auth/token/revoke", {"token": keys.vault_token})
    outcomes["vault revoked"] = run(options("6"))
    settings.VAULT_TOKEN = vault.root_token
    # 4. S3: a wrong secret key, then unreachable.
    settings.AWS_SECRET_ACCESS_KEY = keys.wrong_s3_secret
    outcomes["s3 secret"] = run(options("7"))
    settings.AWS_SECRET_ACCESS_KEY = keys.s3_secret
    good_s3 = settings.AWS_ENDPOINT_URL_S3
    settings.AWS_ENDPOINT_URL_S3 = f"http://127.0.0.1:{closed_port()}"
    outcomes["s3 down"] = run(options("8"))
    settings.AWS_ENDPOINT_URL_S3 = good_s3
    return outcomes


def run_cli(settings, hub, keys: Secrets, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """hf_import in its own process, logging at DEBUG, with Vault down and S3 refusing."""
    env = process_env(
        tmp_path / "cli",
        AEGIS_LOG_LEVEL="DEBUG",
        REDIS_URL=settings.RQ_QUEUES["imports"]["URL"],
        HF_ENDPOINT=hub.url,
        HF_TOKEN=keys.hf_token,
        VAULT_ADDR=f"http://127.0.0.1:{closed_port()}",
        VAULT_TOKEN=keys.vault_token,
        AWS_ENDPOINT_URL_S3=settings.AWS_ENDPOINT_URL_S3,
        AWS_ACCESS_KEY_ID=settings.AWS_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=keys.wrong_s3_secret,
        AEGIS_S3_BUCKET=settings.AEGIS_S3_BUCKET,
        AEGIS_S3_MAX_ATTEMPTS="1",
    )
    (tmp_path / "cli").mkdir()
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, env=env, check=True
    )
    return subprocess.run(
        [
            sys.executable, "manage.py", "hf_import", "--repo-id", "acme/tiny-bert",
            "--model-name", "cli", "--version", "1", "--upload-s3", "--no-progress",
        ],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def visible_pages(outcomes: dict[str, ImportRequest]) -> list:
    """What a person or an auditor can see."""
    make_user("alice", "importer", is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(make_user("reader", "viewer", "auditor"))
    pages = [browser.get(f"/imports/{request.pk}/") for request in outcomes.values()]
    pages += [browser.get("/imports/"), browser.get("/audit/"), Client().get("/healthz")]
    pages.append(browser.get(ModelVersion.objects.get().get_absolute_url()))
    assert all(page.status_code in (200, 503) for page in pages)
    return pages


def test_no_secret_reaches_logs_events_errors_or_pages(
    aegis_s3, fresh_hub_double, caplog, capfd, tmp_path
):
    caplog.set_level(logging.DEBUG)  # every logger: botocore, urllib3, hvac, httpx2, ours
    settings, vault = aegis_s3.settings, aegis_s3.openbao
    hub = fresh_hub_double
    demo_repos(hub)
    keys = make_secrets(settings, vault, hub)
    settings.HF_ENDPOINT = hub.url
    settings.HF_TOKEN = keys.hf_token
    settings.AEGIS_HUB_RETRIES = 1
    settings.AEGIS_HUB_RETRY_WAIT_MS = 10
    settings.AEGIS_S3_MAX_ATTEMPTS = 2

    outcomes = run_imports(settings, vault, hub, keys)
    for name, request in outcomes.items():
        if name != "ok":
            assert request.status == "failed", (name, request.status)
            assert request.error, name
    assert "HTTP 500" in outcomes["hub 500"].error
    assert "HF token" in outcomes["hub token"].error
    assert "unreachable" in outcomes["vault down"].error
    assert "permission denied" in outcomes["vault revoked"].error
    assert "unreachable" in outcomes["s3 down"].error

    cli = run_cli(settings, hub, keys, tmp_path)
    assert cli.returncode != 0
    assert "Vault at" in cli.stderr and "unreachable" in cli.stderr

    pages = visible_pages(outcomes)
    haystacks = {
        "logs": caplog.text + "\n".join(str(record.__dict__) for record in caplog.records),
        "captured output": "".join(capfd.readouterr()),
        "hf_import process": cli.stdout + cli.stderr,
        "AuditEvent": serializers.serialize("json", AuditEvent.objects.all()),
        "ImportEvent": serializers.serialize("json", ImportEvent.objects.all()),
        "ImportRequest": serializers.serialize("json", ImportRequest.objects.all()),
        "ModelVersion": serializers.serialize("json", ModelVersion.objects.all()),
        "pages": "\n".join(page.content.decode() for page in pages),
    }
    assert len(haystacks["logs"]) > 1000  # DEBUG logging did record the runs
    leaks = [
        (where, secret[:10])
        for where, text in haystacks.items()
        for secret in keys.every()
        if secret in text or json.dumps(secret)[1:-1] in text
    ]
    assert leaks == []
