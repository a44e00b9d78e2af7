"""Must-show 1: a token drives a real import through the API on a live server, and a model
loader verifies the artifact against the registry's record with ``name=``/``version=``."""

from __future__ import annotations

import hashlib
import time

import pytest
import requests

from api.actions import create_token
from registry import verify
from registry.actions import set_version_status
from registry.models import ModelVersion
from registry.verify import verify_model_artifact
from tests.browser.chromium import start_worker_thread
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


def poll_until_done(session: requests.Session, url: str, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        status = session.get(url, timeout=30).json()
        if status["is_terminal"] or time.monotonic() > deadline:
            return status
        time.sleep(0.3)


def assert_the_version_record(record: dict, commit: str, endpoint: str) -> None:
    assert (record["model"], record["version"], record["status"]) == ("tiny-bert", "1.0", "active")
    assert record["source"] == {
        "repo": "acme/tiny-bert",
        "revision": "main",
        "commit": commit,
        "endpoint": endpoint,
    }
    assert record["imported_by"] == "alice"
    assert record["signing_key"]["name"] == "aegis-model-sign"


def test_it_imports_polls_reads_and_verifies_through_the_api(aegis, live_server, monkeypatch):
    alice = make_user("alice", "importer")
    token = create_token(alice, "ml-serving CI").secret
    api = f"{live_server.url}/api/v1"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    commit = aegis.hub.resolve("acme/tiny-bert")

    started = session.post(
        f"{api}/imports",
        json={"repo_id": "acme/tiny-bert", "model_name": "tiny-bert", "version": "1.0"},
        timeout=30,
    )
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["status"] == "queued"
    assert started.headers["Location"] == body["links"]["self"]
    assert body["requested_by"] == "alice"

    worker = start_worker_thread()
    status = poll_until_done(session, body["links"]["self"])
    worker.join(timeout=30)
    assert status["status"] == "succeeded", status["error"]
    assert status["commit"] == commit
    kinds = [event["kind"] for event in status["events"]]
    assert kinds[0] == "requested" and kinds[-1] == "succeeded"
    assert {"stage_finished"} <= set(kinds)

    record = session.get(status["links"]["version"], timeout=30).json()
    assert_the_version_record(record, commit, aegis.hub.url)
    artifact = session.get(record["links"]["artifact"], timeout=30)
    assert artifact.status_code == 200
    assert hashlib.sha256(artifact.content).hexdigest() == record["sha256"]
    assert len(artifact.content) == record["size"]

    monkeypatch.setenv("AEGIS_API_URL", live_server.url)
    monkeypatch.setenv("AEGIS_API_TOKEN", token)
    result = verify_model_artifact(name="tiny-bert", version="1.0")
    assert result.sha256 == record["sha256"]
    assert result.record is not None and result.record["sha256"] == record["sha256"]
    assert result.check_names == [
        "registry_record",
        "active",
        "fetch",
        "attestation_signature",
        "trusted_key",
        "digest",
        "safe_extraction",
        "manifest",
        "model_signature",
        "key_not_revoked",
    ]

    # The registry's record decides, not the file: once yanked, the same bytes are refused.
    version = ModelVersion.objects.get(model__name="tiny-bert", version="1.0")
    set_version_status(version, "yanked", actor="rosa", reason="bad weights")
    with pytest.raises(verify.VersionYanked, match="bad weights"):
        verify_model_artifact(name="tiny-bert", version="1.0")
