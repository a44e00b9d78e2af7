"""Issue 17 part 1: an import, the Hub model page, the command line and the API work through a
mirror that lists bare ``siblings`` (as olah does); a mirror that gives no digest at all is
refused with the files named, and nothing is half-imported."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from imports.models import ImportRequest
from registry.models import ModelVersion
from tests.factories import ApiClient, token_for

pytestmark = pytest.mark.django_db


def hf_import(*args: str) -> None:
    call_command("hf_import", *args, "--no-progress")


def test_the_command_line_imports_through_a_mirror(aegis, olah_mirror):
    hf_import("--repo-id", "acme/tiny-bert", "--model-name", "mirrored", "--version", "1.0",
              "--register")  # fmt: skip

    version = ModelVersion.objects.get(model__name="mirrored")
    lfs = [entry for entry in version.manifest if entry["hub_digest_kind"] == "lfs-sha256"]
    assert lfs and all(entry["hub_digest"] == entry["sha256"] for entry in lfs)
    blobs = [entry for entry in version.manifest if entry["hub_digest_kind"] == "git-blob-sha1"]
    assert blobs  # the small files were checked against their git blob ids
    assert any("/paths-info/" in entry.path for entry in olah_mirror.requests)


def test_a_gated_repo_imports_through_a_mirror_with_the_token(aegis, olah_mirror):
    aegis.settings.HF_TOKEN = olah_mirror.token

    hf_import("--repo-id", "acme/gated-llama", "--model-name", "gated", "--version", "1.0",
              "--register")  # fmt: skip

    assert ModelVersion.objects.filter(model__name="gated").exists()


def test_the_model_page_works_through_a_mirror(aegis, olah_mirror, bob_client):
    response = bob_client.get("/hub/acme/tiny-bert/")

    assert response.status_code == 200
    assert "<code>model.safetensors</code>" in response.content.decode()


def test_the_api_imports_through_a_mirror(
    aegis, olah_mirror, alice, django_capture_on_commit_callbacks
):
    api = ApiClient(token_for(alice))

    with django_capture_on_commit_callbacks(execute=False):
        response = api.post(
            "/api/v1/imports",
            {"repo_id": "acme/tiny-bert", "model_name": "via-api", "version": "1.0"},
        )

    assert response.status_code == 202, response.content
    assert response.json()["commit"] == olah_mirror.resolve("acme/tiny-bert")


def test_a_mirror_without_digests_is_refused_naming_the_files(aegis, blind_mirror, bob_client):
    with pytest.raises(CommandError) as refused:
        hf_import("--repo-id", "acme/tiny-bert", "--model-name", "blind", "--version", "1.0")

    assert "gives no size or digest for" in str(refused.value)
    assert "'config.json'" in str(refused.value)
    assert not ModelVersion.objects.exists()
    assert not ImportRequest.objects.filter(status="succeeded").exists()
    page = bob_client.get("/hub/acme/tiny-bert/")
    assert page.status_code == 502
    assert "gives no size or digest" in page.content.decode()


def test_rebuild_reproduces_through_a_mirror(aegis, olah_mirror):
    hf_import("--repo-id", "acme/tiny-bert", "--model-name", "mirrored", "--version", "2.0",
              "--register")  # fmt: skip
    out = io.StringIO()

    call_command("rebuild", "mirrored", "2.0", stdout=out)

    assert out.getvalue().rstrip().endswith("reproduced")
