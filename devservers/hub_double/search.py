"""Model search, `GET /api/models?search=..&filter=..&sort=..&limit=..`, paged by cursor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devservers.hub_double.messages import HubError, HubRequest, Response, page_response
from devservers.hub_double.model import Repo
from devservers.hub_double.payloads import summary

# The Hub's sort names and the summary field each sorts by (trending: likes, as a stand-in).
SORT_KEYS = {
    "downloads": "downloads",
    "likes": "likes",
    "lastModified": "lastModified",
    "createdAt": "createdAt",
    "trendingScore": "likes",
    "id": "id",
}


@dataclass(frozen=True)
class SearchQuery:
    """The search parameters of one request, checked as the Hub checks them."""

    text: str  # lower-cased; matched anywhere in the repo id
    filters: list[str]  # each must be a tag, the pipeline tag or the library
    author: str | None
    pipeline_tag: str | None
    gated: str | None  # "true" or anything else (false)
    sort: str | None
    direction: str  # "-1" (descending) or "1"
    limit: int

    @classmethod
    def parse(cls, request: HubRequest) -> SearchQuery:
        """The request's parameters; a 400 answer for a bad limit, sort or direction."""
        sort = request.param("sort")
        direction = request.param("direction") or "-1"
        limit = _parse_limit(request.param("limit"), request.double.max_search_page_size)
        if sort is not None and sort not in SORT_KEYS:
            raise HubError(400, None, f"Invalid sort parameter: {sort}")
        if direction not in {"-1", "1"}:
            raise HubError(400, None, "Invalid direction")
        return cls(
            text=(request.param("search") or "").lower(),
            filters=list(request.query.get("filter", [])),
            author=request.param("author"),
            pipeline_tag=request.param("pipeline_tag"),
            gated=request.param("gated"),
            sort=sort,
            direction=direction,
            limit=limit,
        )

    def matches(self, repo: Repo, row: dict[str, Any]) -> bool:
        """Whether `repo` (whose search summary is `row`) is an answer to this query."""
        if self.text and self.text not in repo.repo_id.lower():
            return False
        if self.author and repo.author != self.author:
            return False
        if self.pipeline_tag and repo.pipeline_tag != self.pipeline_tag:
            return False
        if self.gated is not None and bool(repo.gated) != (self.gated == "true"):
            return False
        tags = {*row["tags"], repo.pipeline_tag, repo.library_name}
        return all(value in tags for value in self.filters)


def _parse_limit(text: str | None, default: int) -> int:
    try:
        limit = int(text) if text else default
    except ValueError:
        raise HubError(400, None, "Invalid limit") from None
    if limit < 1:
        raise HubError(400, None, "Invalid limit")
    return limit


def search(request: HubRequest) -> Response:
    """The matching public repos (private ones too with a valid token), sorted by id, then by
    the `sort` field; pages of `limit` (at most the double's `max_search_page_size`)."""
    auth = request.auth()
    query = SearchQuery.parse(request)
    double = request.double
    with double._lock:
        rows = []
        for repo in double._repos.values():
            if repo.private and auth != "valid":
                continue
            row = summary(repo, repo.commits[repo.refs["main"]])
            if query.matches(repo, row):
                rows.append(row)
    rows.sort(key=lambda row: row["id"])
    if query.sort is not None:
        key = SORT_KEYS[query.sort]
        rows.sort(key=lambda row: row[key], reverse=query.direction == "-1")
    return page_response(request, rows, min(query.limit, double.max_search_page_size))
