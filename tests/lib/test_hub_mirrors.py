"""Issue 17 part 1: the Hub client against mirrors that list bare ``siblings`` (as olah does):
sizes and digests come from ``paths-info``, then HEAD; with none, a refusal naming the files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegis_catalog.lib.hub import GatedRepo, HubClient, HubUnavailable, MissingFileDigests
from devservers.hub_double import HubDouble, git_blob_id, lfs_pointer

BERT = "acme/tiny-bert"
GATED = "acme/gated-llama"


def test_a_mirror_gives_the_same_files_sizes_and_digests_as_the_hub(hub_env: HubDouble):
    client = HubClient(hub_env.url, token=hub_env.token, timeout=10)
    from_hub = {repo: client.model_info(repo) for repo in (BERT, GATED)}

    hub_env.mirror_mode = "olah"
    try:
        hub_env.clear_requests()
        from_mirror = {repo: client.model_info(repo) for repo in (BERT, GATED)}
    finally:
        hub_env.mirror_mode = "hub"

    for repo in (BERT, GATED):
        assert from_mirror[repo].files == from_hub[repo].files, repo
        assert from_mirror[repo].pipeline_tag is None  # as olah answers
        assert from_mirror[repo].commit == from_hub[repo].commit
    lfs = [item for item in from_mirror[BERT].files if item.is_lfs]
    assert lfs and all(item.lfs_sha256 and item.size > 0 for item in lfs)
    asked = [entry.path for entry in hub_env.requests if "/paths-info/" in entry.path]
    assert len(asked) == 2  # one paths-info call per repo, not one per file


def test_without_paths_info_the_digests_come_from_head(hub_env: HubDouble, monkeypatch):
    client = HubClient(hub_env.url, token=hub_env.token, timeout=10)
    expected = client.model_info(BERT).files
    hub_env.mirror_mode = "olah"
    fault = hub_env.inject_fault(404, times=None, path_contains="/paths-info/")
    try:
        files = client.model_info(BERT).files
    finally:
        fault.remaining = 0
        hub_env.mirror_mode = "hub"

    by_path = {item.path: item for item in expected}
    for item in files:
        assert item.size == by_path[item.path].size
        if by_path[item.path].is_lfs:
            assert item.lfs_sha256 == by_path[item.path].lfs_sha256
        else:
            assert item.blob_id == by_path[item.path].blob_id


def test_a_mirror_that_gives_no_digest_is_refused_naming_the_files(blind_mirror, hub_env):
    client = HubClient(hub_env.url, timeout=10)

    with pytest.raises(MissingFileDigests) as refused:
        client.model_info(BERT)

    message = str(refused.value)
    assert "'.gitattributes'" in message and "'config.json'" in message
    assert "paths-info" in message and "HEAD" in message


# ---- what paths-info and HEAD failures mean ----------------------------------------------------

LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub's (and the double's) small-file limit


@pytest.fixture
def mirror(hub_env: HubDouble) -> Iterator[HubDouble]:
    """The session double, answering as the Hub again (and without faults) after the test."""
    try:
        yield hub_env
    finally:
        hub_env.clear_faults()
        hub_env.mirror_mode = "hub"


def without_paths_info(double: HubDouble, mode: str = "olah", status: int = 404) -> None:
    double.mirror_mode = mode
    double.inject_fault(status, times=None, path_contains="/paths-info/")


@pytest.mark.parametrize("repo_id", [BERT, GATED])
def test_head_per_file_gives_exactly_what_the_hub_gives(mirror: HubDouble, repo_id: str):
    client = HubClient(mirror.url, token=mirror.token, timeout=10)
    from_hub = client.model_info(repo_id)
    without_paths_info(mirror)
    mirror.clear_requests()

    from_mirror = client.model_info(repo_id)

    # LFS files too: their blob id is the git blob id of the pointer, as the Hub lists it.
    assert from_mirror.files == from_hub.files
    assert any(item.is_lfs for item in from_mirror.files)
    heads = [entry for entry in mirror.requests if entry.method == "HEAD"]
    assert len(heads) == len(from_hub.files)


def test_a_gated_repo_without_the_token_is_refused_as_gated_not_for_missing_digests(
    mirror: HubDouble,
):
    without_paths_info(mirror)

    with pytest.raises(GatedRepo, match="set HF_TOKEN"):
        HubClient(mirror.url, timeout=10).model_info(GATED)


@pytest.mark.parametrize("failing", ["/paths-info/", "/resolve/"])
def test_a_failing_mirror_is_unavailable_not_missing_digests(mirror: HubDouble, failing: str):
    mirror.mirror_mode = "olah"
    if failing == "/resolve/":
        mirror.inject_fault(404, times=None, path_contains="/paths-info/")
    mirror.inject_fault(503, times=None, path_contains=failing)

    with pytest.raises(HubUnavailable, match="HTTP 503") as refused:
        HubClient(mirror.url, timeout=10).model_info(BERT)

    assert not isinstance(refused.value, MissingFileDigests)
    assert BERT in str(refused.value)


def test_an_lfs_file_whose_only_etag_is_its_pointers_has_no_digest(mirror: HubDouble):
    without_paths_info(mirror, mode="unlinked")

    with pytest.raises(MissingFileDigests) as refused:
        HubClient(mirror.url, timeout=10).model_info(BERT)

    # The pointer's git blob id would have made the check call the real bytes tampered.
    message = str(refused.value)
    assert "'model.safetensors'" in message
    assert "'config.json'" not in message  # plain files are still checked by their ETag


def test_an_lfs_file_above_the_small_file_limit_through_a_mirror(
    fresh_hub_double: HubDouble, hub_env: HubDouble, tmp_path: Path
):
    big = bytes(range(256)) * (LFS_THRESHOLD // 256) + b"tail"
    fresh_hub_double.add_repo("acme/big", {"weights.dat": big, "notes.txt": b"plain"})
    client = HubClient(fresh_hub_double.url, timeout=10)
    from_hub = client.model_info("acme/big")

    fresh_hub_double.mirror_mode = "olah"
    assert client.model_info("acme/big").files == from_hub.files  # from paths-info
    fresh_hub_double.inject_fault(404, times=None, path_contains="/paths-info/")
    model = client.model_info("acme/big")
    assert model.files == from_hub.files  # from HEAD
    weights = model.file("weights.dat")
    assert weights.size == len(big) > LFS_THRESHOLD
    assert weights.lfs_sha256 == hashlib.sha256(big).hexdigest()
    assert weights.blob_id == git_blob_id(lfs_pointer(big))
    paths = client.download("acme/big", model.commit, tmp_path, ["weights.dat"])
    assert hashlib.sha256(paths["weights.dat"].read_bytes()).hexdigest() == weights.lfs_sha256


def test_the_lfs_pointer_blob_id_is_the_one_git_stores():
    from aegis_catalog.lib.hub.digests import lfs_pointer_blob_id

    content = b"weights" * 1000

    blob_id = lfs_pointer_blob_id(hashlib.sha256(content).hexdigest(), len(content))

    assert blob_id == git_blob_id(lfs_pointer(content))


def test_paths_info_is_asked_with_the_clients_timeout(olah_mirror, hub_env, monkeypatch):
    """huggingface_hub's own get_paths_info has no timeout: a mirror that never answered would
    hold the page or the import. The POST carries the client's timeout."""
    from aegis_catalog.lib.hub import digests

    seen = []
    real_session = digests.get_session

    class Spy:
        def post(self, *args, **kwargs):
            seen.append(kwargs.get("timeout"))
            return real_session().post(*args, **kwargs)

    monkeypatch.setattr(digests, "get_session", Spy)
    HubClient(hub_env.url, timeout=7).model_info(BERT)

    assert seen == [7]
