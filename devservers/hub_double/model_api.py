"""Model info, tree and commit listings: `GET /api/models/{org}/{name}`, `.../revision/{rev}`,
`.../tree/{rev}[/{path}]` and `.../commits/{rev}`."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote

from devservers.hub_double.messages import (
    NOT_FOUND_PAGE,
    HubError,
    HubRequest,
    Response,
    json_response,
    page_response,
)
from devservers.hub_double.model import Repo
from devservers.hub_double.payloads import commit_entries, file_entry, model_info, tree_entries


def model_api(request: HubRequest, segments: list[str]) -> Response:
    """Answer `/api/models/` + `segments` (org, name, then nothing, `revision/...` or
    `tree/...`, still %-encoded)."""
    repo_id = f"{unquote(segments[0])}/{unquote(segments[1])}"
    rest = segments[2:]
    with request.double._lock:
        repo, _auth = request.visible_repo(repo_id)
        if not rest:
            return _info(request, repo, "main")
        if rest[0] == "revision" and len(rest) >= 2:
            return _info(request, repo, unquote("/".join(rest[1:])))
        if rest[0] == "tree" and len(rest) >= 2:
            prefix = unquote("/".join(rest[2:])).strip("/")
            return _tree(request, repo, unquote(rest[1]), prefix)
        if rest[0] == "commits" and len(rest) >= 2:
            return _commits(request, repo, unquote("/".join(rest[1:])))
    raise HubError(404, None, NOT_FOUND_PAGE)


def _info(request: HubRequest, repo: Repo, revision: str) -> Response:
    commit = request.commit(repo, revision)
    mirror = request.double.mirror_mode != "hub"
    # A mirror lists bare siblings (rfilename only) whatever it is asked.
    info = model_info(repo, commit, blobs=request.param("blobs") == "true" and not mirror)
    if mirror:  # olah 0.x also drops the top-level task and counts no downloads
        info.pop("pipeline_tag", None)
        info["downloads"] = 0
    return json_response(info)


def paths_info(request: HubRequest, segments: list[str]) -> Response:
    """`POST /api/models/{org}/{name}/paths-info/{rev}` with form fields `paths`: each existing
    file's size, git blob id (`oid`) and LFS details; a "blind" mirror does not serve it."""
    if request.double.mirror_mode == "blind":
        raise HubError(404, None, NOT_FOUND_PAGE)
    repo_id = f"{unquote(segments[0])}/{unquote(segments[1])}"
    revision = unquote("/".join(segments[3:]))
    wanted = parse_qs(request.body.decode("utf-8", "replace")).get("paths", [])
    with request.double._lock:
        repo, _auth = request.visible_repo(repo_id)
        commit = request.commit(repo, revision)
        entries = [file_entry(commit.files[path]) for path in wanted if path in commit.files]
    return json_response(entries)


def _tree(request: HubRequest, repo: Repo, revision: str, prefix: str) -> Response:
    commit = request.commit(repo, revision)
    recursive = request.param("recursive") in {"true", "True", "1"}
    entries = tree_entries(commit, prefix, recursive)
    if prefix and not entries:
        raise HubError(
            404,
            "EntryNotFound",
            f"{prefix} does not exist on {commit.sha}",
            {"X-Repo-Commit": commit.sha},
        )
    return page_response(request, entries, request.double.tree_page_size)


def _commits(request: HubRequest, repo: Repo, revision: str) -> Response:
    """The history of `revision`, newest first (as `HfApi.list_repo_commits` reads it), paged
    like the Hub's listings."""
    commit = request.commit(repo, revision)
    return page_response(request, commit_entries(repo, commit), request.double.commits_page_size)
