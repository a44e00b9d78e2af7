"""Small middleware of our own."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest
from django.http.response import HttpResponseBase

JOBS_DASHBOARD_PREFIX = "/rq/"


def jobs_dashboard_csp(
    get_response: Callable[[HttpRequest], HttpResponseBase],
) -> Callable[[HttpRequest], HttpResponseBase]:
    """The staff-only RQ dashboard (django-rq's templates) has inline "select all" scripts:
    allow inline scripts there only; every other page keeps ``script-src 'self'``.

    Sits after ``CSPMiddleware`` in MIDDLEWARE, so it marks the response before the
    policy is built."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        response = get_response(request)
        if request.path.startswith(JOBS_DASHBOARD_PREFIX):
            response._csp_update = {"script-src": ["'unsafe-inline'"]}  # type: ignore[attr-defined]
        return response

    return middleware
