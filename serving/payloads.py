"""A registered version as the Hub's JSON: model info, tree listings, paths-info.

Every file is described as an LFS file (``lfs.sha256`` is its sha256, the ``ETag`` the client
caches it by), whatever it was on the Hub: the digest the client keys its cache with is then
the one the signed ``model.sig`` names.
"""

from __future__ import annotations

import hashlib
from typing import Any

from registry.models import ModelVersion
from serving.models import ServedVersion
from serving.names import Repo, served_sha


def lfs_pointer(sha256: str, size: int) -> bytes:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


def git_blob_id(content: bytes) -> str:
    header = f"blob {len(content)}\0".encode()
    return hashlib.sha1(header + content, usedforsecurity=False).hexdigest()


def _file(path: str, entry: dict[str, Any]) -> dict[str, Any]:
    pointer = lfs_pointer(entry["sha256"], entry["size"])
    return {
        "path": path,
        "size": entry["size"],
        "blob_id": git_blob_id(pointer),
        "sha256": entry["sha256"],
        "pointer_size": len(pointer),
    }


def files_of(served: ServedVersion) -> list[dict[str, Any]]:
    return [_file(path, served.files[path]) for path in sorted(served.files)]


def model_info(repo: Repo, version: ModelVersion, served: ServedVersion) -> dict[str, Any]:
    """``GET /api/models/{repo}[/revision/{rev}]``, as the Hub answers with ``blobs=true``."""
    model = version.model
    files = files_of(served)
    info: dict[str, Any] = {
        "_id": served_sha(version)[:24],
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "author": repo.repo_id.split("/", 1)[0],
        "sha": served_sha(version),
        "lastModified": version.imported_at.isoformat().replace("+00:00", "Z"),
        "createdAt": model.created_at.isoformat().replace("+00:00", "Z"),
        "private": False,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "library_name": model.library_name or None,
        "pipeline_tag": model.pipeline_tag or None,
        "tags": list(model.tags or []),
        "cardData": model.card_data or None,
        "siblings": [
            {
                "rfilename": item["path"],
                "size": item["size"],
                "blobId": item["blob_id"],
                "lfs": {
                    "size": item["size"],
                    "sha256": item["sha256"],
                    "pointerSize": item["pointer_size"],
                },
            }
            for item in files
        ],
        "spaces": [],
        "usedStorage": sum(item["size"] for item in files),
        "aegis": {
            "name": model.name,
            "version": version.version,
            "status": version.status,
            "source_repo": version.source_repo,
            "source_commit": version.source_commit,
            "artifact_sha256": version.sha256,
        },
    }
    return info


def file_entry(item: dict[str, Any]) -> dict[str, Any]:
    """A file as the tree listing and ``paths-info`` describe it."""
    return {
        "type": "file",
        "oid": item["blob_id"],
        "size": item["size"],
        "path": item["path"],
        "lfs": {"oid": item["sha256"], "size": item["size"], "pointerSize": item["pointer_size"]},
    }


def tree(served: ServedVersion, prefix: str, *, recursive: bool) -> list[dict[str, Any]]:
    """``GET /api/models/{repo}/tree/{rev}/{prefix}``: files and directories below ``prefix``,
    sorted by path; only the first level unless ``recursive``."""
    base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    directories: set[str] = set()
    entries = []
    for item in files_of(served):
        if not item["path"].startswith(base):
            continue
        parts = item["path"][len(base) :].split("/")
        if recursive:
            directories.update(base + "/".join(parts[:depth]) for depth in range(1, len(parts)))
            entries.append(file_entry(item))
        elif len(parts) == 1:
            entries.append(file_entry(item))
        else:
            directories.add(base + parts[0])
    for directory in directories:
        oid = hashlib.sha1(f"tree {served.pk} {directory}".encode(), usedforsecurity=False)
        entries.append({"type": "directory", "oid": oid.hexdigest(), "size": 0, "path": directory})
    return sorted(entries, key=lambda entry: entry["path"])


def paths_info(served: ServedVersion, paths: list[str]) -> list[dict[str, Any]]:
    """``POST /api/models/{repo}/paths-info/{rev}``: the files among ``paths`` (unknown paths
    are left out, as the Hub does)."""
    wanted = set(paths)
    return [file_entry(item) for item in files_of(served) if item["path"] in wanted]
