"""Requests and answers of the double: what a route handler gets and returns, the Hub's error
answers (typed by `X-Error-Code`), cursor paging with `Link` headers, and the request log."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from devservers.hub_double.model import Commit, Repo

if TYPE_CHECKING:
    from devservers.hub_double.double import HubDouble

JSON_TYPE = "application/json; charset=utf-8"
NOT_FOUND_PAGE = "Sorry, we can't find the page you are looking for."


class HubError(Exception):
    """An error answer: status, X-Error-Code and message (raised inside the handlers)."""

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

    def error(self) -> HubError:
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        message = "Too Many Requests" if self.status == 429 else "Injected failure"
        return HubError(self.status, None, message, headers)


@dataclass(frozen=True)
class LoggedRequest:
    """One request the double answered."""

    method: str
    path: str  # raw request target, query string included
    headers: Mapping[str, str]  # lower-cased names
    status: int
    listener: str  # "hub" or "cdn"
    served_file: tuple[str, str] | None  # (repo_id, path) when file bytes were sent


@dataclass(frozen=True)
class HubRequest:
    """One request as the route handlers see it."""

    double: HubDouble
    listener: str  # "hub" or "cdn"
    method: str
    target: str  # raw request target, query string included
    path: str  # the target's path, still %-encoded
    query: Mapping[str, list[str]]
    headers: Message
    body: bytes = b""

    def param(self, name: str) -> str | None:
        """The last value of query parameter `name` (None when absent)."""
        values = self.query.get(name)
        return values[-1] if values else None

    def auth(self) -> str:
        """'none', 'valid'; an unknown token is refused like the Hub refuses it."""
        header = self.headers.get("Authorization")
        if header is None:
            return "none"
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.double.tokens:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        return "valid"

    def visible_repo(self, repo_id: str) -> tuple[Repo, str]:
        """The repo and the request's auth ('none' or 'valid'); call with the double's lock held.

        Like the Hub: 401 when anonymous (so private repos do not leak), 404 otherwise.
        """
        auth = self.auth()
        repo = self.double._repos.get(repo_id)
        if repo is None or (repo.private and auth != "valid"):
            status = 401 if auth == "none" else 404
            raise HubError(status, "RepoNotFound", "Repository not found")
        return repo, auth

    def commit(self, repo: Repo, revision: str) -> Commit:
        """The commit `revision` names in `repo`; call with the double's lock held."""
        try:
            return repo.commits[self.double._resolve(repo, revision)]
        except KeyError:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}") from None


@dataclass(frozen=True)
class Response:
    """An answer to send: headers in order (Content-Length and X-Request-Id are added when
    sent); `throttle`: a file body, sent at the double's throttle rate; `served_file`:
    (repo_id, path) whose bytes the body is, for the request log."""

    status: int
    body: bytes | memoryview
    headers: Mapping[str, str] = field(default_factory=dict)
    throttle: bool = False
    served_file: tuple[str, str] | None = None


def json_response(data: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(200, json.dumps(data).encode(), {"Content-Type": JSON_TYPE, **(headers or {})})


def error_response(error: HubError) -> Response:
    """The Hub's error answer: a JSON body, `X-Error-Code` (what the client types errors by)
    and `X-Error-Message`."""
    headers = {"Content-Type": JSON_TYPE, **error.headers}
    if error.code:
        headers["X-Error-Code"] = error.code
    headers["X-Error-Message"] = error.message
    return Response(error.status, json.dumps({"error": error.message}).encode(), headers)


def page_response(request: HubRequest, items: list[dict[str, Any]], page_size: int) -> Response:
    """One page of `items` from the request's `cursor` on; a `Link: <...>; rel="next"` header
    when more follow, with the request's other parameters kept."""
    cursor = request.param("cursor")
    offset = _decode_cursor(cursor) if cursor else 0
    page = items[offset : offset + page_size]
    headers = {}
    if offset + page_size < len(items):
        params = [(k, v) for k, values in request.query.items() if k != "cursor" for v in values]
        params.append(("cursor", _encode_cursor(offset + page_size)))
        path = urlsplit(request.target).path
        headers["Link"] = f'<{request.double.url}{path}?{urlencode(params)}>; rel="next"'
    return json_response(page, headers)


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
