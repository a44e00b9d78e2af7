"""The resolve answers the client relies on: HEAD headers, whole files and Range requests (206),
from a local store and from S3 (SeaweedFS)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from registry.models import ModelVersion
from serving.models import ServedVersion

pytestmark = pytest.mark.django_db

URL = "/hf/aegis/tiny-bert/resolve/1.0/model.safetensors"


def imported(transit_key: str, *extra: str) -> ModelVersion:
    call_command(
        "hf_import", "--repo-id", "acme/tiny-bert", "--revision", "v1.0", "--model-name",
        "tiny-bert", "--version", "1.0", "--sign-key", transit_key, "--register",
        "--no-progress", *extra,
    )  # fmt: skip
    return ModelVersion.objects.select_related("model").get()


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.parametrize("store", ["local", "s3"])
def test_whole_files_and_ranges(request, transit_key, viewer_token, hub_double, store):
    if store == "s3":
        request.getfixturevalue("aegis_s3")
        version = imported(transit_key, "--upload-s3")
    else:
        request.getfixturevalue("aegis")
        version = imported(transit_key)
    content = hub_double.files("acme/tiny-bert", "v1.0")["model.safetensors"]
    client = Client(headers={"Authorization": f"Bearer {viewer_token}"})

    head = client.head(URL)
    assert head.status_code == 200
    sha256 = version.manifest[[e["path"] for e in version.manifest].index("model.safetensors")]
    assert head["X-Repo-Commit"] == version.sha256[:40]
    assert head["ETag"] == head["X-Linked-Etag"] == f'"{sha256["sha256"]}"'
    assert head["X-Linked-Size"] == head["Content-Length"] == str(len(content))
    assert head["Accept-Ranges"] == "bytes"

    whole = client.get(URL)
    assert whole.status_code == 200 and body(whole) == content
    copy = ServedVersion.objects.get(version=version).file("model.safetensors")
    assert copy is not None and copy["url"].startswith("s3://" if store == "s3" else "file://")

    part = client.get(URL, headers={"Range": "bytes=8-19"})
    assert part.status_code == 206 and body(part) == content[8:20]
    assert part["Content-Range"] == f"bytes 8-19/{len(content)}"
    assert part["Content-Length"] == "12"
    tail = client.get(URL, headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and body(tail) == content[-5:]
    rest = client.get(URL, headers={"Range": f"bytes={len(content) - 3}-"})
    assert body(rest) == content[-3:]
    refused = client.get(URL, headers={"Range": f"bytes={len(content)}-"})
    assert refused.status_code == 416 and "outside the file" in refused.json()["error"]
    missing = client.get("/hf/aegis/tiny-bert/resolve/1.0/nope.bin")
    assert missing.status_code == 404 and missing["X-Error-Code"] == "EntryNotFound"
