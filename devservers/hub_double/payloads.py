"""The double's repos as the Hub's JSON: search summaries, model info, tree listings."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from devservers.hub_double.model import Commit, Repo, StoredFile, iso, parse_front_matter


def card_data(commit: Commit) -> dict[str, Any] | None:
    """The model card's front matter at `commit` (None without README.md or front matter)."""
    readme = commit.files.get("README.md")
    return parse_front_matter(readme.content) if readme is not None else None


def effective_tags(repo: Repo, commit: Commit) -> list[str]:
    """The repo's tags plus those the Hub derives: library, formats, languages, datasets,
    base model, license and region."""
    card = card_data(commit) or {}
    tags = list(repo.tags)
    extra: list[str] = []
    if repo.library_name:
        extra.append(repo.library_name)
    if any(path.endswith(".safetensors") for path in commit.files):
        extra.append("safetensors")
    languages = card.get("language") or []
    extra.extend([languages] if isinstance(languages, str) else list(languages))
    for key, prefix in (("datasets", "dataset:"), ("base_model", "base_model:")):
        values = card.get(key) or []
        for value in [values] if isinstance(values, str) else values:
            extra.append(f"{prefix}{value}")
    if card.get("license"):
        extra.append(f"license:{card['license']}")
    for tag in [*extra, "region:us"]:
        if isinstance(tag, str) and tag not in tags:
            tags.append(tag)
    return tags


def summary(repo: Repo, commit: Commit) -> dict[str, Any]:
    """One model of a search answer (`GET /api/models`)."""
    return {
        "_id": hashlib.sha1(repo.repo_id.encode(), usedforsecurity=False).hexdigest()[:24],
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "author": repo.author,
        "sha": commit.sha,
        "lastModified": iso(commit.time),
        "createdAt": iso(repo.created_at),
        "private": repo.private,
        "gated": repo.gated,
        "disabled": False,
        "downloads": repo.downloads,
        "likes": repo.likes,
        "trendingScore": repo.likes,
        "library_name": repo.library_name,
        "tags": effective_tags(repo, commit),
        "pipeline_tag": repo.pipeline_tag,
    }


def model_info(repo: Repo, commit: Commit, *, blobs: bool) -> dict[str, Any]:
    """The model info answer (`GET /api/models/{repo}[/revision/{rev}]`); `blobs`: with file
    sizes, blob ids and LFS details (`?blobs=true`)."""
    info = summary(repo, commit)
    card = card_data(commit)
    if card is not None:
        info["cardData"] = card
    config = _config_summary(commit)
    if config is not None:
        info["config"] = config
    info["siblings"] = [_sibling(stored, blobs=blobs) for stored in commit.files.values()]
    info["spaces"] = []
    info["usedStorage"] = sum(stored.size for stored in commit.files.values())
    return info


def _config_summary(commit: Commit) -> dict[str, Any] | None:
    """`architectures` and `model_type` from config.json, when it is a JSON object."""
    config = commit.files.get("config.json")
    if config is None:
        return None
    try:
        parsed = json.loads(config.content)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    return {key: parsed[key] for key in ("architectures", "model_type") if key in parsed}


def _sibling(stored: StoredFile, *, blobs: bool) -> dict[str, Any]:
    sibling: dict[str, Any] = {"rfilename": stored.path}
    if blobs:
        sibling["size"] = stored.size
        sibling["blobId"] = stored.blob_id
        if stored.is_lfs:
            sibling["lfs"] = {
                "size": stored.size,
                "sha256": stored.sha256,
                "pointerSize": stored.pointer_size,
            }
    return sibling


def tree_entries(commit: Commit, prefix: str, recursive: bool) -> list[dict[str, Any]]:
    """The tree listing below `prefix` (`GET /api/models/{repo}/tree/{rev}/{prefix}`): files
    and directories, sorted by path; only the first level unless `recursive`."""
    base = f"{prefix}/" if prefix else ""
    directories: set[str] = set()
    files: list[StoredFile] = []
    for path, stored in commit.files.items():
        if not path.startswith(base):
            continue
        parts = path[len(base) :].split("/")
        if recursive:
            directories.update(base + "/".join(parts[:depth]) for depth in range(1, len(parts)))
            files.append(stored)
        elif len(parts) == 1:
            files.append(stored)
        else:
            directories.add(base + parts[0])
    entries = [_directory_entry(commit, directory) for directory in directories]
    entries.extend(file_entry(stored) for stored in files)
    return sorted(entries, key=lambda entry: entry["path"])


def _directory_entry(commit: Commit, directory: str) -> dict[str, Any]:
    oid = hashlib.sha1(f"tree {commit.sha} {directory}".encode(), usedforsecurity=False)
    return {"type": "directory", "oid": oid.hexdigest(), "size": 0, "path": directory}


def file_entry(stored: StoredFile) -> dict[str, Any]:
    """A file as the tree listing and `paths-info` describe it."""
    entry: dict[str, Any] = {
        "type": "file",
        "oid": stored.blob_id,
        "size": stored.size,
        "path": stored.path,
    }
    if stored.is_lfs:
        entry["lfs"] = {
            "oid": stored.sha256,
            "size": stored.size,
            "pointerSize": stored.pointer_size,
        }
    return entry


def commit_entries(repo: Repo, commit: Commit) -> list[dict[str, Any]]:
    """`commit` and its ancestors, newest first, as the Hub's commit listing describes them
    (`GET /api/models/{repo}/commits/{rev}`)."""
    entries: list[dict[str, Any]] = []
    current: Commit | None = commit
    while current is not None:
        title, _, message = current.message.partition("\n")
        entries.append(
            {
                "id": current.sha,
                "title": title,
                "message": message.strip(),
                "authors": [{"user": repo.author, "avatar": ""}],
                "date": iso(current.time),
            }
        )
        current = repo.commits.get(current.parent) if current.parent else None
    return entries
