"""Absolute links and paging by page number, as every list operation answers them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse


def absolute(
    request: HttpRequest, name: str, *args: Any, query: dict[str, Any] | None = None
) -> str:
    url = request.build_absolute_uri(reverse(name, args=args))
    return f"{url}?{urlencode(query)}" if query else url


def page_of(
    request: HttpRequest,
    queryset: QuerySet[Any],
    page: int,
    per_page: int,
    query: dict[str, Any],
) -> tuple[list[Any], dict[str, Any]]:
    """One page by number: two queries (count, rows). A page past the end is empty."""
    total = queryset.count()
    start = (page - 1) * per_page
    items = list(queryset[start : start + per_page]) if start < total else []
    pages = max(1, -(-total // per_page))
    base = {key: value for key, value in query.items() if value not in ("", None)}
    base["per_page"] = per_page
    here = request.build_absolute_uri(request.path)

    def link(number: int) -> str:
        return f"{here}?{urlencode({**base, 'page': number})}"

    return items, {
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": pages,
        "next": link(page + 1) if page < pages else None,
        "previous": link(min(page - 1, pages)) if page > 1 else None,
    }
