"""The `HubError` family, and the checks of model ids, revisions and file paths that raise it.

Messages are meant for a person: they name the repo, the revision and the endpoint, never the
token. `COMMIT_RE` is the one definition of a pinned commit (40 lowercase hex digits).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

LIBRARY_NAME = "aegis-catalog"  # sent to the Hub as the library in the user agent
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_REPO_PART_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?")
MAX_REVISION_LENGTH = 200
# Where huggingface_hub keeps its bookkeeping inside a `local_dir`.
LOCAL_DIR_METADATA = (".cache", "huggingface")

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
    """The Hub could not be reached, timed out, or answered with a server error.

    `status`: the HTTP status it answered (None: no answer); `retry_after`: the seconds its
    `Retry-After` header asked to wait (a 429 or 503 answer), None when it said nothing.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class MissingFileDigests(HubError):
    """No answer of the Hub (or mirror) gives a digest to check some files against."""


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


def validate_repo_path(repo_id: str, path: str) -> str:
    """Return `path` if the Hub listed it as a safe relative path, else raise UnsafeFilePath."""
    pure = PurePosixPath(path)
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(part in {"", ".", ".."} for part in path.split("/"))
        or pure.parts[:2] == LOCAL_DIR_METADATA
    ):
        raise UnsafeFilePath(
            f"The Hub listed a file {path!r} in {repo_id} that is not a safe relative path."
        )
    return path
