"""Security review item 5: a yanked version's artifact is not served (410 with the reason)
unless an auditor or registry admin asks for it explicitly; every download answer says the
version's status. A download reads a local file only inside the artifact directory, and
aegis.json only when it is the record the provenance statement signs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.test import Client

from api.actions import create_token
from registry import attestation, slsa
from registry.actions import set_version_status
from registry.models import ModelVersion
from registry.provenance import record_url
from tests.factories import make_version, signed_in
from tests.registry.views.test_provenance_page import body, import_version

ARTIFACT = "/registry/tiny-bert/1.0/download/artifact/"


@pytest.fixture
def yanked(aegis, alice) -> ModelVersion:
    version = import_version("acme/tiny-bert", "tiny-bert", alice)
    set_version_status(version, "yanked", actor="rosa", reason="CVE-2026-0001 in the tokenizer")
    version.refresh_from_db()
    return version


def test_a_yanked_artifact_answers_410_with_the_reason(yanked, bob_client, alice_client):
    for client in (bob_client, alice_client):  # a viewer, an importer
        response = client.get(ARTIFACT)

        assert response.status_code == 410
        assert "CVE-2026-0001 in the tokenizer" in response.content.decode()
        assert response["X-Aegis-Version-Status"] == "yanked"
        # Asking explicitly is not enough without the auditor's or admin's role.
        assert client.get(ARTIFACT + "?allow_yanked=1").status_code == 410


def test_an_auditor_or_registry_admin_gets_it_by_asking_explicitly(yanked, charlie_client, rosa):
    assert charlie_client.get(ARTIFACT).status_code == 410  # not by accident
    for client in (charlie_client, signed_in(rosa)):
        response = client.get(ARTIFACT + "?allow_yanked=1")

        assert response.status_code == 200
        assert response["X-Aegis-Version-Status"] == "yanked"
        assert hashlib.sha256(body(response)).hexdigest() == yanked.sha256


def test_the_provenance_files_of_a_yanked_version_stay_available(yanked, bob_client):
    for kind in ("attestation", "model-sig", "record", "public-key"):
        response = bob_client.get(f"/registry/tiny-bert/1.0/download/{kind}/")
        assert response.status_code == 200, kind
        assert response["X-Aegis-Version-Status"] == "yanked"


def test_the_page_offers_the_yanked_artifact_to_auditors_only(yanked, bob_client, charlie_client):
    assert (
        'id="download-artifact"' not in bob_client.get("/registry/tiny-bert/1.0/").content.decode()
    )
    page = charlie_client.get("/registry/tiny-bert/1.0/").content.decode()
    assert f'href="{ARTIFACT}?allow_yanked=1" id="download-artifact"' in page


def test_every_download_says_the_status(aegis, alice, bob_client):
    version = import_version("acme/tiny-bert", "tiny-bert", alice)
    assert bob_client.get(ARTIFACT)["X-Aegis-Version-Status"] == "active"
    set_version_status(version, "deprecated", actor="rosa", reason="use 2.0")
    response = bob_client.get(ARTIFACT)
    assert response.status_code == 200
    assert response["X-Aegis-Version-Status"] == "deprecated"


def test_a_local_file_outside_the_artifact_directory_is_not_served(bob_client, settings, tmp_path):
    settings.AEGIS_ARTIFACT_ROOT = tmp_path / "artifacts"
    secret = tmp_path / "elsewhere" / "secret.tar.gz"
    secret.parent.mkdir()
    secret.write_bytes(b"not for download")
    version = make_version("tiny-bert", "1.0")
    ModelVersion.objects.filter(pk=version.pk).update(model_path=secret.as_uri())
    escape = f"{(tmp_path / 'artifacts').as_uri()}/../elsewhere/secret.tar.gz"

    for path in (secret.as_uri(), escape):
        ModelVersion.objects.filter(pk=version.pk).update(model_path=path)
        response = bob_client.get(ARTIFACT)

        assert response.status_code == 403
        assert b"not for download" not in response.content
        assert "outside the artifact directory" in response.content.decode()


def test_aegis_json_is_served_only_when_it_is_the_record_the_statement_signs(
    aegis, alice, bob, bob_client
):
    version = import_version("acme/tiny-bert", "tiny-bert", alice)
    signed = slsa.record_digest(attestation.statement_of(version.attestation))
    stored = Path(record_url(version).removeprefix("file://"))
    assert signed == hashlib.sha256(stored.read_bytes()).hexdigest()
    record = "/registry/tiny-bert/1.0/download/record/"
    assert bob_client.get(record).content == stored.read_bytes()

    stored.write_bytes(stored.read_bytes().replace(b'"alice"', b'"mallory"'))

    page = bob_client.get(record)
    assert page.status_code == 409
    assert "not the import record the provenance statement signs" in page.content.decode()
    assert b"mallory" not in page.content
    token = create_token(bob, "reader", scope="read-only").secret
    api = Client().get(
        "/api/v1/models/tiny-bert/versions/1.0/files/record",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status_code == 409 and api.json()["error"]["code"] == "conflict"
