"""Access by group: ``viewer`` browses, ``importer`` also imports, ``auditor`` reads provenance
and audit pages, ``registry-admin`` edits the registry in the admin site. Superusers pass every
check. Each view checks access itself (never only in templates).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.http.response import HttpResponseBase

VIEWER, IMPORTER, AUDITOR, REGISTRY_ADMIN = "viewer", "importer", "auditor", "registry-admin"
ROLE_GROUPS = (VIEWER, IMPORTER, AUDITOR, REGISTRY_ADMIN)
BROWSE_GROUPS = ROLE_GROUPS
IMPORT_GROUPS = (IMPORTER,)
AUDIT_GROUPS = (AUDITOR, REGISTRY_ADMIN)
VERIFY_GROUPS = (AUDITOR, REGISTRY_ADMIN, IMPORTER)

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
