"""Approvals: the queue of versions awaiting a registry admin, and the decision on one."""

from __future__ import annotations

from django import forms
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from aegis_catalog.web.permissions import REGISTRY_ADMIN, require_groups
from aegis_catalog.web.responses import error_page
from registry import approvals
from registry.models import ModelVersion, VersionApproval

approver_required = require_groups(REGISTRY_ADMIN, what="approve or reject imports")


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "approve"), ("reject", "reject")])
    reason = forms.CharField(max_length=2000, strip=True)


@require_GET
@approver_required
def approval_queue(request: HttpRequest) -> HttpResponse:
    """The versions awaiting approval, oldest first, each with its requester and findings."""
    if request.GET:
        return error_page(request, 400, "Invalid request", "This page takes no query parameters.")
    pending = (
        VersionApproval.objects.filter(decision=VersionApproval.Decision.PENDING)
        .select_related("version__model")
        .order_by("requested_at", "pk")
    )
    decided = (
        VersionApproval.objects.exclude(decision=VersionApproval.Decision.PENDING)
        .select_related("version__model")
        .order_by("-decided_at", "-pk")[:20]
    )
    return render(
        request,
        "registry/approvals.html",
        {"pending": pending, "decided": decided, "username": request.user.get_username()},
    )


@require_POST
@approver_required
def decide(request: HttpRequest, name: str, version: str) -> HttpResponse:
    """Approve or reject a version awaiting approval, with a reason (audited)."""
    item = get_object_or_404(
        ModelVersion.objects.select_related("model"), model__name=name, version=version
    )
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return error_page(
            request, 400, "Invalid decision", "Choose approve or reject and give a reason."
        )
    decide_with = (
        approvals.approve if form.cleaned_data["decision"] == "approve" else (approvals.reject)
    )
    try:
        decide_with(item, user=request.user, reason=form.cleaned_data["reason"])  # type: ignore[arg-type]
    except approvals.ApprovalError as refusal:
        return error_page(request, 409, "Not decided", f"{refusal}.")
    return HttpResponseRedirect(item.get_absolute_url())
