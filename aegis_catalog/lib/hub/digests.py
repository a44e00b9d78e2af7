"""Each file's size and digest when the model info does not give them.

Mirrors (olah, hf-mirror-style sites, Artifactory or Nexus Hugging Face remotes) answer
``model_info(..., files_metadata=True)`` with bare ``siblings``: paths only. They do answer the
other calls the client makes, so the facts are asked there, in this order: ``paths-info`` (one
POST for all the files: size, git blob id, LFS sha256), then ``HEAD`` on each file's
``resolve`` URL (``X-Linked-Etag``: the LFS sha256, else ``ETag``: the git blob id; and the
size). A file none of them describes is not guessed at: the caller refuses the import.

Only an endpoint that does not do ``paths-info`` or ``HEAD`` (HTTP 400/404/405/501, or entries
without the fields) sends the question on; a refused token, a gated repo, a Hub that is down
or busy raises its own HubError (through ``translate``), not a refusal for missing digests.
A sha1 ETag behind a redirect (an LFS file without ``X-Linked-Etag``) is the git blob id of
the LFS pointer, not of the bytes, and checks nothing: such a file has no digest.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from aegis_catalog.lib.hub.errors import LIBRARY_NAME, HubError

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHA1 = re.compile(r"[0-9a-f]{40}")
# Answers meaning "this endpoint does not do paths-info (or HEAD)": the next source is asked.
_NOT_SUPPORTED = frozenset({400, 404, 405, 415, 422, 501})

# The client's translation of a huggingface_hub / HTTP failure into a HubError.
Translate = Callable[..., HubError]


@dataclass(frozen=True)
class FileFacts:
    """What a file is checked against: its size and the Hub's digest of it."""

    size: int
    blob_id: str  # git blob sha1; "" when only the LFS sha256 is known (HEAD on an LFS file)
    lfs_sha256: str | None


def lfs_pointer_blob_id(sha256: str, size: int) -> str:
    """The git blob id of the LFS pointer git stores for content of ``sha256`` and ``size``
    (what the Hub lists as an LFS file's ``blobId``)."""
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (
        sha256.encode(),
        size,
    )
    blob = b"blob %d\0" % len(pointer) + pointer
    return hashlib.sha1(blob, usedforsecurity=False).hexdigest()


def missing_facts(
    api: HfApi,
    repo_id: str,
    commit: str,
    paths: Iterable[str],
    *,
    timeout: float,
    translate: Translate,
) -> dict[str, FileFacts]:
    """The facts ``paths-info`` and then ``HEAD`` give for ``paths`` at ``commit``; a path
    neither describes with a digest is left out. Raises the translated HubError when the Hub
    refuses or fails (not when it merely has no such call)."""
    wanted = sorted(set(paths))
    found = _from_paths_info(api, repo_id, commit, wanted, translate, timeout)
    for path in wanted:
        if path not in found:
            facts = _from_head(api, repo_id, commit, path, timeout=timeout, translate=translate)
            if facts is not None:
                found[path] = facts
    return found


def _not_supported(error: BaseException) -> bool:
    """Whether ``error`` is an HTTP answer saying the endpoint has no such call (not: no
    access, no such repo or revision, down, busy)."""
    if isinstance(error, GatedRepoError | RepositoryNotFoundError | RevisionNotFoundError):
        return False
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else 0
        return status in _NOT_SUPPORTED
    return False


def _from_paths_info(
    api: HfApi,
    repo_id: str,
    commit: str,
    paths: list[str],
    translate: Translate,
    timeout: float,
) -> dict[str, FileFacts]:
    if not paths:
        return {}
    try:
        entries = _paths_info(api, repo_id, commit, paths, timeout)
    except (KeyError, TypeError, ValueError):
        # Entries without `oid`, `size` or a whole `lfs`: not usable.
        logger.info("paths-info of %s at %s was not usable; asking HEAD", repo_id, commit)
        return {}
    except Exception as error:
        if not _not_supported(error):
            what = f"paths-info of {repo_id} at {commit} on {api.endpoint}"
            raise translate(error, what=what, repo_id=repo_id, revision=commit) from error
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


def _paths_info(
    api: HfApi, repo_id: str, commit: str, paths: list[str], timeout: float
) -> list[RepoFile]:
    """The files ``POST .../paths-info/{commit}`` describes, as ``HfApi.get_paths_info`` reads
    them, but with the client's timeout (the library's call has none, so a mirror that never
    answers would hold the page or the import)."""
    response = get_session().post(
        f"{api.endpoint}/api/models/{repo_id}/paths-info/{quote(commit, safe='')}",
        data={"paths": paths, "expand": False},
        headers=build_hf_headers(token=api.token, library_name=LIBRARY_NAME),
        timeout=timeout,
    )
    hf_raise_for_status(response)
    return [RepoFile(**entry) for entry in response.json() if entry.get("type") == "file"]


def _from_head(
    api: HfApi, repo_id: str, commit: str, path: str, *, timeout: float, translate: Translate
) -> FileFacts | None:
    url = hf_hub_url(repo_id, path, revision=commit, endpoint=api.endpoint)
    try:
        meta = get_hf_file_metadata(url, token=api.token, timeout=timeout, endpoint=api.endpoint)
    except Exception as error:
        if not _not_supported(error):
            what = f"HEAD of {path!r} in {repo_id} at {commit} on {api.endpoint}"
            raise translate(error, what=what, repo_id=repo_id, revision=commit) from error
        logger.info("HEAD of %s in %s at %s gave nothing", path, repo_id, commit)
        return None
    etag = (meta.etag or "").strip('"').lower()
    if meta.size is None or (meta.commit_hash and meta.commit_hash != commit):
        return None
    if _SHA256.fullmatch(etag):
        return FileFacts(int(meta.size), lfs_pointer_blob_id(etag, int(meta.size)), etag)
    if _SHA1.fullmatch(etag) and not _redirected(meta.location, url):
        return FileFacts(int(meta.size), etag, None)
    return None


def _redirected(location: str, url: str) -> bool:
    """Whether the answer points elsewhere than ``url`` (an LFS file's redirect to storage)."""
    there, here = urlsplit(location), urlsplit(url)
    return (there.netloc, unquote(there.path)) != (here.netloc, unquote(here.path))
