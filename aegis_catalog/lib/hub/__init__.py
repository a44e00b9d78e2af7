"""The Hugging Face Hub client of Aegis: search, model info, card and pinned downloads.

`HubClient` (`client.py`) is a small typed layer over `huggingface_hub` with explicit arguments
(endpoint, token, timeout); `download.py` runs its pinned multi-file downloads. What it returns
is in `models.py`; `errors.py` holds the `HubError` family and the checks of model ids,
revisions and paths (with `COMMIT_RE`, the one definition of a pinned commit).
"""

from __future__ import annotations

from aegis_catalog.lib.hub.client import (
    MAX_CARD_BYTES,
    MAX_SEARCH_LIMIT,
    SEARCH_EXPAND,
    SEARCH_SORTS,
    HubClient,
    check_search_cursor,
    matching_files,
)
from aegis_catalog.lib.hub.download import ProgressCallback
from aegis_catalog.lib.hub.errors import (
    COMMIT_RE,
    LIBRARY_NAME,
    MAX_REVISION_LENGTH,
    EntryNotFound,
    GatedRepo,
    HubError,
    HubUnavailable,
    InvalidRepoId,
    InvalidRevision,
    InvalidSearchParameter,
    InvalidToken,
    LocalDiskFull,
    MissingFileDigests,
    NoFilesMatched,
    RepoNotFound,
    RevisionNotFound,
    UnsafeFilePath,
    validate_repo_id,
    validate_revision,
)
from aegis_catalog.lib.hub.models import (
    HubCommit,
    HubFile,
    HubModel,
    HubModelSummary,
    SearchResult,
)

__all__ = [
    "COMMIT_RE",
    "LIBRARY_NAME",
    "MAX_CARD_BYTES",
    "MAX_REVISION_LENGTH",
    "MAX_SEARCH_LIMIT",
    "SEARCH_EXPAND",
    "SEARCH_SORTS",
    "EntryNotFound",
    "GatedRepo",
    "HubClient",
    "HubCommit",
    "HubError",
    "HubFile",
    "HubModel",
    "HubModelSummary",
    "HubUnavailable",
    "InvalidRepoId",
    "InvalidRevision",
    "InvalidSearchParameter",
    "InvalidToken",
    "LocalDiskFull",
    "MissingFileDigests",
    "NoFilesMatched",
    "ProgressCallback",
    "RepoNotFound",
    "RevisionNotFound",
    "SearchResult",
    "UnsafeFilePath",
    "check_search_cursor",
    "matching_files",
    "validate_repo_id",
    "validate_revision",
]
