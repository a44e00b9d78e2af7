"""Turning huggingface_hub and HTTP failures into the `HubError` family.

The messages name the endpoint, the repo and the revision and say what to do; they never carry
the token (only whether one is configured).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx2
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

from aegis_catalog.lib.hub.errors import (
    EntryNotFound,
    GatedRepo,
    HubError,
    HubUnavailable,
    InvalidRepoId,
    InvalidToken,
    LocalDiskFull,
    RepoNotFound,
    RevisionNotFound,
)


@dataclass(frozen=True)
class ErrorTranslator:
    """Translates the failures of one Hub client (its endpoint, token or not, retries, timeout)."""

    endpoint: str
    has_token: bool
    retries: int
    timeout: float

    def __call__(
        self,
        error: BaseException,
        *,
        what: str,
        repo_id: str | None = None,
        revision: str | None = None,
    ) -> HubError:
        """The HubError for `error`, met while doing `what` (a phrase naming repo and endpoint).

        Tried in order: the library's repo errors, other HTTP answers, then transfer failures;
        an error none of them knows is raised as it is.
        """
        if isinstance(error, HubError):
            return error
        translated = (
            self._repo_error(error, what=what, repo_id=repo_id, revision=revision)
            or self._http_error(error, what=what)
            or self._transfer_error(error, what=what)
        )
        if translated is None:
            raise error
        return translated

    def _repo_error(
        self, error: BaseException, *, what: str, repo_id: str | None, revision: str | None
    ) -> HubError | None:
        """huggingface_hub's own errors about the repo, its revision and its files."""
        if isinstance(error, HFValidationError):
            return InvalidRepoId(f"{what}: {error}")
        if isinstance(error, OfflineModeIsEnabled | LocalEntryNotFoundError):
            return HubUnavailable(
                f"Cannot reach the Hub at {self.endpoint} for {what}; check the network and retry."
            )
        if isinstance(error, GatedRepoError):
            if self.has_token:
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
            hint = "" if self.has_token else " (if it is private, set HF_TOKEN)"
            return RepoNotFound(f"{self.endpoint} has no model {repo_id!r}{hint}.")
        return None

    def _http_error(self, error: BaseException, *, what: str) -> HubError | None:
        """Any other HTTP error status: a refused token, a busy or failing Hub, a refusal."""
        if not isinstance(error, HfHubHTTPError):
            return None
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
                " try again later.",
                status=status,
                retry_after=retry_after(error.response.headers.get("Retry-After"))
                if error.response is not None
                else None,
            )
        server = _server_message(error)
        detail = f": {server}" if server else ""
        return HubError(f"The Hub at {self.endpoint} refused {what} (HTTP {status}){detail}.")

    def _transfer_error(self, error: BaseException, *, what: str) -> HubError | None:
        """Network, local disk and unexpected-data failures while talking to the Hub."""
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
        return None


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """The seconds a `Retry-After` header asks to wait (delay-seconds or an HTTP-date), or
    None when there is none or it cannot be read."""
    text = (value or "").strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def _server_message(error: BaseException) -> str | None:
    message = getattr(error, "server_message", None)
    return message.strip()[:300] if isinstance(message, str) and message.strip() else None
