"""The registry as JSON: models with the registry page's filters, versions, keys, downloads."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from tests.factories import make_version, signing_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry(db):
    make_version(
        "tiny-bert",
        "1.0",
        license="mit",
        author="acme",
        pipeline_tag="fill-mask",
        tags=["demo", "bert"],
    )
    make_version("tiny-bert", "1.1")
    make_version(
        "gpt-small",
        "0.1",
        source_repo="org/gpt-small",
        license="apache-2.0",
        author="org",
        tags=["demo"],
    )


def names(response):
    assert response.status_code == 200, response.content
    return [item["name"] for item in response.json()["items"]]


def test_it_lists_models_with_the_registry_pages_filters(registry, bob_api):
    assert names(bob_api.get("/api/v1/models")) == ["gpt-small", "tiny-bert"]
    assert names(bob_api.get("/api/v1/models", q="TINY")) == ["tiny-bert"]
    assert names(bob_api.get("/api/v1/models", q="org/gpt")) == ["gpt-small"]
    assert names(bob_api.get("/api/v1/models", license="apache-2.0")) == ["gpt-small"]
    assert names(bob_api.get("/api/v1/models", author="acme", task="fill-mask")) == ["tiny-bert"]
    assert names(bob_api.get("/api/v1/models", tag="bert")) == ["tiny-bert"]
    assert names(bob_api.get("/api/v1/models", tag="be")) == []  # a whole tag, not a part
    assert names(bob_api.get("/api/v1/models", license="no-such-license")) == []
    item = bob_api.get("/api/v1/models", q="tiny").json()["items"][0]
    assert (item["version_count"], item["latest_version"]) == (2, "1.1")
    assert item["url"] == "http://testserver/api/v1/models/tiny-bert"
    assert item["html_url"] == "http://testserver/registry/tiny-bert/"


def test_it_pages_models_with_links_and_a_hard_maximum(registry, bob_api):
    first = bob_api.get("/api/v1/models", per_page=1, q="-").json()

    assert (first["total"], first["pages"], first["previous"]) == (2, 2, None)
    next_url = urlsplit(first["next"])
    assert next_url.path == "/api/v1/models"
    assert parse_qs(next_url.query) == {"q": ["-"], "per_page": ["1"], "page": ["2"]}
    second = bob_api.get("/api/v1/models", per_page=1, q="-", page=2).json()
    assert [item["name"] for item in second["items"]] == ["tiny-bert"]
    assert second["next"] is None
    assert parse_qs(urlsplit(second["previous"]).query)["page"] == ["1"]
    assert bob_api.get("/api/v1/models", page=9).json()["items"] == []
    too_many = bob_api.get("/api/v1/models", per_page=101)
    assert too_many.status_code == 422
    assert too_many.json()["error"]["field"] == "per_page"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "a\x01"}, "q"),
        ({"tag": "-bad"}, "tag"),
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
    ],
)
def test_it_refuses_invalid_filters_with_the_field(registry, bob_api, params, field):
    response = bob_api.get("/api/v1/models", **params)

    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


def test_it_shows_a_model_with_its_versions(registry, bob_api):
    response = bob_api.get("/api/v1/models/tiny-bert")

    assert response.status_code == 200
    data = response.json()
    assert (data["name"], data["license"], data["author"], data["tags"]) == (
        "tiny-bert",
        "mit",
        "acme",
        ["demo", "bert"],
    )
    assert [item["version"] for item in data["versions"]["items"]] == ["1.1", "1.0"]
    assert data["versions"]["total"] == 2


def test_it_shows_a_version_with_what_a_model_loader_needs(registry, bob_api):
    data = bob_api.get("/api/v1/models/tiny-bert/versions/1.0").json()

    assert data["model_path"] == "file:///srv/artifacts/tiny-bert-1.0.tar.gz"
    assert (data["sha256"], data["size"], data["status"]) == ("cd" * 32, 1234, "active")
    assert data["signing_key"]["name"] == "aegis-model-sign" and data["signing_key"]["version"] == 1
    assert data["signing_key"]["fingerprint"] == "ab" * 32
    assert data["source"]["repo"] == "acme/tiny-bert" and data["source"]["commit"] == "0" * 40
    assert data["imported_by"] == "alice" and data["imported_at"] == "2026-11-02T10:00:00Z"
    assert data["metadata"]["license"] == "mit" and data["metadata"]["pipeline_tag"] == "fill-mask"
    assert data["files"][0]["path"] == "config.json"
    base = "http://testserver/api/v1/models/tiny-bert/versions/1.0"
    assert data["links"] == {
        "self": base,
        "html": "http://testserver/registry/tiny-bert/1.0/",
        "model": "http://testserver/api/v1/models/tiny-bert",
        "artifact": f"{base}/files/artifact",
        "attestation": f"{base}/files/attestation",
        "model_sig": f"{base}/files/model-sig",
        "record": f"{base}/files/record",
        "public_key": f"{base}/files/public-key",
    }


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/models/nope", "name"),
        ("/api/v1/models/tiny-bert/versions/9.9", "version"),
        ("/api/v1/models/nope/versions/1.0/files/public-key", "version"),
        ("/api/v1/no-such-endpoint", None),
        ("/api/v1/", None),
    ],
)
def test_it_answers_404_with_the_error_body(registry, bob_api, path, field):
    response = bob_api.get(path)

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found" and error.get("field") == field


def test_it_lists_versions_by_cursor_with_filters(registry, bob_api):
    make_version("tiny-bert", "1.2").__class__.objects.filter(version="1.2").update(status="yanked")

    every = bob_api.get("/api/v1/versions", limit=2).json()
    assert [item["version"] for item in every["items"]] == ["1.0", "1.1"]
    rest = bob_api.get("/api/v1/versions", limit=2, cursor=every["next_cursor"]).json()
    assert [item["version"] for item in rest["items"]] == ["0.1", "1.2"] and rest[
        "next_cursor"
    ] is None
    yanked = bob_api.get("/api/v1/versions", status="yanked").json()["items"]
    assert [(item["model"], item["version"]) for item in yanked] == [("tiny-bert", "1.2")]
    assert len(bob_api.get("/api/v1/versions", model="gpt-small").json()["items"]) == 1
    assert len(bob_api.get("/api/v1/versions", sha256="cd" * 32).json()["items"]) == 4
    assert bob_api.get("/api/v1/versions", limit=201).status_code == 422
    assert bob_api.get("/api/v1/versions", sha256="CD" * 32).status_code == 422


def test_it_lists_the_trust_store(registry, bob_api):
    key = signing_key()
    key.revoked = True
    key.save()

    items = bob_api.get("/api/v1/keys").json()["items"]

    assert [(item["name"], item["version"], item["revoked"]) for item in items] == [
        ("aegis-model-sign", 1, True)
    ]
    assert items[0]["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")


def test_it_downloads_the_files_of_a_version(registry, bob_api, settings, tmp_path):
    from registry.models import ModelVersion

    settings.AEGIS_ARTIFACT_ROOT = tmp_path
    artifact = tmp_path / "tiny-bert-1.0.tar.gz"
    artifact.write_bytes(b"not really a tarball")
    (tmp_path / "aegis.json").write_text('{"repo": "acme/tiny-bert"}')
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    ModelVersion.objects.filter(version="1.0").update(
        model_path=artifact.as_uri(), sha256=digest, attestation={"dsseEnvelope": {}}
    )
    base = "/api/v1/models/tiny-bert/versions/1.0/files"

    response = bob_api.get(f"{base}/artifact")
    assert response.status_code == 200 and response["Content-Type"] == "application/gzip"
    assert b"".join(response.streaming_content) == b"not really a tarball"
    assert (
        response["Repr-Digest"] == f"sha-256=:{base64.b64encode(bytes.fromhex(digest)).decode()}:"
    )
    assert 'filename="tiny-bert-1.0.tar.gz"' in response["Content-Disposition"]
    record = bob_api.get(f"{base}/record")
    assert record.content == b'{"repo": "acme/tiny-bert"}'
    assert bob_api.get(f"{base}/attestation").json() == {"dsseEnvelope": {}}
    assert bob_api.get(f"{base}/public-key")["Content-Type"] == "application/x-pem-file"
    assert bob_api.get(f"{base}/elsewhere").status_code == 422
    Path(artifact).unlink()
    missing = bob_api.get(f"{base}/artifact")
    assert missing.status_code == 404 and "Not in storage" in missing.json()["error"]["message"]


def test_a_yanked_artifact_answers_410_unless_an_auditor_asks_explicitly(
    registry, bob_api, charlie_api, settings, tmp_path
):
    from registry.actions import set_version_status
    from registry.models import ModelVersion

    settings.AEGIS_ARTIFACT_ROOT = tmp_path
    artifact = tmp_path / "tiny-bert-1.0.tar.gz"
    artifact.write_bytes(b"withdrawn bytes")
    ModelVersion.objects.filter(version="1.0").update(model_path=artifact.as_uri())
    version = ModelVersion.objects.get(model__name="tiny-bert", version="1.0")
    set_version_status(version, "yanked", actor="rosa", reason="bad weights")
    url = "/api/v1/models/tiny-bert/versions/1.0/files/artifact"

    for client in (bob_api, charlie_api):
        refused = client.get(url)
        assert refused.status_code == 410
        assert refused.json()["error"]["code"] == "gone"
        assert "bad weights" in refused.json()["error"]["message"]
        assert refused["X-Aegis-Version-Status"] == "yanked"
    assert bob_api.get(url, allow_yanked="true").status_code == 410  # a viewer may not
    served = charlie_api.get(url, allow_yanked="true")
    assert served.status_code == 200 and served["X-Aegis-Version-Status"] == "yanked"
    assert b"".join(served.streaming_content) == b"withdrawn bytes"
    key = bob_api.get("/api/v1/models/tiny-bert/versions/1.0/files/public-key")
    assert key.status_code == 200 and key["X-Aegis-Version-Status"] == "yanked"


def test_it_serves_its_openapi_description(db):
    schema = Client().get("/api/v1/openapi.json").json()

    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {
        "/api/v1/models",
        "/api/v1/models/{name}",
        "/api/v1/models/{name}/versions/{version}",
        "/api/v1/models/{name}/versions/{version}/files/{kind}",
        "/api/v1/versions",
        "/api/v1/keys",
        "/api/v1/imports",
        "/api/v1/imports/{import_id}",
        "/api/v1/audit/events",
        "/api/v1/approvals",
        "/api/v1/models/{name}/versions/{version}/approval",
        "/api/v1/models/{name}/upstream",
    }
    assert schema["components"]["schemas"]["ErrorOut"]["required"] == ["error"]
