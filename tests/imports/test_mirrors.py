"""Issue 17 part 1: an import, the Hub model page, the command line and the API work through a
mirror that lists bare ``siblings`` (as olah does); a mirror that gives no digest at all is
refused with the files named, and nothing is half-imported."""

from __future__ import annotations

import hashlib
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
    assert version.model.pipeline_tag == "fill-mask"  # from the card: olah gives no top-level one


def test_a_gated_repo_imports_through_a_mirror_with_the_token(aegis, olah_mirror):
    aegis.settings.HF_TOKEN = olah_mirror.token

    hf_import("--repo-id", "acme/gated-llama", "--model-name", "gated", "--version", "1.0",
              "--register")  # fmt: skip

    assert ModelVersion.objects.filter(model__name="gated").exists()


def test_the_model_page_works_through_a_mirror(aegis, olah_mirror, bob_client):
    response = bob_client.get("/hub/acme/tiny-bert/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "<code>model.safetensors</code>" in html
    # olah gives no top-level pipeline_tag: the card's is shown, as the registry records it
    assert '<span class="chip-kind">task</span> fill-mask' in html


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


# ---- a mirror without paths-info: HEAD per file -------------------------------------------------


@pytest.fixture
def head_only_mirror(hub_double):
    """The session double as a mirror that lists bare siblings and has no paths-info."""
    hub_double.mirror_mode = "olah"
    hub_double.inject_fault(404, times=None, path_contains="/paths-info/")
    try:
        yield hub_double
    finally:
        hub_double.clear_faults()
        hub_double.mirror_mode = "hub"


def test_an_lfs_file_above_the_small_file_limit_imports_through_head(aegis, fresh_hub_double):
    big = b"a line of text above the small-file limit\n" * (10 * 1024 * 1024 // 40)
    fresh_hub_double.add_repo("acme/big", {"corpus.txt": big, "config.json": "{}"})
    fresh_hub_double.mirror_mode = "olah"
    fresh_hub_double.inject_fault(404, times=None, path_contains="/paths-info/")
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url

    hf_import("--repo-id", "acme/big", "--model-name", "big", "--version", "1", "--register")

    manifest = {entry["path"]: entry for entry in ModelVersion.objects.get().manifest}
    weights = manifest["corpus.txt"]
    assert weights["hub_digest_kind"] == "lfs-sha256"
    assert weights["hub_digest"] == weights["sha256"] == hashlib.sha256(big).hexdigest()
    assert weights["size"] == len(big) > 10 * 1024 * 1024
    assert manifest["config.json"]["hub_digest_kind"] == "git-blob-sha1"
    assert any(entry.method == "HEAD" for entry in fresh_hub_double.requests)


def test_a_gated_repo_without_the_token_is_called_gated_through_a_head_only_mirror(
    aegis, head_only_mirror, bob_client
):
    page = bob_client.get("/hub/acme/gated-llama/")
    assert page.status_code == 403
    assert "HF_TOKEN" in page.content.decode()

    with pytest.raises(CommandError, match="gated.*HF_TOKEN"):
        hf_import("--repo-id", "acme/gated-llama", "--model-name", "g", "--version", "1")
    assert not ModelVersion.objects.exists()


def test_a_mirror_that_fails_is_unavailable_not_missing_digests(aegis, olah_mirror, bob_client):
    olah_mirror.inject_fault(503, times=None, path_contains="/paths-info/")
    try:
        page = bob_client.get("/hub/acme/tiny-bert/")
    finally:
        olah_mirror.clear_faults()

    assert page.status_code == 503
    assert "HTTP 503" in page.content.decode()


def test_an_lfs_pointer_etag_is_refused_at_resolve_not_called_tampered(aegis, head_only_mirror):
    head_only_mirror.mirror_mode = "unlinked"
    commit = head_only_mirror.resolve("acme/tiny-bert")

    with pytest.raises(CommandError) as refused:
        hf_import("--repo-id", "acme/tiny-bert", "--model-name", "unlinked", "--version", "1",
                  "--revision", commit, "--register")  # fmt: skip

    message = str(refused.value)
    assert "at stage resolve" in message
    assert "'model.safetensors'" in message and "'config.json'" not in message
    assert "tampered" not in message
    request = ImportRequest.objects.get()
    assert request.error_code == "MissingFileDigests"
    assert not ModelVersion.objects.exists()
