"""A local HTTP double of the Hugging Face Hub.

It speaks the part of the Hub's HTTP contract that `huggingface_hub` 2.4 uses (see
CONTRACTS.md): model search with `Link` paging, model info with file metadata, the
recursive tree listing, and `/resolve/` downloads with `X-Repo-Commit`, ETags, `Range`
and a 302 to a separate "CDN" listener for LFS files (a different origin, so the real
client drops its `Authorization` header exactly as it does against huggingface.co).

Usage in tests::

    double = HubDouble().start()
    sha = double.add_repo("acme/x", {"config.json": b"{}"})
    ...
    double.stop()

Run by hand with the demo repos: ``python -m tests.hub_double --port 8765``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import pickle
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import yaml

DOUBLE_TOKEN = "hf_doubletesttoken0000000000000000"
BASE_TIME = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
DEFAULT_LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub requires LFS above 10 MB
# Suffixes the Hub's default .gitattributes tracks with LFS (the model-weight ones matter here).
LFS_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".h5",
    ".onnx",
    ".gguf",
    ".msgpack",
    ".pkl",
    ".pickle",
    ".npy",
    ".npz",
    ".tflite",
    ".ot",
    ".joblib",
    ".zip",
    ".tar.gz",
)
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
MAX_PAGE_SIZE = 1000
SORT_KEYS = {
    "downloads": "downloads",
    "likes": "likes",
    "lastModified": "lastModified",
    "createdAt": "createdAt",
    "trendingScore": "likes",
    "id": "id",
}


def git_blob_id(content: bytes) -> str:
    """The git object id of a blob, as the Hub reports it in `blobId`/`oid`."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(content: bytes) -> bytes:
    """The Git LFS pointer file that git stores in place of an LFS file."""
    digest = hashlib.sha256(content).hexdigest()
    return b"version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (
        digest.encode(),
        len(content),
    )


def iso(moment: datetime) -> str:
    """The Hub's timestamp format: `2024-03-01T12:00:00.000Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_front_matter(readme: bytes) -> dict[str, Any] | None:
    """The YAML front matter of a model card, or None when it has none."""
    text = readme.decode("utf-8", errors="replace")
    match = re.match(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", text, flags=re.DOTALL)
    if match is None:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class StoredFile:
    path: str
    content: bytes
    is_lfs: bool
    blob_id: str
    sha256: str
    pointer_size: int | None

    @classmethod
    def make(cls, path: str, content: bytes, is_lfs: bool) -> StoredFile:
        pointer = lfs_pointer(content) if is_lfs else None
        return cls(
            path=path,
            content=content,
            is_lfs=is_lfs,
            blob_id=git_blob_id(pointer if pointer is not None else content),
            sha256=hashlib.sha256(content).hexdigest(),
            pointer_size=len(pointer) if pointer is not None else None,
        )

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass(frozen=True)
class Commit:
    sha: str
    time: datetime
    message: str
    parent: str | None
    files: Mapping[str, StoredFile]


@dataclass
class Repo:
    repo_id: str
    gated: bool | str
    private: bool
    tags: list[str]
    pipeline_tag: str | None
    library_name: str | None
    downloads: int
    likes: int
    lfs_threshold: int
    lfs_paths: set[str]
    created_at: datetime
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    @property
    def author(self) -> str:
        return self.repo_id.split("/", 1)[0]


@dataclass(frozen=True)
class LoggedRequest:
    """One request the double answered."""

    method: str
    path: str  # raw request target, query string included
    headers: Mapping[str, str]  # lower-cased names
    status: int
    listener: str  # "hub" or "cdn"
    served_file: tuple[str, str] | None  # (repo_id, path) when file bytes were sent


class HubError(Exception):
    """An error answer: status, X-Error-Code and message (raised inside the handler)."""

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


@dataclass
class InjectedFault:
    """Answer matching requests with `status` (and `Retry-After` when set), `remaining` times
    (None: until removed). Matches when `path_contains` is in the request target and the
    method is in `methods` (empty: any)."""

    status: int
    remaining: int | None = 1
    retry_after: int | None = None
    path_contains: str = ""
    methods: tuple[str, ...] = ()

    def take(self, method: str, target: str) -> bool:
        if self.remaining == 0 or self.path_contains not in target:
            return False
        if self.methods and method not in self.methods:
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


class HubDouble:
    """An in-process Hub: repos, commits, refs, and the HTTP listeners that serve them.

    Test knobs (plain attributes, change them at any time):
    - `tokens`: bearer tokens accepted for gated and private repos.
    - `throttle_bytes_per_second`: stream file bodies slowly (None: full speed).
    - `fail_api_with`: answer every `/api/` request with this status (e.g. 503).
    - `inject_fault(status, times=.., retry_after=.., path_contains=..)`: answer the next
      matching requests (any listener) with `status`, e.g. 429 with `Retry-After`, or 500.
    - `tree_page_size`, `max_search_page_size`: page sizes for the tree and search listings.
    - `corrupt(repo_id, path)`: serve same-size, different bytes for a file.
    - `requests`: the request log; `body_fetches(repo_id, path)` counts file body downloads.
    """

    def __init__(self, *, host: str = "127.0.0.1", token: str = DOUBLE_TOKEN) -> None:
        self.host = host
        self.tokens: set[str] = {token}
        self.throttle_bytes_per_second: int | None = None
        self.fail_api_with: int | None = None
        self.tree_page_size = MAX_PAGE_SIZE
        self.max_search_page_size = MAX_PAGE_SIZE
        self.requests: list[LoggedRequest] = []
        self.faults: list[InjectedFault] = []
        self._repos: dict[str, Repo] = {}
        self._corrupted: set[tuple[str, str]] = set()
        self._clock = 0
        self._lock = threading.RLock()
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
        double = self

        class Handler(_Handler):
            pass

        Handler.double = double
        Handler.listener = listener
        server = ThreadingHTTPServer((self.host, port), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"hub-double-{listener}",
            daemon=True,
        )
        thread.start()
        self._servers.append(server)
        return server

    # ---- data -------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str],
        *,
        card_data: Mapping[str, Any] | None = None,
        card_text: str = "",
        lfs_threshold: int = DEFAULT_LFS_THRESHOLD,
        lfs_paths: Iterable[str] = (),
        gated: bool | str = False,
        private: bool = False,
        tags: Iterable[str] = (),
        pipeline_tag: str | None = None,
        library_name: str | None = None,
        downloads: int = 0,
        likes: int = 0,
        message: str = "Initial commit",
        commit_time: datetime | None = None,
    ) -> str:
        """Create a repo with one commit on `main`; return the commit sha.

        `card_data` (+ `card_text`) writes README.md with YAML front matter; a README.md in
        `files` is used as given. `gated=True` means "manual" as the Hub reports it.
        """
        if repo_id.count("/") != 1:
            raise ValueError(f"the double serves org/name repo ids only, not {repo_id!r}")
        all_files: dict[str, bytes | str] = dict(files)
        if card_data is not None:
            front = yaml.safe_dump(dict(card_data), sort_keys=False, allow_unicode=True)
            all_files["README.md"] = f"---\n{front}---\n{card_text}"
        with self._lock:
            if repo_id in self._repos:
                raise ValueError(f"repo {repo_id} already exists in the double")
            moment = commit_time or self._tick()
            repo = Repo(
                repo_id=repo_id,
                gated="manual" if gated is True else gated,
                private=private,
                tags=list(tags),
                pipeline_tag=pipeline_tag,
                library_name=library_name,
                downloads=downloads,
                likes=likes,
                lfs_threshold=lfs_threshold,
                lfs_paths=set(lfs_paths),
                created_at=moment,
            )
            self._repos[repo_id] = repo
            return self._commit(repo, "main", all_files, replace=True, message=message, at=moment)

    def add_commit(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str | None],
        *,
        branch: str = "main",
        replace: bool = False,
        message: str = "Update files",
        commit_time: datetime | None = None,
    ) -> str:
        """Commit on top of `branch` (created from main if missing) and move it; return the sha.

        `files` are merged into the branch's tree (a None value deletes a path), or replace it
        entirely with `replace=True`. Older commits stay resolvable by sha.
        """
        with self._lock:
            repo = self._repo(repo_id)
            if branch not in repo.refs:
                repo.refs[branch] = repo.refs["main"]
            return self._commit(
                repo, branch, files, replace=replace, message=message, at=commit_time
            )

    def set_ref(self, repo_id: str, name: str, revision: str) -> None:
        """Point a branch or tag `name` at `revision` (a ref name or a commit sha)."""
        with self._lock:
            repo = self._repo(repo_id)
            repo.refs[name] = self._resolve(repo, revision)

    def update_repo(self, repo_id: str, **attributes: Any) -> None:
        """Change repo-level metadata: gated, private, tags, downloads, likes, ..."""
        with self._lock:
            repo = self._repo(repo_id)
            for name, value in attributes.items():
                if not hasattr(repo, name) or name in {"repo_id", "commits", "refs"}:
                    raise ValueError(f"unknown repo attribute {name!r}")
                setattr(repo, name, "manual" if name == "gated" and value is True else value)

    def resolve(self, repo_id: str, revision: str = "main") -> str:
        """The commit sha a branch, tag or sha resolves to."""
        with self._lock:
            return self._resolve(self._repo(repo_id), revision)

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The true bytes of every file at a revision."""
        with self._lock:
            repo = self._repo(repo_id)
            commit = repo.commits[self._resolve(repo, revision)]
        return {path: stored.content for path, stored in commit.files.items()}

    def file_info(self, repo_id: str, path: str, revision: str = "main") -> StoredFile:
        with self._lock:
            repo = self._repo(repo_id)
            return repo.commits[self._resolve(repo, revision)].files[path]

    def repo_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._repos)

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

    def _take_fault(self, method: str, target: str) -> InjectedFault | None:
        with self._lock:
            return next((fault for fault in self.faults if fault.take(method, target)), None)

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

    # ---- internals ----------------------------------------------------------------------

    def _tick(self) -> datetime:
        self._clock += 1
        return BASE_TIME + timedelta(hours=self._clock, seconds=self._clock * 7)

    def _repo(self, repo_id: str) -> Repo:
        try:
            return self._repos[repo_id]
        except KeyError:
            raise KeyError(f"no repo {repo_id} in the double") from None

    def _resolve(self, repo: Repo, revision: str) -> str:
        if revision in repo.refs:
            return repo.refs[revision]
        if COMMIT_RE.fullmatch(revision) and revision in repo.commits:
            return revision
        raise KeyError(f"no revision {revision!r} in {repo.repo_id}")

    def _is_lfs(self, repo: Repo, path: str, content: bytes) -> bool:
        return (
            path in repo.lfs_paths
            or path.endswith(LFS_SUFFIXES)
            or len(content) >= repo.lfs_threshold
        )

    def _commit(
        self,
        repo: Repo,
        branch: str,
        files: Mapping[str, bytes | str | None],
        *,
        replace: bool,
        message: str,
        at: datetime | None,
    ) -> str:
        parent = repo.refs.get(branch)
        tree: dict[str, StoredFile] = {}
        if parent is not None and not replace:
            tree.update(repo.commits[parent].files)
        for path, value in files.items():
            if path.startswith("/") or ".." in path.split("/") or path.endswith("/"):
                raise ValueError(f"bad repo path {path!r}")
            if value is None:
                tree.pop(path, None)
                continue
            content = value.encode() if isinstance(value, str) else bytes(value)
            tree[path] = StoredFile.make(path, content, self._is_lfs(repo, path, content))
        moment = at or self._tick()
        digest = hashlib.sha1()
        digest.update(f"{repo.repo_id}\n{parent}\n{message}\n{iso(moment)}\n".encode())
        for path in sorted(tree):
            digest.update(f"{path} {tree[path].blob_id}\n".encode())
        sha = digest.hexdigest()
        repo.commits[sha] = Commit(
            sha=sha,
            time=moment,
            message=message,
            parent=parent,
            files=MappingProxyType(dict(sorted(tree.items()))),
        )
        repo.refs[branch] = sha
        return sha

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

    # Views of the data, as the Hub's JSON --------------------------------------------------

    def _effective_tags(self, repo: Repo, commit: Commit) -> list[str]:
        card = self._card_data(commit) or {}
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

    @staticmethod
    def _card_data(commit: Commit) -> dict[str, Any] | None:
        readme = commit.files.get("README.md")
        return parse_front_matter(readme.content) if readme is not None else None

    def _summary(self, repo: Repo, commit: Commit) -> dict[str, Any]:
        return {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
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
            "tags": self._effective_tags(repo, commit),
            "pipeline_tag": repo.pipeline_tag,
        }

    def _info(self, repo: Repo, commit: Commit, *, blobs: bool) -> dict[str, Any]:
        info = self._summary(repo, commit)
        card = self._card_data(commit)
        if card is not None:
            info["cardData"] = card
        config = commit.files.get("config.json")
        if config is not None:
            try:
                parsed = json.loads(config.content)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                info["config"] = {
                    key: parsed[key] for key in ("architectures", "model_type") if key in parsed
                }
        siblings = []
        for stored in commit.files.values():
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
            siblings.append(sibling)
        info["siblings"] = siblings
        info["spaces"] = []
        info["usedStorage"] = sum(stored.size for stored in commit.files.values())
        return info

    def _tree_entries(self, commit: Commit, prefix: str, recursive: bool) -> list[dict[str, Any]]:
        base = f"{prefix}/" if prefix else ""
        directories: set[str] = set()
        files: list[StoredFile] = []
        for path, stored in commit.files.items():
            if not path.startswith(base):
                continue
            rest = path[len(base) :]
            parts = rest.split("/")
            if recursive:
                for depth in range(1, len(parts)):
                    directories.add(base + "/".join(parts[:depth]))
                files.append(stored)
            elif len(parts) == 1:
                files.append(stored)
            else:
                directories.add(base + parts[0])
        entries: list[dict[str, Any]] = []
        for directory in directories:
            oid = hashlib.sha1(f"tree {commit.sha} {directory}".encode()).hexdigest()
            entries.append({"type": "directory", "oid": oid, "size": 0, "path": directory})
        for stored in files:
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
            entries.append(entry)
        return sorted(entries, key=lambda entry: entry["path"])


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_cursor(value: str) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(value.encode()))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise HubError(400, None, "Invalid cursor") from None
    if not isinstance(offset, int) or offset < 0:
        raise HubError(400, None, "Invalid cursor")
    return offset


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "HubDouble/1.0"
    double: HubDouble
    listener: str
    timeout = 60

    # Quiet: tests read the request log instead.
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    # ---- plumbing -----------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        self._status = 0
        self._served: tuple[str, str] | None = None
        split = urlsplit(self.path)
        self._query = parse_qs(split.query, keep_blank_values=True)
        try:
            self._route(method, split.path)
        except HubError as error:
            self._send_error(error)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self.double._log(
                LoggedRequest(
                    method=method,
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    status=self._status,
                    listener=self.listener,
                    served_file=self._served,
                )
            )

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def _send(
        self,
        status: int,
        body: bytes,
        headers: Mapping[str, str],
        *,
        head: bool,
        throttle: bool = False,
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", f"Root={secrets.token_hex(8)}")
        self.end_headers()
        if head or not body:
            return
        rate = self.double.throttle_bytes_per_second if throttle else None
        if not rate:
            self.wfile.write(body)
            return
        chunk = max(1, min(64 * 1024, rate // 20))
        for start in range(0, len(body), chunk):
            piece = body[start : start + chunk]
            self.wfile.write(piece)
            self.wfile.flush()
            time.sleep(len(piece) / rate)

    def _send_json(
        self, data: Any, *, head: bool, headers: Mapping[str, str] | None = None
    ) -> None:
        body = json.dumps(data).encode()
        all_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        self._send(200, body, all_headers, head=head)

    def _send_error(self, error: HubError) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8", **error.headers}
        if error.code:
            headers["X-Error-Code"] = error.code
        headers["X-Error-Message"] = error.message
        body = json.dumps({"error": error.message}).encode()
        self._send(error.status, body, headers, head=self.command == "HEAD")

    def _param(self, name: str) -> str | None:
        values = self._query.get(name)
        return values[-1] if values else None

    def _auth(self) -> str:
        """'none', 'valid'; an unknown token is refused like the Hub refuses it."""
        header = self.headers.get("Authorization")
        if header is None:
            return "none"
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.double.tokens:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        return "valid"

    # ---- routing ------------------------------------------------------------------------

    def _route(self, method: str, raw_path: str) -> None:
        segments = raw_path.split("/")[1:]
        head = method == "HEAD"
        fault = self.double._take_fault(method, self.path)
        if fault is not None:
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            message = "Too Many Requests" if fault.status == 429 else "Injected failure"
            raise HubError(fault.status, None, message, headers)
        if self.listener == "cdn" or segments[:1] == ["cdn"]:
            if segments[:1] == ["cdn"] and method in {"GET", "HEAD"}:
                self._cdn(segments[1:], head=head)
                return
            raise HubError(404, None, "Not Found")
        if segments[:1] == ["api"]:
            if self.double.fail_api_with is not None:
                raise HubError(
                    self.double.fail_api_with, None, "The Hub double is failing on purpose"
                )
            if method not in {"GET", "HEAD"}:
                raise HubError(405, None, "Method not allowed")
            if segments == ["api", "models"]:
                self._search(head=head)
                return
            if segments[:2] == ["api", "models"] and len(segments) >= 4:
                self._model_api(segments[2:], head=head)
                return
            raise HubError(404, None, "Sorry, we can't find the page you are looking for.")
        if len(segments) >= 5 and segments[2] == "resolve" and method in {"GET", "HEAD"}:
            repo_id = f"{unquote(segments[0])}/{unquote(segments[1])}"
            revision = unquote(segments[3])
            path = unquote("/".join(segments[4:]))
            self._resolve_file(repo_id, revision, path, head=head)
            return
        raise HubError(404, None, "Sorry, we can't find the page you are looking for.")

    def _lookup_repo(self, repo_id: str) -> tuple[Repo, str]:
        auth = self._auth()
        repo = self.double._repos.get(repo_id)
        if repo is None or (repo.private and auth != "valid"):
            # Like the Hub: 401 when anonymous (so private repos do not leak), 404 otherwise.
            status = 401 if auth == "none" else 404
            raise HubError(status, "RepoNotFound", "Repository not found")
        return repo, auth

    def _lookup_commit(self, repo: Repo, revision: str) -> Commit:
        try:
            return repo.commits[self.double._resolve(repo, revision)]
        except KeyError:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}") from None

    def _model_api(self, segments: list[str], *, head: bool) -> None:
        repo_id = f"{unquote(segments[0])}/{unquote(segments[1])}"
        rest = segments[2:]
        with self.double._lock:
            repo, _auth = self._lookup_repo(repo_id)
            if not rest:
                commit = self._lookup_commit(repo, "main")
                info = self.double._info(repo, commit, blobs=self._param("blobs") == "true")
            elif rest[0] == "revision" and len(rest) >= 2:
                commit = self._lookup_commit(repo, unquote("/".join(rest[1:])))
                info = self.double._info(repo, commit, blobs=self._param("blobs") == "true")
            elif rest[0] == "tree" and len(rest) >= 2:
                commit = self._lookup_commit(repo, unquote(rest[1]))
                prefix = unquote("/".join(rest[2:])).strip("/")
                recursive = self._param("recursive") in {"true", "True", "1"}
                entries = self.double._tree_entries(commit, prefix, recursive)
                if prefix and not entries:
                    raise HubError(
                        404,
                        "EntryNotFound",
                        f"{prefix} does not exist on {commit.sha}",
                        {"X-Repo-Commit": commit.sha},
                    )
                self._send_page(entries, self.double.tree_page_size, head=head)
                return
            else:
                raise HubError(404, None, "Sorry, we can't find the page you are looking for.")
        self._send_json(info, head=head)

    def _send_page(self, items: list[dict[str, Any]], page_size: int, *, head: bool) -> None:
        cursor = self._param("cursor")
        offset = _decode_cursor(cursor) if cursor else 0
        page = items[offset : offset + page_size]
        headers = {}
        if offset + page_size < len(items):
            params = [(k, v) for k, values in self._query.items() if k != "cursor" for v in values]
            params.append(("cursor", _encode_cursor(offset + page_size)))
            path = urlsplit(self.path).path
            headers["Link"] = f'<{self.double.url}{path}?{urlencode(params)}>; rel="next"'
        self._send_json(page, head=head, headers=headers)

    def _search(self, *, head: bool) -> None:
        auth = self._auth()
        search = (self._param("search") or "").lower()
        filters = self._query.get("filter", [])
        author = self._param("author")
        pipeline_tag = self._param("pipeline_tag")
        gated = self._param("gated")
        sort = self._param("sort")
        direction = self._param("direction") or "-1"
        limit_text = self._param("limit")
        try:
            limit = int(limit_text) if limit_text else self.double.max_search_page_size
        except ValueError:
            raise HubError(400, None, "Invalid limit") from None
        if limit < 1:
            raise HubError(400, None, "Invalid limit")
        if sort is not None and sort not in SORT_KEYS:
            raise HubError(400, None, f"Invalid sort parameter: {sort}")
        if direction not in {"-1", "1"}:
            raise HubError(400, None, "Invalid direction")
        with self.double._lock:
            rows = []
            for repo in self.double._repos.values():
                if repo.private and auth != "valid":
                    continue
                summary = self.double._summary(repo, repo.commits[repo.refs["main"]])
                if search and search not in repo.repo_id.lower():
                    continue
                if author and repo.author != author:
                    continue
                if pipeline_tag and repo.pipeline_tag != pipeline_tag:
                    continue
                if gated is not None and bool(repo.gated) != (gated == "true"):
                    continue
                matches = {*summary["tags"], repo.pipeline_tag, repo.library_name}
                if any(value not in matches for value in filters):
                    continue
                rows.append(summary)
        rows.sort(key=lambda row: row["id"])
        if sort is not None:
            key = SORT_KEYS[sort]
            rows.sort(key=lambda row: row[key], reverse=direction == "-1")
        self._send_page(rows, min(limit, self.double.max_search_page_size), head=head)

    def _resolve_file(self, repo_id: str, revision: str, path: str, *, head: bool) -> None:
        with self.double._lock:
            repo, auth = self._lookup_repo(repo_id)
            commit = self._lookup_commit(repo, revision)
            # The model card and .gitattributes of a gated repo are public, like on the Hub.
            if repo.gated and auth != "valid" and path not in {"README.md", ".gitattributes"}:
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
            body = self.double._served_bytes(repo_id, stored)
        common = {"X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes", "Vary": "Origin"}
        if stored.is_lfs:
            cdn_path = f"/cdn/{quote(repo_id)}/{commit.sha}/{quote(path)}"
            location = f"{self.double.cdn_url}{cdn_path}?sig={self.double._sign(cdn_path)}"
            text = f"Found. Redirecting to {location}".encode()
            headers = {
                **common,
                "Location": location,
                "ETag": f'"{stored.blob_id}"',
                "X-Linked-Etag": f'"{stored.sha256}"',
                "X-Linked-Size": str(stored.size),
                "Content-Type": "text/plain; charset=utf-8",
            }
            self._send(302, text, headers, head=head)
            return
        headers = {
            **common,
            "ETag": f'"{stored.blob_id}"',
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Disposition": f'inline; filename="{quote(path.rsplit("/", 1)[-1])}"',
        }
        self._send_body(repo_id, stored.path, body, headers, head=head)

    def _cdn(self, segments: list[str], *, head: bool) -> None:
        if len(segments) < 4:
            raise HubError(404, None, "Not Found")
        cdn_path = "/cdn/" + "/".join(segments)
        if not hmac.compare_digest(self._param("sig") or "", self.double._sign(cdn_path)):
            raise HubError(403, None, "Request has expired or the signature does not match")
        if "Authorization" in self.headers:
            # A signed storage URL refuses a second authentication mechanism (as S3 does).
            raise HubError(400, None, "Only one auth mechanism allowed")
        repo_id = f"{unquote(segments[0])}/{unquote(segments[1])}"
        sha, path = segments[2], unquote("/".join(segments[3:]))
        with self.double._lock:
            stored = self.double._repos[repo_id].commits[sha].files[path]
            body = self.double._served_bytes(repo_id, stored)
        headers = {
            "ETag": f'"{stored.sha256}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{quote(path.rsplit("/", 1)[-1])}"',
        }
        self._send_body(repo_id, path, body, headers, head=head)

    def _send_body(
        self, repo_id: str, path: str, body: bytes, headers: dict[str, str], *, head: bool
    ) -> None:
        status, start, end = 200, 0, len(body)
        range_header = self.headers.get("Range")
        if range_header:
            match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", range_header)
            if match is None or match.group(1) == match.group(2) == "":
                raise HubError(
                    416, None, "Invalid range", {"Content-Range": f"bytes */{len(body)}"}
                )
            first, last = match.groups()
            if first == "":
                start, end = max(0, len(body) - int(last)), len(body)
            else:
                start = int(first)
                end = min(len(body), int(last) + 1) if last else len(body)
            if start >= len(body) or start >= end:
                raise HubError(
                    416, None, "Range Not Satisfiable", {"Content-Range": f"bytes */{len(body)}"}
                )
            status = 206
            headers = {**headers, "Content-Range": f"bytes {start}-{end - 1}/{len(body)}"}
        if not head:
            self._served = (repo_id, path)
        self._send(status, body[start:end], headers, head=head, throttle=True)


# ---- demo data ----------------------------------------------------------------------------


def _safetensors_bytes(seed: int, shape: tuple[int, ...] = (4, 8)) -> bytes:
    import numpy as np
    from safetensors.numpy import save

    generator = np.random.default_rng(seed)
    tensors = {
        "embeddings.weight": generator.standard_normal(shape).astype(np.float32),
        "classifier.bias": np.arange(shape[0], dtype=np.float32),
    }
    return save(tensors, metadata={"format": "np"})


class _Exploit:
    """Pickles to a call of os.system: what a pickle scanner must flag (never unpickle it)."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        import os

        return (os.system, ("echo owned-by-pickle",))


GITATTRIBUTES = (
    "*.bin filter=lfs diff=lfs merge=lfs -text\n"
    "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    "*.pt filter=lfs diff=lfs merge=lfs -text\n"
)

HOSTILE_CARD = """
# Totally normal model

<script>alert(1)</script>

<img src=x onerror=alert(1)>

[click me](javascript:alert(1)) and <a href="javascript:alert(1)">this link</a>

<iframe src="https://example.invalid/"></iframe>

<div onmouseover="alert(1)" style="background:url(javascript:alert(1))">hover</div>
"""


@dataclass(frozen=True)
class DemoRepos:
    """Commit shas of the demo repos, oldest first."""

    commits: Mapping[str, tuple[str, ...]]

    def latest(self, repo_id: str) -> str:
        return self.commits[repo_id][-1]


def demo_repos(double: HubDouble) -> DemoRepos:
    """Add realistic small repos: see the names below; returns their commit shas."""
    commits: dict[str, list[str]] = {}

    def record(repo_id: str, sha: str) -> None:
        commits.setdefault(repo_id, []).append(sha)

    bert_card = {
        "license": "apache-2.0",
        "language": ["en"],
        "library_name": "transformers",
        "pipeline_tag": "fill-mask",
        "tags": ["bert", "tiny"],
        "datasets": ["wikitext"],
        "base_model": "google-bert/bert-base-uncased",
    }
    bert_config = {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "hidden_size": 8,
        "num_hidden_layers": 1,
    }
    record(
        "acme/tiny-bert",
        double.add_repo(
            "acme/tiny-bert",
            {
                ".gitattributes": GITATTRIBUTES,
                "config.json": json.dumps(bert_config, indent=2),
                "model.safetensors": _safetensors_bytes(1),
                "tokenizer/vocab.txt": "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n",
                "tokenizer/tokenizer_config.json": json.dumps({"do_lower_case": True}),
            },
            card_data=bert_card,
            card_text="\n# Tiny BERT\n\nA very small BERT for tests.\n",
            tags=["bert", "fill-mask", "tiny"],
            pipeline_tag="fill-mask",
            library_name="transformers",
            downloads=125_000,
            likes=42,
        ),
    )
    double.set_ref("acme/tiny-bert", "v1.0", commits["acme/tiny-bert"][0])
    record(
        "acme/tiny-bert",
        double.add_commit(
            "acme/tiny-bert",
            {
                "config.json": json.dumps({**bert_config, "hidden_dropout_prob": 0.1}, indent=2),
                "model.safetensors": _safetensors_bytes(2),
            },
            message="Retrain with dropout",
        ),
    )

    plain_weights = {"layer.weight": [[0.5, -0.25], [1.0, 2.0]], "layer.bias": [0.0, 0.1]}
    record(
        "acme/pickled-net",
        double.add_repo(
            "acme/pickled-net",
            {
                ".gitattributes": GITATTRIBUTES,
                "config.json": json.dumps({"model_type": "mlp"}),
                "pytorch_model.bin": pickle.dumps(plain_weights, protocol=2),
            },
            card_data={"license": "mit", "library_name": "pytorch", "tags": ["pickle"]},
            card_text="\n# Pickled net\n\nWeights stored with pickle.\n",
            tags=["pytorch"],
            library_name="pytorch",
            pipeline_tag="tabular-classification",
            downloads=900,
            likes=3,
        ),
    )
    record(
        "acme/evil-pickle",
        double.add_repo(
            "acme/evil-pickle",
            {
                "config.json": json.dumps({"model_type": "mlp"}),
                "pytorch_model.bin": pickle.dumps({"weights": _Exploit()}, protocol=2),
            },
            card_data={"license": "mit", "library_name": "pytorch"},
            card_text="\n# Do not load\n",
            library_name="pytorch",
            downloads=5,
        ),
    )
    record(
        "acme/gated-llama",
        double.add_repo(
            "acme/gated-llama",
            {
                ".gitattributes": GITATTRIBUTES,
                "config.json": json.dumps({"model_type": "llama"}),
                "model.safetensors": _safetensors_bytes(3),
            },
            card_data={
                "license": "llama2",
                "pipeline_tag": "text-generation",
                "extra_gated_prompt": "Agree to the license to access this model.",
            },
            card_text="\n# Gated llama\n\nYou need to accept the license.\n",
            gated="manual",
            tags=["llama"],
            pipeline_tag="text-generation",
            library_name="transformers",
            downloads=50_000,
            likes=300,
        ),
    )
    record(
        "acme/private-model",
        double.add_repo(
            "acme/private-model",
            {"config.json": "{}", "model.safetensors": _safetensors_bytes(4)},
            card_data={"license": "other"},
            private=True,
            library_name="transformers",
        ),
    )
    record(
        "acme/hostile-card",
        double.add_repo(
            "acme/hostile-card",
            {
                "config.json": json.dumps({"model_type": "bert"}),
                "model.safetensors": _safetensors_bytes(5),
            },
            card_data={"license": "mit", "tags": ["<script>alert(1)</script>"]},
            card_text=HOSTILE_CARD,
            tags=["bert"],
            library_name="transformers",
            pipeline_tag="text-classification",
            downloads=10,
        ),
    )
    record(
        "acme/no-card",
        double.add_repo(
            "acme/no-card",
            {"config.json": "{}", "weights/part-1.safetensors": _safetensors_bytes(6)},
            library_name="transformers",
        ),
    )

    tasks = [
        "text-classification",
        "text-generation",
        "image-classification",
        "token-classification",
    ]
    libraries = ["transformers", "timm", "sentence-transformers"]
    licenses = ["mit", "apache-2.0", "cc-by-4.0"]
    small_weights = _safetensors_bytes(7, (2, 2))
    for index in range(30):
        repo_id = f"demo-org/model-{index:02d}"
        task = tasks[index % len(tasks)]
        library = libraries[index % len(libraries)]
        license_id = licenses[index % len(licenses)]
        record(
            repo_id,
            double.add_repo(
                repo_id,
                {
                    "config.json": json.dumps({"model_type": "demo", "index": index}),
                    "model.safetensors": small_weights,
                },
                card_data={"license": license_id, "pipeline_tag": task, "library_name": library},
                card_text=f"\n# Demo model {index}\n",
                tags=[library, task, "demo"],
                pipeline_tag=task,
                library_name=library,
                downloads=(index * 7919) % 10_000,
                likes=(index * 37) % 101,
            ),
        )
    demo = DemoRepos(commits=MappingProxyType({k: tuple(v) for k, v in commits.items()}))
    double.demo = demo
    return demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the Hub double with demo repos.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cdn-port", type=int, default=0)
    arguments = parser.parse_args(argv)
    double = HubDouble(host=arguments.host)
    demo_repos(double)
    double.start(arguments.port, arguments.cdn_port)
    print(
        f"Hub double at {double.url} (CDN {double.cdn_url});"
        f" token for gated/private repos: {double.token}"
    )
    print("Repos: " + ", ".join(double.repo_ids()[:8]) + ", ...", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        double.stop()


if __name__ == "__main__":
    main()
