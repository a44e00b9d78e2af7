"""Each file's size and digest when the model info does not give them.

Mirrors (olah, hf-mirror-style sites, Artifactory or Nexus Hugging Face remotes) answer
``model_info(..., files_metadata=True)`` with bare ``siblings``: paths only. They do answer the
other calls the client makes, so the facts are asked there, in this order: ``paths-info`` (one
POST for all the files: size, git blob id, LFS sha256), then ``HEAD`` on each file's
``resolve`` URL (``X-Linked-Etag``: the LFS sha256, else ``ETag``: the git blob id; and the
size). A file none of them describes is not guessed at: the caller refuses the import.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
from huggingface_hub.hf_api import RepoFile

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHA1 = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class FileFacts:
    """What a file is checked against: its size and the Hub's digest of it."""

    size: int
    blob_id: str  # git blob sha1; "" when only the LFS sha256 is known (HEAD on an LFS file)
    lfs_sha256: str | None


def missing_facts(
    api: HfApi, repo_id: str, commit: str, paths: Iterable[str], *, timeout: float
) -> dict[str, FileFacts]:
    """The facts ``paths-info`` and then ``HEAD`` give for ``paths`` at ``commit``; a path
    neither describes with a digest is left out."""
    wanted = sorted(set(paths))
    found = _from_paths_info(api, repo_id, commit, wanted)
    for path in wanted:
        if path not in found:
            facts = _from_head(api, repo_id, commit, path, timeout=timeout)
            if facts is not None:
                found[path] = facts
    return found


def _from_paths_info(
    api: HfApi, repo_id: str, commit: str, paths: list[str]
) -> dict[str, FileFacts]:
    if not paths:
        return {}
    try:
        entries = api.get_paths_info(repo_id, paths, revision=commit)
    except Exception:
        logger.info("paths-info of %s at %s gave nothing; asking HEAD per file", repo_id, commit)
        return {}
    found = {}
    for entry in entries:
        if not isinstance(entry, RepoFile) or entry.size is None:
            continue
        lfs_sha256 = entry.lfs.sha256 if entry.lfs is not None else None
        if lfs_sha256 is not None and not _SHA256.fullmatch(lfs_sha256):
            continue
        if lfs_sha256 is None and not _SHA1.fullmatch(entry.blob_id or ""):
            continue
        found[entry.path] = FileFacts(int(entry.size), entry.blob_id or "", lfs_sha256)
    return found


def _from_head(
    api: HfApi, repo_id: str, commit: str, path: str, *, timeout: float
) -> FileFacts | None:
    url = hf_hub_url(repo_id, path, revision=commit, endpoint=api.endpoint)
    try:
        meta = get_hf_file_metadata(url, token=api.token, timeout=timeout, endpoint=api.endpoint)
    except Exception:
        logger.info("HEAD of %s in %s at %s gave nothing", path, repo_id, commit)
        return None
    etag = (meta.etag or "").strip('"').lower()
    if meta.size is None or (meta.commit_hash and meta.commit_hash != commit):
        return None
    if _SHA256.fullmatch(etag):
        return FileFacts(int(meta.size), "", etag)
    if _SHA1.fullmatch(etag):
        return FileFacts(int(meta.size), etag, None)
    return None
