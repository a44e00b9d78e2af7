"""The admin site: for the registry-admin group only; anyone else signed in gets a 403."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_protect

REGISTRY_ADMIN_GROUP = "registry-admin"


def is_registry_admin(user: Any) -> bool:
    if not (user.is_active and user.is_authenticated):
        return False
    return bool(user.is_superuser or user.groups.filter(name=REGISTRY_ADMIN_GROUP).exists())


class AegisAdminSite(admin.AdminSite):
    """The admin site for the ``registry-admin`` group; others who are signed in get a 403."""

    site_header = "Aegis Catalog administration"
    site_title = "Aegis Catalog admin"

    def has_permission(self, request: HttpRequest) -> bool:
        return is_registry_admin(request.user)

    def admin_view(self, view: Any, cacheable: bool = False) -> Any:
        inner = super().admin_view(view, cacheable)

        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.user.is_authenticated and not self.has_permission(request):
                raise PermissionDenied("the admin site is for the registry-admin group")
            response: HttpResponse = inner(request, *args, **kwargs)
            return response

        guarded.__dict__.update(getattr(inner, "__dict__", {}))
        return guarded

    @method_decorator(csrf_protect)
    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        if request.user.is_authenticated and not self.has_permission(request):
            raise PermissionDenied("the admin site is for the registry-admin group")
        return super().login(request, extra_context)
