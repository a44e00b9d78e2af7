"""Issue 17 part 1: the Hub client against mirrors that list bare ``siblings`` (as olah does):
sizes and digests come from ``paths-info``, then HEAD; with none, a refusal naming the files."""

from __future__ import annotations

import pytest

from aegis_catalog.lib.hub import HubClient, MissingFileDigests
from devservers.hub_double import HubDouble

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
