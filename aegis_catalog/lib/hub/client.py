"""The Hugging Face Hub client of Aegis: search, model info, card and pinned downloads.

A small typed layer over `huggingface_hub` with explicit arguments (endpoint, token,
timeout): it never reads `HF_ENDPOINT` or `HF_TOKEN` itself, and it turns the library's
exceptions into the `HubError` family (`translate.py`), whose messages name the repo, the
revision and the endpoint (never the token).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from huggingface_hub import HfApi, hf_hub_url
from huggingface_hub.errors import RemoteEntryNotFoundError
from huggingface_hub.hf_api import ModelInfo
from huggingface_hub.utils import (
    build_hf_headers,
    filter_repo_objects,
    get_session,
    hf_raise_for_status,
    http_backoff,
    parse_datetime,
)

from aegis_catalog.lib.hub.digests import missing_facts
from aegis_catalog.lib.hub.download import (
    DEFAULT_DOWNLOAD_WORKERS,
    ProgressCallback,
    SnapshotDownload,
)
from aegis_catalog.lib.hub.errors import (
    COMMIT_RE,
    LIBRARY_NAME,
    EntryNotFound,
    HubError,
    HubUnavailable,
    InvalidRevision,
    InvalidSearchParameter,
    MissingFileDigests,
    NoFilesMatched,
    validate_repo_id,
    validate_repo_path,
    validate_revision,
)
from aegis_catalog.lib.hub.feed import InMemory, SnapshotFeed
from aegis_catalog.lib.hub.models import (
    HubCommit,
    HubFile,
    HubModel,
    HubModelSummary,
    SearchResult,
)
from aegis_catalog.lib.hub.translate import ErrorTranslator

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
# The Hub's page cursor is an opaque token (base64url-like); anything else is refused.
SEARCH_CURSOR_RE = re.compile(r"[A-Za-z0-9_.+/-]{1,1000}={0,2}")
INVALID_CURSOR = "The page cursor is not valid; start the search again."


def check_search_cursor(cursor: str) -> str:
    """``cursor`` when it is an opaque Hub page token; InvalidSearchParameter otherwise."""
    if not SEARCH_CURSOR_RE.fullmatch(cursor):
        raise InvalidSearchParameter(INVALID_CURSOR)
    return cursor


def _commit_of(item: Any) -> HubCommit:
    """One entry of the Hub's commit listing; KeyError/TypeError/ValueError when malformed."""
    commit = item["id"]
    if not isinstance(commit, str) or not COMMIT_RE.fullmatch(commit):
        raise ValueError(f"{str(commit)[:60]!r} is not a commit id")
    date = item.get("date")
    return HubCommit(
        commit=commit,
        title=str(item.get("title") or "")[:300],
        authors=tuple(str(author["user"]) for author in item.get("authors") or ()),
        created_at=parse_datetime(date).astimezone(UTC) if isinstance(date, str) else None,
    )


def _next_cursor(next_url: str | None) -> str | None:
    """The opaque ``cursor`` of the Hub's "next" link (the link's other parameters are the
    search's own, which the next request builds again), or None on the last page."""
    if not next_url:
        return None
    values = parse_qs(urlsplit(next_url).query).get("cursor")
    if not values or not SEARCH_CURSOR_RE.fullmatch(values[0]):
        return None
    return values[0]


def matching_files(
    files: Sequence[HubFile], include: Sequence[str], exclude: Sequence[str]
) -> tuple[HubFile, ...]:
    """The files matching any `include` pattern (all when empty) and no `exclude` pattern.

    Same fnmatch rules as huggingface_hub's allow/ignore patterns (a trailing '/' means
    everything under that folder; '*' also crosses '/').
    """
    return tuple(
        filter_repo_objects(
            items=files,
            allow_patterns=list(include) or None,
            ignore_patterns=list(exclude) or None,
            key=lambda item: item.path,
        )
    )


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
        download_workers: int = DEFAULT_DOWNLOAD_WORKERS,
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

        With `cursor` (a previous result's ``next_cursor``: the Hub's opaque token, nothing else)
        the next page of the same search is fetched; the other arguments must be the same.
        Only the parameters built here reach the Hub, never ones taken from a caller's URL.
        """
        params = self._search_params(query, task, library, license, sort, limit)
        if cursor is not None:
            params.append(("cursor", check_search_cursor(cursor)))
        url = f"{self.endpoint}/api/models"
        what = f"search models on {self.endpoint}"
        try:
            response = get_session().get(
                url, params=tuple(params), headers=self._headers(), timeout=self.timeout
            )
            hf_raise_for_status(response)
            payload = response.json()
        except Exception as error:
            translated = self._translate(error, what=what)
            # Our own parameters are checked above, so a 400 for a next page is its cursor: one
            # the Hub did not make for this search, or a stale one. Bad input, not a Hub failure.
            response_of_error = getattr(error, "response", None)
            if cursor is not None and getattr(response_of_error, "status_code", None) == 400:
                raise InvalidSearchParameter(f"{INVALID_CURSOR} ({translated})") from error
            raise translated from error
        items = self._search_items(payload)
        next_url = response.links.get("next", {}).get("url")
        return SearchResult(items=items, next_cursor=_next_cursor(next_url), next_url=next_url)

    @staticmethod
    def _search_params(
        query: str,
        task: str | None,
        library: str | None,
        license: str | None,
        sort: str,
        limit: int,
    ) -> list[tuple[str, str]]:
        """The query string of a first search page; raises InvalidSearchParameter."""
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
        return params

    def _search_items(self, payload: Any) -> tuple[HubModelSummary, ...]:
        """The models of a search answer; HubUnavailable when it is not the expected list."""
        try:
            if not isinstance(payload, list):
                raise TypeError("not a list")
            return tuple(self._summary(ModelInfo(**{"siblings": None, **item})) for item in payload)
        except (KeyError, TypeError, ValueError) as error:
            raise HubUnavailable(
                f"The Hub at {self.endpoint} answered a search with unexpected data ({error})."
            ) from error

    # -- model info --

    def model_info(self, repo_id: str, revision: str = "main") -> HubModel:
        """The model at `revision`, pinned to its commit, with every file's size and digests."""
        validate_repo_id(repo_id)
        validate_revision(revision)
        what = f"{repo_id} at revision {revision!r} on {self.endpoint}"
        info = self._fetch_model_info(repo_id, revision, what)
        if not info.sha or not COMMIT_RE.fullmatch(info.sha):
            raise HubUnavailable(f"The Hub at {self.endpoint} returned no commit for {what}.")
        if info.last_modified is None:
            raise HubUnavailable(f"The Hub at {self.endpoint} returned no commit time for {what}.")
        files = self._files_of(info, repo_id, what)
        card_data = info.card_data.to_dict() if info.card_data is not None else {}
        summary = self._summary(info)
        card_license = card_data.get("license")
        return HubModel(
            repo_id=info.id,
            commit=info.sha,
            commit_time=info.last_modified.astimezone(UTC),
            files=files,
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

    def _fetch_model_info(self, repo_id: str, revision: str, what: str) -> ModelInfo:
        """GET the model as HfApi.model_info(files_metadata=True) does, with backoff."""
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
            return ModelInfo(**response.json())
        except Exception as error:
            raise self._translate(error, what=what, repo_id=repo_id, revision=revision) from error

    def _files_of(self, info: ModelInfo, repo_id: str, what: str) -> tuple[HubFile, ...]:
        """The repo's files sorted by path; each path must be safe, with a size and a digest.
        What the model info lacks (a mirror's bare siblings) is asked of ``paths-info``, then
        of HEAD per file (``digests.py``); MissingFileDigests names the files none describes."""
        files, bare = [], []
        for sibling in info.siblings or []:
            validate_repo_path(repo_id, sibling.rfilename)
            if sibling.size is None or sibling.blob_id is None:
                bare.append(sibling.rfilename)
                continue
            files.append(
                HubFile(
                    path=sibling.rfilename,
                    size=sibling.size,
                    blob_id=sibling.blob_id,
                    lfs_sha256=sibling.lfs.sha256 if sibling.lfs is not None else None,
                )
            )
        if bare:
            assert info.sha is not None
            facts = missing_facts(
                self._api,
                repo_id,
                info.sha,
                bare,
                timeout=self.timeout,
                translate=self._translate,
            )
            unknown = [path for path in bare if path not in facts]
            if unknown:
                shown = ", ".join(repr(path) for path in unknown[:5])
                more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
                raise MissingFileDigests(
                    f"The Hub at {self.endpoint} gives no size or digest for {shown}{more} of "
                    f"{what}: not in its model info, its paths-info or a HEAD of the file, so "
                    "the download could not be checked. Use an endpoint (or mirror) that "
                    "publishes file digests."
                )
            files += [HubFile(path, fact.size, fact.blob_id, fact.lfs_sha256)
                      for path, fact in facts.items()]  # fmt: skip
        return tuple(sorted(files, key=lambda item: item.path))

    # -- history --

    def list_commits(
        self, repo_id: str, revision: str, *, limit: int = 50
    ) -> tuple[HubCommit, ...]:
        """The newest commits of `revision` (newest first): the first page of the Hub's commit
        listing, as HfApi.list_repo_commits reads it, at most `limit`."""
        validate_repo_id(repo_id)
        validate_revision(revision)
        url = f"{self.endpoint}/api/models/{repo_id}/commits/{quote(revision, safe='')}"
        what = f"the commits of {repo_id} at revision {revision!r} on {self.endpoint}"
        try:
            response = http_backoff(
                "GET",
                url,
                headers=self._headers(),
                timeout=self.timeout,
                max_retries=self.retries,
                base_wait_time=self.retry_wait,
                max_wait_time=max(self.retry_wait, 8.0),
            )
            hf_raise_for_status(response)
            payload = response.json()
        except Exception as error:
            raise self._translate(error, what=what, repo_id=repo_id, revision=revision) from error
        try:
            return tuple(_commit_of(item) for item in payload[:limit])
        except (KeyError, TypeError, ValueError) as error:
            raise HubUnavailable(
                f"The Hub at {self.endpoint} answered {what} with unexpected data ({error})."
            ) from error

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
        """`matching_files` of the model; NoFilesMatched when none matches."""
        selected = matching_files(model.files, include, exclude)
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
        listed = {item.path: item for item in self.model_info(repo_id, commit).files}
        missing = [path for path in wanted if path not in listed]
        if missing:
            raise EntryNotFound(
                f"{', '.join(repr(path) for path in missing[:5])} not found in {repo_id} at commit"
                f" {commit} on {self.endpoint}."
            )
        self._check_download_host(repo_id, wanted[0], commit)
        return SnapshotDownload(
            endpoint=self.endpoint,
            token=self._token,
            timeout=self.timeout,
            workers=self.download_workers,
            translate=self._translate,
            repo_id=repo_id,
            commit=commit,
            dest_dir=Path(dest_dir),
            sizes={path: listed[path].size for path in wanted},
        ).run(progress)

    def feed(
        self,
        repo_id: str,
        commit: str,
        dest_dir: Path,
        files: Sequence[tuple[str, int]],
        *,
        in_memory: InMemory | None = None,
    ) -> SnapshotFeed:
        """`files` ((path, size) as listed at the pinned `commit`) downloaded into `dest_dir`
        in the order given, each readable while it arrives (`SnapshotFeed`); those
        `in_memory` keeps are kept in memory only. Use it as a context manager; digests are
        the reader's to check."""
        validate_repo_id(repo_id)
        if not isinstance(commit, str) or not COMMIT_RE.fullmatch(commit):
            raise InvalidRevision(
                f"Downloads of {repo_id} need the pinned 40-hex commit, not {str(commit)[:60]!r}."
            )
        if files:
            self._check_download_host(repo_id, files[0][0], commit)
        return SnapshotFeed(
            endpoint=self.endpoint,
            headers=self._headers(),
            token=self._token,
            timeout=self.timeout,
            translate=lambda error, what: self._translate(
                error, what=what, repo_id=repo_id, revision=commit
            ),
            repo_id=repo_id,
            commit=commit,
            dest_dir=Path(dest_dir),
            files=files,
            workers=self.download_workers,
            in_memory=in_memory,
        )

    def _check_download_host(self, repo_id: str, path: str, commit: str) -> None:
        """Refuse to download unless huggingface_hub would fetch from this client's endpoint."""
        probe = hf_hub_url(repo_id, path, revision=commit, endpoint=self.endpoint)
        if not probe.startswith(self.endpoint + "/"):
            # hf_hub_url only swaps the host when huggingface_hub.constants.ENDPOINT and its
            # URL template agree; never let a download go to another host.
            raise HubError(
                f"huggingface_hub would download from {probe.split('/resolve/')[0]} instead of"
                f" {self.endpoint}: its ENDPOINT constants were changed inconsistently."
            )

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
        translator = ErrorTranslator(
            endpoint=self.endpoint,
            has_token=self.has_token,
            retries=self.retries,
            timeout=self.timeout,
        )
        return translator(error, what=what, repo_id=repo_id, revision=revision)
