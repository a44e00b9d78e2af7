"""``verify_model_artifact(name=, version=)`` checks an artifact against the registry's record,
read from the API of a live server, as a model loader on another machine would."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.management import call_command

from api.actions import create_token
from registry import verify
from registry.actions import set_version_status
from registry.models import ModelVersion, SigningKey
from registry.verify import verify_model_artifact
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def registry_api(aegis, transit_key, live_server, monkeypatch):
    """tiny-bert 1.0 imported and registered; the environment of a loader with a viewer's token."""
    call_command(
        "hf_import",
        "--repo-id", "acme/tiny-bert", "--model-name", "tiny-bert", "--version", "1.0",
        "--sign-key", transit_key, "--register", "--no-progress",
    )  # fmt: skip
    token = create_token(make_user("loader", "viewer"), "model loader").secret
    monkeypatch.setenv("AEGIS_API_URL", live_server.url)
    monkeypatch.setenv("AEGIS_API_TOKEN", token)
    monkeypatch.delenv("AEGIS_API_TOKEN_FILE", raising=False)
    return ModelVersion.objects.select_related("signing_key").get()


def test_it_verifies_a_local_copy_against_the_record_with_a_token_file(
    registry_api, monkeypatch, tmp_path
):
    token_file = tmp_path / "token"
    token_file.write_text(os.environ["AEGIS_API_TOKEN"] + "\n")
    monkeypatch.delenv("AEGIS_API_TOKEN")
    monkeypatch.setenv("AEGIS_API_TOKEN_FILE", str(token_file))
    local = registry_api.model_path.removeprefix("file://")

    result = verify_model_artifact(
        local, name="tiny-bert", version="1.0", extract_to=tmp_path / "x"
    )

    assert result.sha256 == registry_api.sha256 and result.artifact == local
    assert (tmp_path / "x" / "tiny-bert-1.0" / "model" / "config.json").is_file()


def test_it_refuses_bytes_that_differ_from_the_registered_digest(registry_api, tmp_path):
    local = Path(registry_api.model_path.removeprefix("file://"))
    data = bytearray(local.read_bytes())
    data[len(data) // 2] ^= 0x01
    local.write_bytes(bytes(data))

    with pytest.raises(verify.DigestMismatch):
        verify_model_artifact(str(local), name="tiny-bert", version="1.0")
    with pytest.raises(verify.DigestMismatch):  # downloaded through the API: the same bytes
        verify_model_artifact(name="tiny-bert", version="1.0")


def test_it_refuses_a_deprecated_version_unless_allowed(registry_api):
    set_version_status(registry_api, "deprecated", actor="rosa", reason="use 2.0")

    with pytest.raises(verify.VersionNotActive, match="deprecated"):
        verify_model_artifact(name="tiny-bert", version="1.0")
    assert verify_model_artifact(name="tiny-bert", version="1.0", allow_deprecated=True).record


def test_it_refuses_a_revoked_signing_key(registry_api):
    SigningKey.objects.filter(pk=registry_api.signing_key_id).update(revoked=True)

    with pytest.raises(verify.KeyRevoked):
        verify_model_artifact(name="tiny-bert", version="1.0")


def test_it_refuses_an_artifact_signed_by_another_key_than_the_record_names(registry_api):
    other = SigningKey.objects.create(
        name="aegis-model-sign", version=99, algorithm="ecdsa-p256", vault_addr="elsewhere",
        public_key_pem=registry_api.signing_key.public_key_pem, fingerprint="ee" * 32,
    )  # fmt: skip
    ModelVersion.objects.filter(pk=registry_api.pk).update(signing_key=other)

    with pytest.raises(verify.UntrustedKey, match="does not match its fingerprint"):
        verify_model_artifact(name="tiny-bert", version="1.0")


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"AEGIS_API_URL": ""}, "Set AEGIS_API_URL"),
        ({"AEGIS_API_TOKEN": ""}, "Set AEGIS_API_TOKEN"),
        ({"AEGIS_API_TOKEN": "aegis_wrong-token-value"}, "answered 401"),
        ({"AEGIS_API_URL": "http://127.0.0.1:9"}, "cannot be reached"),
    ],
)
def test_it_names_why_the_record_is_unavailable(registry_api, monkeypatch, environment, message):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(verify.RegistryRecordUnavailable, match=message) as error:
        verify_model_artifact(name="tiny-bert", version="1.0")
    assert error.value.check == "registry_record"
    assert "aegis_wrong-token-value" not in str(error.value)


def test_it_answers_an_unknown_version_and_bad_arguments(registry_api):
    with pytest.raises(verify.RegistryRecordUnavailable, match="answered 404"):
        verify_model_artifact(name="tiny-bert", version="9.9")
    with pytest.raises(TypeError):
        verify_model_artifact(name="tiny-bert")
    with pytest.raises(TypeError):
        verify_model_artifact(name="tiny-bert", version="1.0", public_key="PEM")
    with pytest.raises(TypeError):
        verify_model_artifact()
