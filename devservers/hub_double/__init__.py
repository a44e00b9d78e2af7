"""A local HTTP double of the Hugging Face Hub.

It speaks the part of the Hub's HTTP contract that `huggingface_hub` 2.4 uses (see
CONTRACTS.md): model search with `Link` paging, model info with file metadata, the
recursive tree listing, the commit listing, a 307 from a renamed repo's old id, and
`/resolve/` downloads with `X-Repo-Commit`, ETags, `Range` and a 302 to a separate "CDN"
listener for LFS files (a different origin, so the real client drops its `Authorization`
header exactly as it does against huggingface.co).

Usage in tests::

    double = HubDouble().start()
    sha = double.add_repo("acme/x", {"config.json": b"{}"})
    ...
    double.stop()

Run by hand with the demo repos: ``python -m devservers.hub_double --port 8765``.

Modules: `model` (files, commits, repos), `repos` (`RepoStore`: adding and changing them),
`payloads` (the Hub's JSON views of them), `messages` (requests, answers, errors, paging),
`routes` (which handler answers; renamed repos' redirects), `search`, `model_api` (model info,
tree, commits), `resolve` (file downloads and the CDN), `server` (the HTTP listeners), `double`
(`HubDouble`: knobs, request log, start and stop), `demo` (the demo repos). The handlers share
the double's underscored internals (its lock, repos and signing key); code outside this package
uses the public API.
"""

from __future__ import annotations

from devservers.hub_double.demo import (
    GITATTRIBUTES,
    HOSTILE_CARD,
    DemoRepo,
    DemoRepos,
    demo_repos,
    safetensors_bytes,
)
from devservers.hub_double.double import DOUBLE_TOKEN, HubDouble
from devservers.hub_double.messages import HubError, InjectedFault, LoggedRequest
from devservers.hub_double.model import Commit, Repo, StoredFile, git_blob_id, lfs_pointer

__all__ = [
    "DOUBLE_TOKEN",
    "GITATTRIBUTES",
    "HOSTILE_CARD",
    "Commit",
    "DemoRepo",
    "DemoRepos",
    "HubDouble",
    "HubError",
    "InjectedFault",
    "LoggedRequest",
    "Repo",
    "StoredFile",
    "demo_repos",
    "git_blob_id",
    "lfs_pointer",
    "safetensors_bytes",
]
