"""`/registry/<name>/` and the provenance page `/registry/<name>/<version>/`."""

from __future__ import annotations

import pytest

from imports.actions import ImportOptions, start_import
from imports.jobs import run_import
from registry.models import ModelVersion
from tests.factories import make_version

pytestmark = pytest.mark.django_db


def test_it_lists_a_models_versions_with_links_to_provenance(bob_client):
    make_version("tiny-bert", "1.0", commit="a" * 40, license="mit", tags=["bert"])
    make_version("tiny-bert", "1.1", commit="b" * 40)

    html = bob_client.get("/registry/tiny-bert/").content.decode()

    assert 'href="/registry/tiny-bert/1.0/"' in html and 'href="/registry/tiny-bert/1.1/"' in html
    assert "aaaaaaaaaaaa" in html and "bbbbbbbbbbbb" in html
    assert '<span class="chip-kind">tag</span> bert' in html


def test_it_shows_the_provenance_of_an_imported_version(aegis, alice, charlie_client):
    request = start_import(
        ImportOptions(repo_id="acme/pickled-net", model_name="pickled-net", version="1.0"),
        actor="alice",
        user=alice,
        enqueue=False,
    )
    assert run_import(request.pk) == "succeeded"
    version = ModelVersion.objects.select_related("signing_key").get()

    response = charlie_client.get("/registry/pickled-net/1.0/")

    html = response.content.decode()
    commit = aegis.hub.resolve("acme/pickled-net")
    assert response.status_code == 200
    assert f'href="{aegis.hub.url}/acme/pickled-net/tree/{commit}"' in html
    assert f'<code id="source-commit">{commit}</code>' in html
    assert f'<code id="tarball-sha256">{version.sha256}</code>' in html
    assert f"{version.size} bytes" in html
    assert f'<code id="model-path">{version.model_path}</code>' in html
    assert f'<code id="key-fingerprint">{version.signing_key.fingerprint}</code>' in html
    assert f"{version.signing_key.name} version {version.signing_key.version}" in html
    for item in version.manifest:
        assert f"<code>{item['path']}</code>" in html
        assert f'<code class="digest">{item["sha256"]}</code>' in html
    assert "pytorch_model.bin" in html and "verdict-safe" in html
    assert f'href="/imports/{request.pk}/"' in html
    assert "by alice" in html


@pytest.mark.parametrize(
    "url", ["/registry/nope/", "/registry/tiny-bert/9.9/", "/registry/nope/1.0/"]
)
def test_it_answers_404_for_unknown_models_and_versions(bob_client, url):
    make_version("tiny-bert", "1.0")

    assert bob_client.get(url).status_code == 404
