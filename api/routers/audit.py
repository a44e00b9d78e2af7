"""``/audit/events``: the audit trail, filtered as on the audit page, for auditors and admins."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Query, Router

from aegis_catalog.web.forms import form_errors_text
from aegis_catalog.web.permissions import AUDIT_GROUPS
from api import schemas
from api.auth import require
from api.errors import READ_ERRORS, ApiError
from api.forms import bound_audit_form
from api.links import page_of
from registry.audit_export import export_record
from registry.forms import AuditFilterForm
from registry.models import AuditEvent

router = Router(tags=["audit"])


@router.get(
    "/audit/events",
    response={200: schemas.AuditPage, **READ_ERRORS},
    url_name="audit_events",
    operation_id="list_audit_events",
)
def list_audit_events(
    request: HttpRequest, filters: Query[schemas.AuditQuery]
) -> schemas.AuditPage:
    """Audit events, newest first, filtered as on the audit page (dates are whole days in the
    site's time zone, both ends included); for auditors and registry admins."""
    require(request, AUDIT_GROUPS, "read the audit trail")
    query = filters.dict(by_alias=True)
    form: AuditFilterForm | None = bound_audit_form(filters)
    if form is None:  # an empty date range
        events: QuerySet[AuditEvent] = AuditEvent.objects.none()
    else:
        if not form.is_valid():
            field = next(iter(form.errors), None)
            raise ApiError(422, form_errors_text(form), field)
        events = form.events()
    rows, info = page_of(request, events, filters.page, filters.per_page, query)
    return schemas.AuditPage(
        **info, items=[schemas.AuditEventOut(**export_record(event)) for event in rows]
    )
