"""`/healthz`: JSON health of database, Redis, Vault and storage, open without sign-in."""

from __future__ import annotations

import socket

import pytest

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_it_reports_every_service_up_without_sign_in(aegis, client):
    response = client.get("/healthz")

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "vault", "storage"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["vault"]["address"] == aegis.openbao.addr
    assert aegis.openbao.root_token not in response.content.decode()
    assert "no-cache" in response["Cache-Control"]


def test_it_answers_503_when_vault_is_down(aegis, client, settings):
    settings.VAULT_ADDR = f"http://127.0.0.1:{closed_port()}"

    response = client.get("/healthz")

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["vault"]["ok"] is False
    assert "unreachable" in body["checks"]["vault"]["error"]
    assert body["checks"]["database"]["ok"] and body["checks"]["storage"]["ok"]
    assert aegis.openbao.root_token not in response.content.decode()


def test_it_answers_503_when_storage_is_not_writable(aegis, client, settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.AEGIS_ARTIFACT_ROOT = blocker / "artifacts"

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["checks"]["storage"]["ok"] is False


def test_it_answers_503_when_redis_is_down_without_showing_its_password(aegis, client, settings):
    settings.RQ_QUEUES = {
        **settings.RQ_QUEUES,
        "imports": {"URL": f"redis://:s3cret-pass@127.0.0.1:{closed_port()}/0"},
    }

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["ok"] is False
    assert "s3cret-pass" not in response.content.decode()


def test_it_refuses_post(client):
    assert client.post("/healthz").status_code == 405
