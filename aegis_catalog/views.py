"""Site-wide views and the access helpers every view of Aegis uses.

Access is by group: ``viewer`` browses, ``importer`` also imports, ``auditor`` reads provenance
and audit pages, ``registry-admin`` edits the registry in the admin site. Superusers pass every
check. Each view checks access itself (never only in templates).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

import django_rq
from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.core.paginator import EmptyPage, Page, Paginator
from django.db import DatabaseError, connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from redis.exceptions import RedisError

from aegis_catalog import services
from aegis_catalog.lib.storage import StorageError
from aegis_catalog.lib.vault import VaultError

VIEWER, IMPORTER, AUDITOR, REGISTRY_ADMIN = "viewer", "importer", "auditor", "registry-admin"
ROLE_GROUPS = (VIEWER, IMPORTER, AUDITOR, REGISTRY_ADMIN)
BROWSE_GROUPS = ROLE_GROUPS
IMPORT_GROUPS = (IMPORTER,)

# Views may answer with a streamed or file response too.
ViewFunction = Callable[..., HttpResponseBase]


def user_groups(user: AbstractBaseUser | AnonymousUser) -> frozenset[str]:
    """The names of the user's groups, read once per request and kept on the user object."""
    if not user.is_authenticated:
        return frozenset()
    cached: frozenset[str] | None = getattr(user, "_aegis_groups", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))  # type: ignore[attr-defined]
        cast(Any, user)._aegis_groups = cached
    return cached


def user_in_group(user: AbstractBaseUser | AnonymousUser, *groups: str) -> bool:
    """True when the user is active and in any of `groups`, or is a superuser."""
    if not user.is_authenticated or not user.is_active:
        return False
    if getattr(user, "is_superuser", False):
        return True
    return bool(user_groups(user) & set(groups))


def can_browse(user: AbstractBaseUser | AnonymousUser) -> bool:
    return user_in_group(user, *BROWSE_GROUPS)


def can_import(user: AbstractBaseUser | AnonymousUser) -> bool:
    return user_in_group(user, *IMPORT_GROUPS)


def require_groups(*groups: str, what: str) -> Callable[[ViewFunction], ViewFunction]:
    """Sign-in required, then membership of one of `groups` (else 403 saying what is missing)."""

    def decorator(view: ViewFunction) -> ViewFunction:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not user_in_group(request.user, *groups):
                raise PermissionDenied(
                    f"You need to be in the {' or '.join(groups)} group to {what}; "
                    "ask an administrator."
                )
            return view(request, *args, **kwargs)

        return login_required(wrapped)

    return decorator


browse_required = require_groups(*BROWSE_GROUPS, what="browse the catalog")
import_required = require_groups(*IMPORT_GROUPS, what="import models")


def is_htmx(request: HttpRequest) -> bool:
    """True for a request htmx made (django-htmx's middleware sets ``request.htmx``)."""
    return bool(getattr(request, "htmx", False))


def error_page(request: HttpRequest, status: int, title: str, message: str) -> HttpResponse:
    """A page (or, for htmx, a fragment) that says what went wrong in words."""
    template = "error.html#message" if is_htmx(request) else "error.html"
    return render(
        request, template, {"title": title, "message": message, "status": status}, status=status
    )


# --- health -------------------------------------------------------------------------------

_CREDENTIALS_IN_URL = re.compile(r"(?<=://)[^/@\s]+@")


def _safe_reason(error: BaseException) -> str:
    """An error in words for the health report, with any URL credentials blanked out."""
    text = " ".join(str(error).split())[:300] or type(error).__name__
    return _CREDENTIALS_IN_URL.sub("***@", text)


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def _check_redis() -> dict[str, Any]:
    django_rq.get_connection("imports").ping()
    return {"queue": "imports", "queued": django_rq.get_queue("imports").count}


def _check_vault() -> dict[str, Any]:
    health = services.transit_client().health()
    if not health["initialized"] or health["sealed"]:
        raise VaultError(
            f"Vault at {health['address']} is {'sealed' if health['sealed'] else 'not initialized'}"
        )
    return {"address": health["address"], "version": health["version"]}


def _check_storage() -> dict[str, Any]:
    store = services.artifact_store()
    store.check()
    details: dict[str, Any] = {"local": str(settings.AEGIS_ARTIFACT_ROOT)}
    if settings.AEGIS_S3_BUCKET:
        services.artifact_store(upload_s3=True).check()
        details["s3_bucket"] = settings.AEGIS_S3_BUCKET
    return details


HEALTH_CHECKS: dict[str, tuple[Callable[[], dict[str, Any]], tuple[type[BaseException], ...]]] = {
    "database": (_check_database, (DatabaseError,)),
    "redis": (_check_redis, (RedisError, OSError)),
    "vault": (_check_vault, (VaultError,)),
    "storage": (_check_storage, (StorageError, OSError)),
}


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """JSON health of the database, Redis, Vault and storage; HTTP 503 when any is down.

    Open without sign-in (load balancers call it); it reports reachability, never secrets.
    """
    checks: dict[str, dict[str, Any]] = {}
    for name, (check, expected) in HEALTH_CHECKS.items():
        started = time.monotonic()
        try:
            details = check()
        except expected as error:
            checks[name] = {"ok": False, "error": f"{type(error).__name__}: {_safe_reason(error)}"}
        else:
            checks[name] = {"ok": True, **details}
        checks[name]["seconds"] = round(time.monotonic() - started, 3)
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )


def navigation(request: HttpRequest) -> dict[str, bool]:
    """Template context: which sections the signed-in user may open."""
    user = request.user
    return {
        "nav_audit": user_in_group(user, "auditor", "registry-admin"),
        "nav_admin": user_in_group(user, "registry-admin"),
        "nav_jobs": bool(getattr(user, "is_staff", False)),
    }


def page_or_404(paginator: Paginator, number: int) -> Page:
    """One page of a list; a page past the end is a 404 that says how many there are."""
    try:
        return paginator.page(number)
    except EmptyPage:
        raise Http404(
            f"There is no page {number}: there are {paginator.num_pages} page(s)."
        ) from None


FormT = TypeVar("FormT", bound=forms.Form)


def query_form(request: HttpRequest, form_class: type[FormT]) -> FormT | HttpResponse:
    """The page's GET parameters bound to ``form_class`` and valid, or the 400 page saying
    which parameter is unknown, repeated or invalid. ``form_class.FIELDS`` names the allowed
    parameters."""
    from imports.forms import UnknownParameters, form_errors_text, reject_unknown_parameters

    try:
        reject_unknown_parameters(request.GET, form_class.FIELDS)  # type: ignore[attr-defined]
    except UnknownParameters as error:
        return error_page(request, 400, "Invalid request", str(error))
    form = form_class(request.GET)
    if not form.is_valid():
        return error_page(request, 400, "Invalid request", form_errors_text(form))
    return form
