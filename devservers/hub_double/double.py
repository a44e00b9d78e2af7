"""`HubDouble`: the repos (from `RepoStore`), the knobs tests turn, the request log, and the
start and stop of its two listeners."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING

from devservers.hub_double.messages import InjectedFault, LoggedRequest
from devservers.hub_double.model import StoredFile
from devservers.hub_double.repos import RepoStore
from devservers.hub_double.server import listen

if TYPE_CHECKING:
    from devservers.hub_double.demo import DemoRepos

DOUBLE_TOKEN = "hf_doubletesttoken0000000000000000"  # noqa: S105 - the double's fixed test token
MAX_PAGE_SIZE = 1000
COMMITS_PAGE_SIZE = 50  # the Hub's page of a commit listing


class HubDouble(RepoStore):
    """An in-process Hub: repos, commits, refs, and the HTTP listeners that serve them.

    Test knobs (plain attributes, change them at any time):
    - `tokens`: bearer tokens accepted for gated and private repos.
    - `throttle_bytes_per_second`: stream file bodies slowly (None: full speed).
    - `fail_api_with`: answer every `/api/` request with this status (e.g. 503).
    - `mirror_mode`: "hub" (huggingface.co's answers); "olah" (as the olah mirror answers: model
      info lists bare `siblings`, `rfilename` only, no top-level `pipeline_tag` and 0
      downloads, while `paths-info` and HEAD on `resolve` give sizes and digests); "blind"
      (bare siblings, no `paths-info`, HEAD without ETags); "unlinked" (as "olah", but HEAD
      without `X-Linked-Etag`: an LFS file's only ETag is the git blob id of its pointer).
    - `inject_fault(status, times=.., retry_after=.., path_contains=..)`: answer the next
      matching requests (any listener) with `status`, e.g. 429 with `Retry-After`, or 500.
    - `tree_page_size`, `max_search_page_size`, `commits_page_size`: page sizes for the tree,
      search and commit listings.
    - `rename_repo(old, new)` (the old id answers 307 to the new one), `delete_repo(repo_id)`,
      `update_repo(repo_id, gated=...)`: what happens to a repo upstream after an import.
    - `corrupt(repo_id, path)`: serve same-size, different bytes for a file.
    - `requests`: the request log; `body_fetches(repo_id, path)` counts file body downloads.
    """

    def __init__(self, *, host: str = "127.0.0.1", token: str = DOUBLE_TOKEN) -> None:
        super().__init__()
        self.host = host
        self.tokens: set[str] = {token}
        self.throttle_bytes_per_second: int | None = None
        self.fail_api_with: int | None = None
        self.mirror_mode = "hub"
        self.tree_page_size = MAX_PAGE_SIZE
        self.commits_page_size = COMMITS_PAGE_SIZE
        self.max_search_page_size = MAX_PAGE_SIZE
        self.requests: list[LoggedRequest] = []
        self.faults: list[InjectedFault] = []
        self._corrupted: set[tuple[str, str]] = set()
        self._signing_key = secrets.token_bytes(32)
        self._servers: list[ThreadingHTTPServer] = []
        self.url = ""
        self.cdn_url = ""
        self.demo: DemoRepos | None = None  # set by demo_repos()

    @property
    def token(self) -> str:
        """One accepted token (the one given to the constructor, unless changed)."""
        return sorted(self.tokens)[0]

    # ---- life cycle -------------------------------------------------------------------

    def start(self, port: int = 0, cdn_port: int = 0) -> HubDouble:
        hub = self._listen(port, "hub")
        cdn = self._listen(cdn_port, "cdn")
        self.url = f"http://{self.host}:{hub.server_address[1]}"
        self.cdn_url = f"http://{self.host}:{cdn.server_address[1]}"
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> HubDouble:
        return self.start() if not self._servers else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _listen(self, port: int, listener: str) -> ThreadingHTTPServer:
        server = listen(self, self.host, port, listener)
        self._servers.append(server)
        return server

    # ---- knobs --------------------------------------------------------------------------

    def corrupt(self, repo_id: str, path: str) -> None:
        """Serve different bytes of the same size for `path` (metadata keeps the true digests)."""
        with self._lock:
            self._corrupted.add((repo_id, path))

    def uncorrupt(self, repo_id: str, path: str) -> None:
        with self._lock:
            self._corrupted.discard((repo_id, path))

    def inject_fault(
        self,
        status: int,
        *,
        times: int | None = 1,
        retry_after: int | None = None,
        path_contains: str = "",
        methods: tuple[str, ...] = (),
    ) -> InjectedFault:
        """Answer the next `times` matching requests (None: all, until `clear_faults()`)
        with `status`; the fault is returned so a test can see or change what is left."""
        fault = InjectedFault(status, times, retry_after, path_contains, methods)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def body_fetches(self, repo_id: str, path: str) -> int:
        """How many times the bytes of `path` were sent (resolve or CDN GET, 200 or 206)."""
        with self._lock:
            return sum(
                1
                for entry in self.requests
                if entry.served_file == (repo_id, path) and entry.method == "GET"
            )

    # ---- for the request handlers ---------------------------------------------------------

    def _take_fault(self, method: str, target: str) -> InjectedFault | None:
        with self._lock:
            return next((fault for fault in self.faults if fault.take(method, target)), None)

    def _log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(entry)

    def _sign(self, path: str) -> str:
        return hmac.new(self._signing_key, path.encode(), hashlib.sha256).hexdigest()

    def _served_bytes(self, repo_id: str, stored: StoredFile) -> bytes:
        if (repo_id, stored.path) not in self._corrupted or not stored.content:
            return stored.content
        corrupted = bytearray(stored.content)
        for index in {0, len(corrupted) // 2, len(corrupted) - 1}:
            corrupted[index] ^= 0xFF
        return bytes(corrupted)
