"""The Hugging Face Hub client of Aegis: search, model info, card and pinned downloads.

A small typed layer over `huggingface_hub` with explicit arguments (endpoint, token,
timeout): it never reads `HF_ENDPOINT` or `HF_TOKEN` itself, and it turns the library's
exceptions into the `HubError` family below, whose messages name the repo, the revision
and the endpoint (never the token).
"""

from __future__ import annotations

import errno
import re
import shutil
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx2
from huggingface_hub import HfApi, hf_hub_download, hf_hub_url
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import ModelInfo
from huggingface_hub.utils import (
    build_hf_headers,
    filter_repo_objects,
    get_session,
    hf_raise_for_status,
    http_backoff,
)

LIBRARY_NAME = "aegis-catalog"
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_REPO_PART_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?")
MAX_REVISION_LENGTH = 200
MAX_CARD_BYTES = 5 * 1024 * 1024
SEARCH_SORTS = {
    "downloads": "downloads",
    "likes": "likes",
    "trending": "trendingScore",
    "trendingScore": "trendingScore",
    "last_modified": "lastModified",
    "lastModified": "lastModified",
    "created_at": "createdAt",
    "createdAt": "createdAt",
}
MAX_SEARCH_LIMIT = 100
# Ask the Hub for the summary fields a search result shows (the default answer omits some).
SEARCH_EXPAND = (
    "author",
    "createdAt",
    "downloads",
    "gated",
    "lastModified",
    "library_name",
    "likes",
    "pipeline_tag",
    "private",
    "sha",
    "tags",
)
_DOWNLOAD_WORKERS = 4
# huggingface_hub reads each download in chunks of constants.DOWNLOAD_CHUNK_SIZE (10 MiB), held
# in memory per concurrent file: 1 MiB keeps a worker's memory flat however many shards a model
# has, at no measurable cost in speed.
_DOWNLOAD_CHUNK_SIZE = 1024 * 1024
# Where huggingface_hub keeps its bookkeeping inside a `local_dir`.
_LOCAL_DIR_METADATA = (".cache", "huggingface")


# ---- errors -----------------------------------------------------------------------------------


class HubError(Exception):
    """Any failure talking to the Hub; the message is meant for a person."""


class InvalidRepoId(HubError, ValueError):
    """The text is not a Hub model id of the form `org/name`."""


class InvalidRevision(HubError, ValueError):
    """The text cannot be a branch, tag or commit name."""


class InvalidSearchParameter(HubError, ValueError):
    """A search argument (sort, limit, cursor) is out of range."""


class RepoNotFound(HubError):
    """No such model, or it is private and the token cannot see it."""


class RevisionNotFound(HubError):
    """The repo exists but the branch, tag or commit does not."""


class EntryNotFound(HubError):
    """A file is not in the repo at that revision."""


class GatedRepo(HubError):
    """The repo is gated: a token of an account that was granted access is needed (HF_TOKEN)."""


class InvalidToken(HubError):
    """The Hub refused the configured token."""


class HubUnavailable(HubError):
    """The Hub could not be reached, timed out, or answered with a server error."""


class LocalDiskFull(HubError):
    """The download ran out of local disk space (not the Hub's fault)."""


class NoFilesMatched(HubError):
    """Include/exclude patterns selected no file of the repo."""


class UnsafeFilePath(HubError):
    """The Hub listed a file path that would escape the download directory."""


# ---- validation -------------------------------------------------------------------------------


def validate_repo_id(value: str) -> str:
    """Return `value` if it is a model id `org/name` the Hub accepts, else raise InvalidRepoId.

    At least as strict as `huggingface_hub.utils.validate_repo_id`, and the namespace is required.
    """
    if not isinstance(value, str) or not value:
        raise InvalidRepoId("A model id is required, in the form 'org/name'.")
    shown = value[:120]
    if value.count("/") != 1:
        raise InvalidRepoId(f"Model id {shown!r} must have the form 'org/name' (exactly one '/').")
    for part in value.split("/"):
        if not part:
            raise InvalidRepoId(f"Model id {shown!r} has an empty organisation or name.")
        if len(part) > 96:
            raise InvalidRepoId(f"Model id {shown!r}: each part may have at most 96 characters.")
        if not _REPO_PART_RE.fullmatch(part):
            raise InvalidRepoId(
                f"Model id {shown!r} may use only letters, digits, '-', '_' and '.', and a part"
                " cannot start or end with '-' or '.'."
            )
    if ".." in value or "--" in value:
        raise InvalidRepoId(f"Model id {shown!r} cannot contain '..' or '--'.")
    if value.endswith(".git"):
        raise InvalidRepoId(f"Model id {shown!r} cannot end with '.git'.")
    return value


_BAD_REVISION_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def validate_revision(value: str) -> str:
    """Return `value` if it can name a branch, tag or commit (git ref rules), else raise."""
    if not isinstance(value, str) or not value:
        raise InvalidRevision("A revision (branch, tag or commit) is required.")
    shown = value[:120]
    if len(value) > MAX_REVISION_LENGTH:
        raise InvalidRevision(
            f"Revision {shown!r}... is longer than {MAX_REVISION_LENGTH} characters."
        )
    if _BAD_REVISION_CHARS.search(value):
        raise InvalidRevision(
            f"Revision {shown!r} contains a space, a control character or one of ~^:?*[\\."
        )
    if (
        ".." in value
        or "//" in value
        or "@{" in value
        or value.startswith(("/", "-", "."))
        or value.endswith(("/", ".", ".lock"))
        or "/." in value
    ):
        raise InvalidRevision(f"Revision {shown!r} is not a valid branch, tag or commit name.")
    return value


def _validate_repo_path(repo_id: str, path: str) -> str:
    pure = PurePosixPath(path)
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(part in {"", ".", ".."} for part in path.split("/"))
        or pure.parts[:2] == _LOCAL_DIR_METADATA
    ):
        raise UnsafeFilePath(
            f"The Hub listed a file {path!r} in {repo_id} that is not a safe relative path."
        )
    return path


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
class SearchResult:
    """One page of search results.

    `next_cursor` is an opaque value to pass back as `search(cursor=...)` for the next page;
    `next_url` is the Hub's own `Link` target, for information only.
    """

    items: tuple[HubModelSummary, ...]
    next_cursor: str | None
    next_url: str | None


ProgressCallback = Callable[[int, int], None]


# ---- the client -------------------------------------------------------------------------------


class HubClient:
    """Talks to one Hub endpoint with an optional token.

    Without a token, no credential is sent (the library's own login/`HF_TOKEN` is not used).

    `retries`: how many times a model-info request is repeated after HTTP 408/429/5xx or a
    network error, waiting `retry_wait` seconds and doubling (at most 8 s), or what the Hub's
    `Retry-After` says; huggingface_hub's own `http_backoff` does the waiting. File downloads
    use the library's built-in retries (HEAD: 429/5xx; body: 408/429 with Retry-After).
    `download_workers`: how many files of one snapshot are downloaded at once.
    """

    def __init__(
        self,
        endpoint: str,
        token: str | None = None,
        *,
        timeout: float = 30,
        retries: int = 0,
        retry_wait: float = 1.0,
        download_workers: int = _DOWNLOAD_WORKERS,
    ) -> None:
        parsed = urlsplit(endpoint)
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise HubError(f"The Hub endpoint must be an http(s) URL, not {endpoint!r}.")
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self.retries = max(0, retries)
        self.retry_wait = max(0.0, retry_wait)
        self.download_workers = max(1, download_workers)
        self._token: str | bool = token or False
        self._api = HfApi(endpoint=self.endpoint, token=self._token, library_name=LIBRARY_NAME)

    def __repr__(self) -> str:
        return f"HubClient({self.endpoint!r}, token={'set' if self._token else 'none'})"

    @property
    def has_token(self) -> bool:
        return bool(self._token)

    # -- search --

    def search(
        self,
        query: str = "",
        *,
        task: str | None = None,
        library: str | None = None,
        license: str | None = None,
        sort: str = "downloads",
        limit: int = 20,
        cursor: str | None = None,
    ) -> SearchResult:
        """One page of models, most popular first by default.

        With `cursor` (from a previous result) the next page of that same search is fetched
        and the other arguments are ignored.
        """
        if cursor is not None:
            params = self._cursor_params(cursor)
        else:
            if sort not in SEARCH_SORTS:
                raise InvalidSearchParameter(
                    f"Cannot sort by {sort!r}; choose one of {', '.join(sorted(SEARCH_SORTS))}."
                )
            if not 1 <= limit <= MAX_SEARCH_LIMIT:
                raise InvalidSearchParameter(
                    f"limit must be between 1 and {MAX_SEARCH_LIMIT}, not {limit}."
                )
            params = []
            if query:
                params.append(("search", query))
            if task:
                params.append(("pipeline_tag", task))
            if library:
                params.append(("filter", library))
            if license:
                params.append(("filter", f"license:{license}"))
            params += [("sort", SEARCH_SORTS[sort]), ("direction", "-1"), ("limit", str(limit))]
            params += [("expand", name) for name in SEARCH_EXPAND]
        url = f"{self.endpoint}/api/models"
        what = f"search models on {self.endpoint}"
        try:
            response = get_session().get(
                url, params=tuple(params), headers=self._headers(), timeout=self.timeout
            )
            hf_raise_for_status(response)
            payload = response.json()
        except Exception as error:
            raise self._translate(error, what=what) from error
        try:
            if not isinstance(payload, list):
                raise TypeError("not a list")
            items = tuple(
                self._summary(ModelInfo(**{"siblings": None, **item})) for item in payload
            )
        except (KeyError, TypeError, ValueError) as error:
            raise HubUnavailable(
                f"The Hub at {self.endpoint} answered a search with unexpected data ({error})."
            ) from error
        next_url = response.links.get("next", {}).get("url")
        next_cursor = urlsplit(next_url).query or None if next_url else None
        return SearchResult(items=items, next_cursor=next_cursor, next_url=next_url)

    @staticmethod
    def _cursor_params(cursor: str) -> list[tuple[str, str]]:
        try:
            params = parse_qsl(cursor, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise InvalidSearchParameter(
                "The page cursor is not valid; start the search again."
            ) from None
        if len(cursor) > 4096 or not params:
            raise InvalidSearchParameter("The page cursor is not valid; start the search again.")
        return params

    # -- model info --

    def model_info(self, repo_id: str, revision: str = "main") -> HubModel:
        """The model at `revision`, pinned to its commit, with every file's size and digests."""
        validate_repo_id(repo_id)
        validate_revision(revision)
        what = f"{repo_id} at revision {revision!r} on {self.endpoint}"
        # The request HfApi.model_info(files_metadata=True) makes, through the library's backoff.
        url = f"{self.endpoint}/api/models/{repo_id}/revision/{quote(revision, safe='')}"
        try:
            response = http_backoff(
                "GET",
                url,
                params={"blobs": True},
                headers=self._headers(),
                timeout=self.timeout,
                max_retries=self.retries,
                base_wait_time=self.retry_wait,
                max_wait_time=max(self.retry_wait, 8.0),
            )
            hf_raise_for_status(response)
            info = ModelInfo(**response.json())
        except Exception as error:
            raise self._translate(error, what=what, repo_id=repo_id, revision=revision) from error
        if not info.sha or not COMMIT_RE.fullmatch(info.sha):
            raise HubUnavailable(f"The Hub at {self.endpoint} returned no commit for {what}.")
        if info.last_modified is None:
            raise HubUnavailable(f"The Hub at {self.endpoint} returned no commit time for {what}.")
        files = []
        for sibling in info.siblings or []:
            _validate_repo_path(repo_id, sibling.rfilename)
            if sibling.size is None or sibling.blob_id is None:
                raise HubUnavailable(
                    f"The Hub at {self.endpoint} returned no size or blob id for"
                    f" {sibling.rfilename!r} of {what}."
                )
            files.append(
                HubFile(
                    path=sibling.rfilename,
                    size=sibling.size,
                    blob_id=sibling.blob_id,
                    lfs_sha256=sibling.lfs.sha256 if sibling.lfs is not None else None,
                )
            )
        card_data = info.card_data.to_dict() if info.card_data is not None else {}
        summary = self._summary(info)
        card_license = card_data.get("license")
        return HubModel(
            repo_id=info.id,
            commit=info.sha,
            commit_time=info.last_modified.astimezone(UTC),
            files=tuple(sorted(files, key=lambda item: item.path)),
            card_data=card_data,
            gated=summary.gated,
            private=summary.private,
            author=summary.author,
            pipeline_tag=summary.pipeline_tag,
            library_name=summary.library_name,
            tags=summary.tags,
            downloads=summary.downloads,
            likes=summary.likes,
            license=card_license if isinstance(card_license, str) else summary.license,
            created_at=summary.created_at,
        )

    # -- card --

    def fetch_card(self, repo_id: str, commit: str) -> str:
        """The README.md (model card) text at `commit`, or "" when the repo has none."""
        validate_repo_id(repo_id)
        validate_revision(commit)
        url = f"{self.endpoint}/{repo_id}/resolve/{quote(commit, safe='')}/README.md"
        what = f"the model card of {repo_id} at {commit} on {self.endpoint}"
        try:
            with get_session().stream(
                "GET", url, headers=self._headers(), timeout=self.timeout, follow_redirects=True
            ) as response:
                hf_raise_for_status(response)
                chunks: list[bytes] = []
                received = 0
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    if received > MAX_CARD_BYTES:
                        raise HubError(f"{what} is larger than {MAX_CARD_BYTES} bytes; not shown.")
                    chunks.append(chunk)
        except RemoteEntryNotFoundError:
            return ""
        except HubError:
            raise
        except Exception as error:
            raise self._translate(error, what=what, repo_id=repo_id, revision=commit) from error
        return b"".join(chunks).decode("utf-8", errors="replace")

    # -- files --

    def select_files(
        self, model: HubModel, include: Sequence[str], exclude: Sequence[str]
    ) -> tuple[HubFile, ...]:
        """The files matching any `include` pattern (all when empty) and no `exclude` pattern.

        Same fnmatch rules as huggingface_hub's allow/ignore patterns (a trailing '/' means
        everything under that folder; '*' also crosses '/').
        """
        selected = tuple(
            filter_repo_objects(
                items=model.files,
                allow_patterns=list(include) or None,
                ignore_patterns=list(exclude) or None,
                key=lambda item: item.path,
            )
        )
        if not selected:
            raise NoFilesMatched(
                f"No file of {model.repo_id} at commit {model.commit} matches include"
                f" {list(include) or ['*']} and exclude {list(exclude)}"
                f" (the repo has {len(model.files)} files)."
            )
        return selected

    def download(
        self,
        repo_id: str,
        commit: str,
        dest_dir: Path,
        files: Sequence[str],
        *,
        progress: ProgressCallback | None = None,
    ) -> dict[str, Path]:
        """Download exactly `files` at the pinned `commit` into `dest_dir`; map path -> local file.

        A file already in `dest_dir` with the size the Hub lists (from an interrupted earlier
        run) is kept and not fetched again. `progress(bytes_done, bytes_total)` covers all the
        files. Content digests are not checked here (the caller compares sha256). The library's
        bookkeeping folder `dest_dir/.cache/huggingface` is removed after a complete download.
        """
        validate_repo_id(repo_id)
        if not isinstance(commit, str) or not COMMIT_RE.fullmatch(commit):
            raise InvalidRevision(
                f"Downloads of {repo_id} need the pinned 40-hex commit, not {str(commit)[:60]!r}."
            )
        wanted = list(dict.fromkeys(files))
        if not wanted:
            return {}
        model = self.model_info(repo_id, commit)
        listed = {item.path: item for item in model.files}
        missing = [path for path in wanted if path not in listed]
        if missing:
            raise EntryNotFound(
                f"{', '.join(repr(path) for path in missing[:5])} not found in {repo_id} at commit"
                f" {commit} on {self.endpoint}."
            )
        probe = hf_hub_url(repo_id, wanted[0], revision=commit, endpoint=self.endpoint)
        if not probe.startswith(self.endpoint + "/"):
            # hf_hub_url only swaps the host when huggingface_hub.constants.ENDPOINT and its
            # URL template agree; never let a download go to another host.
            raise HubError(
                f"huggingface_hub would download from {probe.split('/resolve/')[0]} instead of"
                f" {self.endpoint}: its ENDPOINT constants were changed inconsistently."
            )
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        hf_constants.DOWNLOAD_CHUNK_SIZE = min(
            hf_constants.DOWNLOAD_CHUNK_SIZE, _DOWNLOAD_CHUNK_SIZE
        )
        tracker = _ProgressTracker({path: listed[path].size for path in wanted}, progress)
        targets = {path: dest_dir.joinpath(*path.split("/")) for path in wanted}
        to_fetch = []
        for path in wanted:
            target = targets[path]
            if target.is_file() and target.stat().st_size == listed[path].size:
                tracker.finish(path)
            else:
                to_fetch.append(path)
        tracker.report()

        def fetch(path: str) -> None:
            target = targets[path]
            stale = target.exists()
            try:
                hf_hub_download(
                    repo_id,
                    path,
                    revision=commit,
                    local_dir=dest_dir,
                    endpoint=self.endpoint,
                    token=self._token,
                    etag_timeout=self.timeout,
                    library_name=LIBRARY_NAME,
                    force_download=stale,
                    tqdm_class=tracker.bar_class(path),
                )
            except Exception as error:
                raise self._translate(
                    error,
                    what=f"{path!r} of {repo_id} at commit {commit} on {self.endpoint}",
                    repo_id=repo_id,
                    revision=commit,
                ) from error
            tracker.finish(path)

        if to_fetch:
            workers = min(self.download_workers, len(to_fetch))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hub-download") as pool:
                pending = {pool.submit(fetch, path) for path in to_fetch}
                # Progress is reported from the caller's thread only, so callbacks may use
                # thread-bound resources (a database connection, a terminal).
                while pending:
                    finished, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
                    tracker.report()
                    for future in finished:
                        if future.exception() is not None:
                            for other in pending:
                                other.cancel()
                            future.result()
        for path, target in targets.items():
            if not target.is_file() or target.stat().st_size != listed[path].size:
                raise HubUnavailable(
                    f"{path!r} of {repo_id} at commit {commit} did not arrive complete from"
                    f" {self.endpoint}; retry the download."
                )
        shutil.rmtree(dest_dir.joinpath(*_LOCAL_DIR_METADATA), ignore_errors=True)
        metadata_root = dest_dir / _LOCAL_DIR_METADATA[0]
        if metadata_root.is_dir() and not any(metadata_root.iterdir()):
            metadata_root.rmdir()
        return targets

    # -- helpers --

    def _headers(self) -> dict[str, str]:
        return build_hf_headers(token=self._token, library_name=LIBRARY_NAME)

    def _summary(self, info: ModelInfo) -> HubModelSummary:
        tags = tuple(info.tags or ())
        license_tag = next(
            (tag.split(":", 1)[1] for tag in tags if tag.startswith("license:")), None
        )
        gated = info.gated if isinstance(info.gated, str) else bool(info.gated)
        return HubModelSummary(
            repo_id=info.id,
            author=info.author or (info.id.split("/", 1)[0] if "/" in info.id else None),
            commit=info.sha,
            downloads=int(info.downloads or 0),
            likes=int(info.likes or 0),
            tags=tags,
            pipeline_tag=info.pipeline_tag,
            library_name=info.library_name,
            license=license_tag,
            gated=gated,
            private=bool(info.private),
            last_modified=info.last_modified,
            created_at=info.created_at,
        )

    def _translate(
        self,
        error: BaseException,
        *,
        what: str,
        repo_id: str | None = None,
        revision: str | None = None,
    ) -> HubError:
        """A HubError for a huggingface_hub / HTTP failure (messages never carry the token)."""
        if isinstance(error, HubError):
            return error
        server = _server_message(error)
        if isinstance(error, HFValidationError):
            return InvalidRepoId(f"{what}: {error}")
        if isinstance(error, OfflineModeIsEnabled | LocalEntryNotFoundError):
            return HubUnavailable(
                f"Cannot reach the Hub at {self.endpoint} for {what}; check the network and retry."
            )
        if isinstance(error, GatedRepoError):
            if self._token:
                return GatedRepo(
                    f"{repo_id} on {self.endpoint} is gated and the configured HF token has not"
                    " been granted access: request access on the model page with that account."
                )
            return GatedRepo(
                f"{repo_id} on {self.endpoint} is gated: set HF_TOKEN to a token of an account"
                " that was granted access to it."
            )
        if isinstance(error, RevisionNotFoundError):
            return RevisionNotFound(
                f"{repo_id} on {self.endpoint} has no branch, tag or commit {revision!r}."
            )
        if isinstance(error, RemoteEntryNotFoundError):
            return EntryNotFound(f"Not found: {what}.")
        if isinstance(error, RepositoryNotFoundError):
            hint = "" if self._token else " (if it is private, set HF_TOKEN)"
            return RepoNotFound(f"{self.endpoint} has no model {repo_id!r}{hint}.")
        if isinstance(error, HfHubHTTPError):
            status = error.response.status_code if error.response is not None else 0
            if status == 401:
                return InvalidToken(
                    f"The Hub at {self.endpoint} refused the configured HF token while trying to"
                    f" {what}: check HF_TOKEN."
                )
            if status >= 500 or status in {408, 429}:
                tries = f" (after {self.retries} retries)" if self.retries else ""
                return HubUnavailable(
                    f"The Hub at {self.endpoint} answered HTTP {status} for {what}{tries};"
                    " try again later."
                )
            detail = f": {server}" if server else ""
            return HubError(f"The Hub at {self.endpoint} refused {what} (HTTP {status}){detail}.")
        if isinstance(error, httpx2.TimeoutException):
            return HubUnavailable(
                f"The Hub at {self.endpoint} did not answer within {self.timeout:g}s for {what}."
            )
        if isinstance(error, httpx2.RequestError):
            return HubUnavailable(
                f"Cannot reach the Hub at {self.endpoint} for {what}: {type(error).__name__}."
            )
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return LocalDiskFull(
                f"No space left on the local disk while fetching {what}: free some space or "
                "point AEGIS_WORK_DIR at a larger disk, then retry."
            )
        if isinstance(error, OSError):
            # huggingface_hub's size check ("Consistency check failed") and disk errors.
            return HubUnavailable(f"Transfer of {what} failed: {error}")
        if isinstance(error, ValueError):
            return HubError(
                f"The Hub at {self.endpoint} answered {what} with unexpected data: {error}"
            )
        raise error


def _server_message(error: BaseException) -> str | None:
    message = getattr(error, "server_message", None)
    return message.strip()[:300] if isinstance(message, str) and message.strip() else None


class _ProgressTracker:
    """Sums per-file byte counts across download threads; `report()` (called from the
    caller's thread) passes (done, total) to the callback when it changed."""

    def __init__(self, sizes: dict[str, int], callback: ProgressCallback | None) -> None:
        self._sizes = sizes
        self._done = dict.fromkeys(sizes, 0)
        self._total = sum(sizes.values())
        self._callback = callback
        self._lock = threading.Lock()
        self._last: tuple[int, int] | None = None

    def add(self, path: str, amount: int) -> None:
        with self._lock:
            self._done[path] = min(max(self._done[path] + amount, 0), self._sizes[path])

    def finish(self, path: str) -> None:
        with self._lock:
            self._done[path] = self._sizes[path]

    def report(self) -> None:
        if self._callback is None:
            return
        with self._lock:
            current = (sum(self._done.values()), self._total)
            if current == self._last:
                return
            self._last = current
            self._callback(*current)

    def bar_class(self, path: str) -> type:
        tracker = self

        class _Bar:
            """Stands in for tqdm: huggingface_hub calls update(n) as chunks arrive."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                initial = kwargs.get("initial") or 0
                if initial:
                    tracker.add(path, int(initial))

            def update(self, n: float | None = 1) -> None:
                tracker.add(path, int(n or 0))

            def close(self) -> None:
                pass

            def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
                pass

            def __enter__(self) -> _Bar:
                return self

            def __exit__(self, *exc_info: object) -> None:
                pass

        return _Bar
