"""What the Hub client returns: files, model summaries, pinned models and search pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aegis_catalog.lib.hub.errors import EntryNotFound

# ---- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubFile:
    """One file of a repo at a commit, with the digests the Hub publishes for it."""

    path: str
    size: int
    blob_id: str  # git blob sha1 (of the LFS pointer for LFS files)
    lfs_sha256: str | None  # sha256 of the content, for LFS files

    @property
    def is_lfs(self) -> bool:
        return self.lfs_sha256 is not None


@dataclass(frozen=True)
class HubModelSummary:
    """A model as listed by search."""

    repo_id: str
    author: str | None
    commit: str | None
    downloads: int
    likes: int
    tags: tuple[str, ...]
    pipeline_tag: str | None
    library_name: str | None
    license: str | None
    gated: bool | str
    private: bool
    last_modified: datetime | None
    created_at: datetime | None


@dataclass(frozen=True)
class HubModel:
    """A model at one pinned commit: what an import resolves before downloading."""

    repo_id: str
    commit: str
    commit_time: datetime  # aware UTC (the Hub's lastModified for that revision)
    files: tuple[HubFile, ...]
    card_data: dict[str, Any] = field(hash=False)
    gated: bool | str
    private: bool
    author: str | None
    pipeline_tag: str | None
    library_name: str | None
    tags: tuple[str, ...]
    downloads: int
    likes: int
    license: str | None
    created_at: datetime | None

    @property
    def total_size(self) -> int:
        return sum(item.size for item in self.files)

    def file(self, path: str) -> HubFile:
        for item in self.files:
            if item.path == path:
                return item
        raise EntryNotFound(f"{path!r} is not a file of {self.repo_id} at commit {self.commit}.")


@dataclass(frozen=True)
class HubCommit:
    """One commit of a repo's history, as the Hub lists it (newest first)."""

    commit: str
    title: str
    authors: tuple[str, ...]
    created_at: datetime | None


@dataclass(frozen=True)
class SearchResult:
    """One page of search results.

    `next_cursor` is an opaque value to pass back as `search(cursor=...)` for the next page;
    `next_url` is the Hub's own `Link` target, for information only.
    """

    items: tuple[HubModelSummary, ...]
    next_cursor: str | None
    next_url: str | None
