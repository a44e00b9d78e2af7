"""Must-show 2: each refusal is an error the real client raises (not a fallback to what it
cached), and no byte of a refused version lands in the client's cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from registry.actions import revoke_signing_key, set_version_status
from registry.models import AuditEvent
from serving.models import ServedVersion
from tests.serving.conftest import hf_import

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def version(aegis: Any, transit_key: str):
    return hf_import(transit_key, "1.0", "v1.0")


@pytest.fixture
def pull(live_server: Any, tmp_path: Path, viewer_token: str):
    """Pull into a cache of the test's own; returns the snapshot folder."""

    def run(repo_id: str = "aegis/tiny-bert", revision: str = "1.0", **options: Any) -> Path:
        options.setdefault("token", viewer_token)
        options.setdefault("cache_dir", tmp_path / "cache")
        return Path(
            snapshot_download(
                repo_id, revision=revision, endpoint=f"{live_server.url}/hf", **options
            )
        )

    return run


def cached_blobs(cache: Path) -> list[Path]:
    return [path for path in cache.rglob("*") if path.is_file() and "blobs" in path.parts]


def flip_one_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    where = len(data) // 2 if offset is None else offset
    data[where] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("options", "error", "says"),
    [
        ({"token": False}, HfHubHTTPError, "set HF_TOKEN to an Aegis API token"),
        ({"token": "aegis_not-a-token"}, HfHubHTTPError, "not valid or was revoked"),
        ({"repo_id": "aegis/nothing-here"}, RepositoryNotFoundError, "No registered model"),
        ({"repo_id": "acme/never-imported"}, RepositoryNotFoundError, "No registered model"),
        ({"revision": "9.9"}, RevisionNotFoundError, "has no version, served sha or imported"),
        ({"revision": "a" * 40}, RevisionNotFoundError, "has no version, served sha or imported"),
    ],
)
def test_who_and_what_is_refused(version, pull, tmp_path, options, error, says):
    with pytest.raises(error, match=says):
        pull(**options)
    assert cached_blobs(tmp_path / "cache") == []


def test_a_group_less_user_is_refused(version, pull, tmp_path, nobody):
    from tests.factories import token_for

    # A 403, on which the client falls back to its cache (it has none here) and says why.
    with pytest.raises(LocalEntryNotFoundError, match="in no group"):
        pull(token=token_for(nobody))
    assert cached_blobs(tmp_path / "cache") == []


def test_anonymous_pulls_are_served_only_where_allowed(version, pull, settings):
    settings.AEGIS_HF_ALLOW_ANONYMOUS = True
    assert (pull(token=False) / "config.json").is_file()


def test_a_yanked_version_is_refused_even_to_a_client_that_cached_it(version, pull, tmp_path):
    assert (pull() / "model.safetensors").is_file()
    set_version_status(version, "yanked", actor="rosa", reason="license withdrawn")
    with pytest.raises(RevisionNotFoundError, match="yanked: license withdrawn"):
        pull()
    with pytest.raises(RevisionNotFoundError, match="yanked"):
        pull(cache_dir=tmp_path / "fresh")
    assert cached_blobs(tmp_path / "fresh") == []


def test_a_deprecated_version_is_served_with_a_warning(version, pull, caplog):
    set_version_status(version, "deprecated", actor="rosa", reason="use 2.0")
    assert (pull() / "config.json").is_file()
    assert any("deprecated (use 2.0)" in record.getMessage() for record in caplog.records)


def test_a_version_signed_by_a_revoked_key_is_refused(version, pull, tmp_path):
    revoke_signing_key(version.signing_key, actor="rosa", reason="key leaked")
    with pytest.raises(RevisionNotFoundError, match="which is revoked"):
        pull()
    assert cached_blobs(tmp_path / "cache") == []


def test_a_tampered_stored_artifact_is_refused_and_audited(version, pull, tmp_path):
    flip_one_byte(Path(version.model_path.removeprefix("file://")))
    with pytest.raises(RevisionNotFoundError, match=r"failed verification \(digest"):
        pull()
    assert cached_blobs(tmp_path / "cache") == []
    state = ServedVersion.objects.get(version=version)
    assert state.state == "refused" and state.files == {}
    event = AuditEvent.objects.filter(action="verification.failed").get()
    assert event.details["failed_check"] == "digest" and event.actor == "vera (first pull)"
    # Refused again without a new check until AEGIS_HF_RECHECK_SECONDS have passed.
    with pytest.raises(RevisionNotFoundError, match="failed verification"):
        pull()
    assert AuditEvent.objects.filter(action="verification.failed").count() == 1


def test_a_copy_changed_after_its_check_is_cut_short_and_refused(version, pull, tmp_path):
    assert (pull() / "model.safetensors").is_file()
    copy = ServedVersion.objects.get(version=version).file("model.safetensors")
    assert copy is not None
    flip_one_byte(Path(copy["url"].removeprefix("file://")))
    fresh = tmp_path / "fresh"
    with pytest.raises(Exception):  # noqa: B017 - the client reports a cut connection its own way
        pull(cache_dir=fresh)
    snapshot_files = [path for path in fresh.rglob("snapshots/*/*") if path.is_file()]
    assert not any(path.name == "model.safetensors" for path in snapshot_files)
    assert copy["sha256"] not in [path.name for path in cached_blobs(fresh)]
    state = ServedVersion.objects.get(version=version)
    assert state.state == "refused" and "model.safetensors changed" in state.error
    assert AuditEvent.objects.filter(action="verification.failed").count() == 1


def test_a_copy_gone_from_the_store_is_a_clear_503_and_the_version_is_checked_again(
    version, pull, viewer_token
):
    from django.test import Client

    assert (pull() / "config.json").is_file()
    copy = ServedVersion.objects.get(version=version).file("config.json")
    assert copy is not None
    Path(copy["url"].removeprefix("file://")).unlink()
    answer = Client().get(
        "/hf/aegis/tiny-bert/resolve/1.0/config.json",
        headers={"Authorization": f"Bearer {viewer_token}"},
    )
    assert answer.status_code == 503
    assert "A verified copy is missing from the store" in answer.json()["error"]
    state = ServedVersion.objects.get(version=version)
    assert state.state == "refused" and "config.json" in state.error
    assert AuditEvent.objects.filter(action="verification.failed").count() == 1
