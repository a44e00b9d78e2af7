"""`/healthz`: JSON health of database, Redis, Vault and storage. Anyone may ask; only staff see
each check's details. The storage probe (a file written and removed) is reused for a while."""

from __future__ import annotations

import socket

import pytest
from django.test import Client

from aegis_catalog import views
from aegis_catalog.lib.storage.local import LocalStore
from tests.factories import make_user, signed_in

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def client(db):
    """A staff member: the details are for staff."""
    return signed_in(make_user("operator", is_staff=True))


@pytest.fixture(autouse=True)
def fresh_probe(settings, monkeypatch):
    monkeypatch.setattr(views, "_storage_probe", None)
    settings.AEGIS_HEALTH_PROBE_SECONDS = 0  # each request probes, unless a test says otherwise


def test_anonymous_callers_and_non_staff_get_the_status_only(aegis):
    viewer = signed_in(make_user("viewer-user", "viewer", "auditor"))
    for caller in (Client(), viewer):
        response = caller.get("/healthz")

        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        text = response.content.decode()
        assert aegis.openbao.addr not in text and "queued" not in text and "local" not in text


def test_anonymous_callers_get_503_and_no_reason_when_a_service_is_down(aegis, settings):
    settings.VAULT_ADDR = f"http://127.0.0.1:{closed_port()}"

    response = Client().get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}


def test_the_storage_probe_is_not_written_on_every_call(aegis, client, settings, monkeypatch):
    settings.AEGIS_HEALTH_PROBE_SECONDS = 60
    probes = []
    real_check = LocalStore.check

    def counted_check(store: LocalStore) -> None:
        probes.append(1)
        real_check(store)

    monkeypatch.setattr(LocalStore, "check", counted_check)

    answers = [Client().get("/healthz").status_code for _ in range(5)]
    details = client.get("/healthz").json()["checks"]["storage"]

    assert answers == [200] * 5
    assert len(probes) == 1  # the first call probed; the other five reused its answer
    assert details["ok"] and details["probed_seconds_ago"] >= 0
    settings.AEGIS_HEALTH_PROBE_SECONDS = 0
    client.get("/healthz")
    assert len(probes) == 2  # probed again once the answer expired


def test_it_reports_every_service_up_to_staff(aegis, client):
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
