"""URLs of the API app: ``/api/v1/`` (django-ninja) and the token page under ``/account/``."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import URLPattern, URLResolver, path, re_path
from django.views.decorators.csrf import csrf_exempt

from api import views
from api.api import api, error_response, not_found


def _json_method_not_allowed(view: Callable[..., HttpResponseBase]) -> Callable[..., Any]:
    """Ninja answers a method an endpoint lacks with a plain-text 405; give the error body."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and "Allow" in response:
            allowed = response["Allow"]
            response = error_response(405, f"{request.method} is not allowed here; use {allowed}.")
            response["Allow"] = allowed
        return response

    return wrapped


ninja_patterns, ninja_app, ninja_namespace = api.urls
for pattern in ninja_patterns:
    if not isinstance(pattern, URLPattern):
        continue
    if pattern.name == "api-root":  # ninja's own root is an HTML 404 without its docs page
        pattern.callback = csrf_exempt(not_found)
    elif pattern.name != "openapi-json":
        pattern.callback = csrf_exempt(_json_method_not_allowed(pattern.callback))

api_urlpatterns: list[URLPattern | URLResolver] = [
    path("", (ninja_patterns, ninja_app, ninja_namespace)),
    # Anything else under /api/v1/ is a 404 with the API's error body, not an HTML page.
    re_path(r"^.*$", csrf_exempt(not_found)),
]

token_urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.tokens, name="list"),
    path("<int:pk>/revoke/", views.revoke, name="revoke"),
]
