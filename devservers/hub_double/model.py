"""The double's data as git on the Hub holds it: files (plain or LFS), commits and repos."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

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


def git_blob_id(content: bytes) -> str:
    """The git object id of a blob, as the Hub reports it in `blobId`/`oid`."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


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
    """One file of a commit, with the ids and digests the Hub reports for it."""

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
    """A model repo: its Hub metadata, its commits and its branches and tags (`refs`)."""

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

    def is_lfs(self, path: str, content: bytes) -> bool:
        """Whether git would store `path` with LFS in this repo."""
        return (
            path in self.lfs_paths
            or path.endswith(LFS_SUFFIXES)
            or len(content) >= self.lfs_threshold
        )
