"""A small client of Aegis's own ``/api/v1/`` for code on other machines (model loaders, CI).

Reads ``AEGIS_API_URL`` and ``AEGIS_API_TOKEN`` (or ``AEGIS_API_TOKEN_FILE``) unless given
explicitly. The token is sent only as the ``Authorization`` header and never appears in an
error message.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

API_URL_ENV = "AEGIS_API_URL"
API_TOKEN_ENV = "AEGIS_API_TOKEN"  # noqa: S105 - the variable's name
TIMEOUT_SECONDS = 30
CHUNK_BYTES = 1024 * 1024


class RegistryApiError(Exception):
    """The registry API could not answer as asked; ``status`` is its HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RegistryApi:
    """One registry's API, reached with one token (sent only in the ``Authorization`` header)."""

    base_url: str  # e.g. https://aegis.example.org (with or without /api/v1)
    token: str

    @classmethod
    def from_environment(cls, base_url: str | None = None, token: str | None = None) -> RegistryApi:
        url = (base_url or os.environ.get(API_URL_ENV, "")).strip()
        if not url:
            raise RegistryApiError(f"Set {API_URL_ENV} to the Aegis server's URL.")
        secret = token or os.environ.get(API_TOKEN_ENV, "").strip()
        token_file = os.environ.get(f"{API_TOKEN_ENV}_FILE")
        if not secret and token_file:
            try:
                secret = Path(token_file).read_text().strip()
            except OSError as error:
                raise RegistryApiError(
                    f"{API_TOKEN_ENV}_FILE points to {token_file!r}, which cannot be read: "
                    f"{error.strerror}"
                ) from None
        if not secret:
            raise RegistryApiError(
                f"Set {API_TOKEN_ENV} (or {API_TOKEN_ENV}_FILE) to an API token of the registry."
            )
        return cls(url.rstrip("/").removesuffix("/api/v1"), secret)

    @property
    def api_root(self) -> str:
        return f"{self.base_url}/api/v1"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}

    def _request(self, url: str, *, stream: bool = False) -> requests.Response:
        try:
            response = requests.get(
                url, headers=self._headers(), timeout=TIMEOUT_SECONDS, stream=stream
            )
        except requests.RequestException as error:
            raise RegistryApiError(
                f"The registry at {self.base_url} cannot be reached: {type(error).__name__}"
            ) from None
        if response.status_code != 200:
            message = _error_message(response)
            response.close()
            raise RegistryApiError(
                f"The registry answered {response.status_code} for {url}: {message}",
                response.status_code,
            )
        return response

    def _version_url(self, name: str, version: str) -> str:
        return f"{self.api_root}/models/{quote(name, safe='')}/versions/{quote(version, safe='')}"

    def version(self, name: str, version: str) -> dict[str, Any]:
        """The registry's record of one version (``GET /models/{name}/versions/{version}``)."""
        url = self._version_url(name, version)
        response = self._request(url)
        try:
            record = response.json()
        except ValueError:
            raise RegistryApiError(f"The registry's answer for {url} is not JSON") from None
        if not isinstance(record, dict):
            raise RegistryApiError(f"The registry's answer for {url} is not a JSON object")
        return record

    def download(self, name: str, version: str, kind: str, destination: Path) -> Path:
        """Stream one file of a version (``artifact``, ``attestation``, ``model-sig``, ``record``
        or ``public-key``) to ``destination``."""
        url = f"{self._version_url(name, version)}/files/{kind}"
        with self._request(url, stream=True) as response, destination.open("wb") as handle:
            response.raw.decode_content = True
            shutil.copyfileobj(response.raw, handle, CHUNK_BYTES)
        return destination


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.reason or "no reason given"
