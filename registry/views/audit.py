"""The audit trail page, its exports and "Check now" on the hash chain."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import (
    HttpRequest,
    HttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from aegis_catalog.web.forms import (
    page_or_404,
    query_form,
)
from aegis_catalog.web.permissions import (
    AUDIT_GROUPS,
    require_groups,
)
from aegis_catalog.web.responses import is_htmx
from registry.audit_display import audit_row, chain_status
from registry.audit_export import csv_export, json_export
from registry.forms import AUDIT_PAGE_SIZES, AuditFilterForm

audit_required = require_groups(*AUDIT_GROUPS, what="read the audit trail")


@never_cache
@require_GET
@audit_required
def audit_list(request: HttpRequest) -> HttpResponseBase:
    """Audit events, newest first, filtered and paged; ``?format=csv|json`` exports every
    matching event (streamed), not only one page. Shows the hash chain's status."""
    form = query_form(request, AuditFilterForm)
    if isinstance(form, HttpResponse):
        return form
    events = form.events()
    if form.export_format == "csv":
        return csv_export(events)
    if form.export_format == "json":
        return json_export(events, form.active_filters())
    page = page_or_404(Paginator(events, form.page_size), form.page_number)
    query = request.GET.copy()
    query.pop("page", None)
    export = request.GET.copy()
    for name in ("page", "per_page", "format"):
        export.pop(name, None)
    return render(
        request,
        "audit/audit_list.html",
        {
            "form": form,
            "page": page,
            "rows": [audit_row(event) for event in page.object_list],
            "filters": form.active_filters(),
            "base_query": query.urlencode(),
            "export_query": export.urlencode(),
            "chain": chain_status(),
            "time_zone": timezone.get_current_timezone_name(),
            "page_sizes": AUDIT_PAGE_SIZES,
        },
    )


@require_POST
@audit_required
def audit_chain_check(request: HttpRequest) -> HttpResponse:
    """Re-check the whole hash chain now ("Check now"), and cache the answer."""
    status = chain_status(refresh=True)
    if is_htmx(request):
        response = render(request, "audit/audit_list.html#chain", {"chain": status})
    else:
        response = redirect("audit:list")
    patch_vary_headers(response, ("HX-Request",))
    return response
