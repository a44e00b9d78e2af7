"""Signal receivers that write to the audit trail."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from registry import audit


def record_staff_sign_in(
    sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any
) -> None:
    """Staff sign-ins (staff, superusers, registry admins) are audited, with their address."""
    from registry.admin_site import is_registry_admin

    if not (getattr(user, "is_staff", False) or is_registry_admin(user)):
        return
    address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    audit.record(
        audit.Action.STAFF_SIGNED_IN,
        actor=user.get_username(),
        user=user,
        object_type="user",
        object_id=user.pk,
        object_repr=user.get_username(),
        details={"remote_addr": address},
    )
