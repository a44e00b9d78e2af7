"""A model's upstream panel: what the watch found (badge, readable diff), "Check upstream now"
for registry admins, and the one-click import of the new commit for importers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from aegis_catalog.web.permissions import (
    REGISTRY_ADMIN,
    browse_required,
    can_import,
    require_groups,
    user_in_group,
)
from aegis_catalog.web.responses import error_page, is_htmx
from registry.models import ModelVersion, RegisteredModel, UpstreamState, default_version
from registry.upstream.actions import UpstreamQueueUnavailable, request_upstream_check
from registry.upstream.diff import GONE_REPO, UpstreamDiff

BADGES: dict[str, tuple[str, str]] = {
    UpstreamState.State.CHANGED.value: ("changed upstream", "upstream-changed"),
    UpstreamState.State.GONE.value: ("gone upstream", "upstream-gone"),
}
ATTENTION_BADGE = ("needs attention", "upstream-attention")


def badge(state: str | None, needs_attention: bool | None) -> tuple[str, str] | None:
    """The badge (text, CSS class) a model's upstream state shows; None when in sync or
    never checked."""
    if needs_attention:
        return ATTENTION_BADGE
    return BADGES.get(str(state)) if state else None


@dataclass(frozen=True)
class NewCommitImport:
    """The one-click import of the new upstream commit: the fields of the Hub model page's
    import form (``imports:start``), filled in; the import policy applies as to any import."""

    url: str
    model_name: str
    version: str
    commit: str
    include: str
    exclude: str
    upload_s3: bool


def _new_commit_import(
    model: RegisteredModel, state: UpstreamState, diff: UpstreamDiff
) -> NewCommitImport | None:
    """The import form for the new commit, when there is one to import from the same repo."""
    commit = diff.changes.get("commit")
    if not commit or diff.gone or diff.changes.get("renamed_to") or state.baseline is None:
        return None
    after = str(commit["after"])
    if ModelVersion.objects.filter(model=model, source_commit=after).exists():
        return None
    options = state.baseline.import_options
    options = options if isinstance(options, dict) else {}
    return NewCommitImport(
        url=reverse("imports:start", args=state.baseline.source_repo.split("/", 1)),
        model_name=model.name,
        version=default_version(after, timezone.localdate()),
        commit=after,
        include=",".join(options.get("include") or []),
        exclude=",".join(options.get("exclude") or []),
        upload_s3=bool(options.get("upload_s3")) and bool(settings.AEGIS_S3_BUCKET),
    )


def _when(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) and value else None


def upstream_context(request: HttpRequest, model: RegisteredModel) -> dict[str, Any]:
    """What the upstream panel and badge show to this user."""
    state = UpstreamState.objects.select_related("baseline").filter(model=model).first()
    diff = UpstreamDiff.from_json(state.diff if state else {})
    changes = diff.changes
    commit = dict(changes["commit"]) if "commit" in changes else None
    if commit is not None:
        commit["time"] = _when(commit.get("time"))
    new_commits = [{**item, "date": _when(item.get("date"))}
                   for item in changes.get("new_commits", ())]  # fmt: skip
    return {
        "model": model,
        "upstream": state,
        "upstream_badge": badge(state.state, state.needs_attention) if state else None,
        "upstream_changes": changes,
        "upstream_commit": commit,
        "upstream_new_commits": new_commits,
        "upstream_gone_repo": diff.gone == GONE_REPO,
        "upstream_attention": diff.attention,
        "upstream_interval_hours": settings.AEGIS_UPSTREAM_WATCH_SECONDS / 3600,
        "can_check_upstream": user_in_group(request.user, REGISTRY_ADMIN),
        "new_commit_import": (
            _new_commit_import(model, state, diff)
            if state is not None and can_import(request.user)
            else None
        ),
    }


def _panel(request: HttpRequest, model: RegisteredModel, *, refused: str = "") -> HttpResponse:
    """The panel, and the badge beside the model's name out of band (it follows the panel)."""
    context = {**upstream_context(request, model), "upstream_refused": refused, "oob": True}
    html = render_to_string("registry/model_detail.html#upstream", context, request)
    html += render_to_string("registry/model_detail.html#upstream_badge", context, request)
    response = HttpResponse(html, status=503 if refused else 200)
    patch_vary_headers(response, ("HX-Request",))
    return response


def _back_to_panel(model: RegisteredModel) -> HttpResponseRedirect:
    return HttpResponseRedirect(model.get_absolute_url() + "#upstream", status=303)


@require_POST
@require_groups(REGISTRY_ADMIN, what="check a model's upstream now")
def upstream_check(request: HttpRequest, name: str) -> HttpResponse:
    """Queue a check of the model's Hub repo now; the panel follows it until it is done."""
    model = get_object_or_404(RegisteredModel, name=name)
    try:
        request_upstream_check(model, actor=request.user.get_username())
    except UpstreamQueueUnavailable as refused:
        if is_htmx(request):
            return _panel(request, model, refused=f"Not queued: {refused}.")
        messages.error(request, f"Not queued: {refused}.")
        return _back_to_panel(model)
    if is_htmx(request):
        return _panel(request, model)
    messages.success(request, f"A check of {model.source_repo} on the Hub is queued.")
    return _back_to_panel(model)


@require_GET
@browse_required
def upstream_panel(request: HttpRequest, name: str) -> HttpResponse:
    """The upstream panel alone, polled by the page while a check is queued."""
    model = get_object_or_404(RegisteredModel, name=name)
    if request.GET:
        return error_page(request, 400, "Invalid request", "This panel takes no query parameters.")
    if not is_htmx(request):
        return _back_to_panel(model)
    return _panel(request, model)
