"""File downloads: `/{org}/{name}/resolve/{rev}/{path}` and the "CDN" an LFS file redirects to.

The CDN listens on another port, so it is another origin: the real client drops its
`Authorization` header on the redirect, exactly as it does against huggingface.co, and the
signed CDN URL refuses a request that still carries one.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import replace
from urllib.parse import quote, unquote

from aegis_catalog.lib.ranges import UnsatisfiableRange, byte_range
from devservers.hub_double.messages import HubError, HubRequest, Response
from devservers.hub_double.model import Commit, StoredFile

TEXT_TYPE = "text/plain; charset=utf-8"
# A gated repo's model card and .gitattributes are public, like on the Hub.
PUBLIC_IN_GATED_REPOS = {"README.md", ".gitattributes"}


def resolve_file(request: HubRequest, repo_id: str, revision: str, path: str) -> Response:
    """A plain file's bytes (with `X-Repo-Commit` and its git blob id as ETag), or for an LFS
    file a 302 to the signed CDN URL carrying the sha256 ETag and size (`X-Linked-*`)."""
    double = request.double
    with double._lock:
        repo, auth = request.visible_repo(repo_id)
        commit = request.commit(repo, revision)
        if repo.gated and auth != "valid" and path not in PUBLIC_IN_GATED_REPOS:
            raise HubError(
                401,
                "GatedRepo",
                f"Access to model {repo_id} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in.",
                {"X-Repo-Commit": commit.sha},
            )
        stored = commit.files.get(path)
        if stored is None:
            raise HubError(
                404,
                "EntryNotFound",
                f"{path} does not exist on {revision}",
                {"X-Repo-Commit": commit.sha},
            )
        body = double._served_bytes(repo_id, stored)
    common = {"X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes", "Vary": "Origin"}
    if stored.is_lfs:
        response = _redirect_to_cdn(request, repo_id, commit, stored, common)
    else:
        headers = {
            **common,
            "ETag": f'"{stored.blob_id}"',
            "Content-Type": TEXT_TYPE,
            "Content-Disposition": f'inline; filename="{quote(path.rsplit("/", 1)[-1])}"',
        }
        response = _file_body(request, repo_id, stored.path, body, headers)
    # "blind": a mirror that tells no digest at all; "unlinked": one that drops X-Linked-Etag,
    # so an LFS file's only ETag is its pointer's git blob id.
    dropped = {"blind": ("ETag", "X-Linked-Etag"), "unlinked": ("X-Linked-Etag",)}
    if double.mirror_mode in dropped:
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in dropped[double.mirror_mode]
        }
        response = replace(response, headers=headers)
    return response


def _redirect_to_cdn(
    request: HubRequest,
    repo_id: str,
    commit: Commit,
    stored: StoredFile,
    common: Mapping[str, str],
) -> Response:
    double = request.double
    cdn_path = f"/cdn/{quote(repo_id)}/{commit.sha}/{quote(stored.path)}"
    location = f"{double.cdn_url}{cdn_path}?sig={double._sign(cdn_path)}"
    headers = {
        **common,
        "Location": location,
        "ETag": f'"{stored.blob_id}"',
        "X-Linked-Etag": f'"{stored.sha256}"',
        "X-Linked-Size": str(stored.size),
        "Content-Type": TEXT_TYPE,
    }
    return Response(302, f"Found. Redirecting to {location}".encode(), headers)


def cdn_file(request: HubRequest, segments: list[str]) -> Response:
    """An LFS file's bytes at `/cdn/{org}/{name}/{sha}/{path}?sig=...` (segments after `cdn`)."""
    if len(segments) < 4:
        raise HubError(404, None, "Not Found")
    double = request.double
    cdn_path = "/cdn/" + "/".join(segments)
    if not hmac.compare_digest(request.param("sig") or "", double._sign(cdn_path)):
        raise HubError(403, None, "Request has expired or the signature does not match")
    if "Authorization" in request.headers:
        # A signed storage URL refuses a second authentication mechanism (as S3 does).
        raise HubError(400, None, "Only one auth mechanism allowed")
    repo_id = f"{unquote(segments[0])}/{unquote(segments[1])}"
    sha, path = segments[2], unquote("/".join(segments[3:]))
    with double._lock:
        stored = double._repos[repo_id].commits[sha].files[path]
        body = double._served_bytes(repo_id, stored)
    headers = {
        "ETag": f'"{stored.sha256}"',
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f'attachment; filename="{quote(path.rsplit("/", 1)[-1])}"',
    }
    return _file_body(request, repo_id, path, body, headers)


def _file_body(
    request: HubRequest, repo_id: str, path: str, body: bytes, headers: Mapping[str, str]
) -> Response:
    """All of `body` (200), or the part a `Range: bytes=...` header asks for (206)."""
    status, start, end = 200, 0, len(body)
    range_header = request.headers.get("Range")
    if range_header:
        start, end = _byte_range(range_header, len(body))
        status = 206
        headers = {**headers, "Content-Range": f"bytes {start}-{end - 1}/{len(body)}"}
    # A view, not a copy: a range costs the double no more than the whole file would.
    part = memoryview(body)[start:end]
    return Response(status, part, headers, throttle=True, served_file=(repo_id, path))


def _byte_range(header: str, size: int) -> tuple[int, int]:
    """Start and end (exclusive) of a single `bytes=first-last` or `bytes=-suffix` range."""
    try:
        return byte_range(header, size)
    except UnsatisfiableRange as refused:
        raise HubError(416, None, str(refused), {"Content-Range": f"bytes */{size}"}) from None
