"""The repos of the double and the ways tests change them: repos, commits, refs, metadata."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

import yaml

from devservers.hub_double.model import (
    BASE_TIME,
    COMMIT_RE,
    DEFAULT_LFS_THRESHOLD,
    Commit,
    Repo,
    StoredFile,
    iso,
)


class RepoStore:
    """Repos, commits and refs behind one lock (the HTTP listeners read them from threads).

    Commit times come from a clock that ticks once per commit, so the demo repos get the same
    commit shas on every run.
    """

    def __init__(self) -> None:
        self._repos: dict[str, Repo] = {}
        self._moved: dict[str, str] = {}  # old repo id -> the id it was renamed to
        self._clock = 0
        self._lock = threading.RLock()

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

    def delete_repo(self, repo_id: str) -> None:
        """Delete a repo: its API and files answer 404 `RepoNotFound`, as a deleted repo's do
        (and the ids it was renamed from no longer redirect)."""
        with self._lock:
            self._repo(repo_id)
            del self._repos[repo_id]
            self._moved = {old: new for old, new in self._moved.items() if new != repo_id}

    def rename_repo(self, repo_id: str, new_repo_id: str) -> None:
        """Move a repo to `new_repo_id`, as the Hub's "rename or transfer" does: requests for the
        old id answer 307 with a relative `Location` under the new id (API and files alike),
        until a repo is created under the old id again."""
        if new_repo_id.count("/") != 1:
            raise ValueError(f"the double serves org/name repo ids only, not {new_repo_id!r}")
        with self._lock:
            repo = self._repo(repo_id)
            if new_repo_id in self._repos:
                raise ValueError(f"repo {new_repo_id} already exists in the double")
            del self._repos[repo_id]
            repo.repo_id = new_repo_id
            self._repos[new_repo_id] = repo
            self._moved = {old: (new_repo_id if new == repo_id else new)
                           for old, new in self._moved.items()}  # fmt: skip
            self._moved[repo_id] = new_repo_id
            self._moved.pop(new_repo_id, None)

    def _moved_to(self, repo_id: str) -> str | None:
        """The id a renamed repo answers under now; None when `repo_id` is not a renamed repo's
        old id (or a repo of that id exists again)."""
        with self._lock:
            return None if repo_id in self._repos else self._moved.get(repo_id)

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

    # ---- internals (the request handlers use them under the lock) ----------------------

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
            tree[path] = StoredFile.make(path, content, repo.is_lfs(path, content))
        moment = at or self._tick()
        digest = hashlib.sha1(usedforsecurity=False)
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
