"""The registry list and a model's page."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import tzinfo
from typing import Any
from urllib.parse import quote

from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, Subquery
from django.http import (
    HttpRequest,
    HttpResponse,
)
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET

from aegis_catalog.web.forms import (
    PageForm,
    page_or_404,
    query_form,
    select_of,
)
from aegis_catalog.web.html import html_rows
from aegis_catalog.web.permissions import (
    browse_required,
)
from registry.forms import RegistryFilterForm
from registry.models import ModelVersion, RegisteredModel
from registry.pulling import pull_lines
from registry.views.upstream import badge, upstream_context


@require_GET
@browse_required
def model_list(request: HttpRequest) -> HttpResponse:
    """Registered models, searchable and filtered; a fixed number of queries per page."""
    form = query_form(request, RegistryFilterForm)
    if isinstance(form, HttpResponse):
        return form
    # Per-model figures as correlated subqueries (not a JOIN + GROUP BY over every version):
    # the database works them out for the page's rows only, each one an index lookup on
    # (model, imported_at); the paginator's count drops them.
    versions = ModelVersion.objects.filter(model=OuterRef("pk"))
    latest = versions.order_by("-imported_at", "-pk")
    # Plain values of the columns the rows show: no model instances, and not the card's JSON,
    # decoded for nothing otherwise.
    queryset = form.filter(
        RegisteredModel.objects.annotate(
            version_count=Subquery(
                versions.order_by().values("model").annotate(count=Count("pk")).values("count")
            ),
            last_imported_at=Subquery(latest.values("imported_at")[:1]),
            latest_version=Subquery(latest.values("version")[:1]),
        ).order_by("name")
    ).values(*LIST_COLUMNS)
    paginator = Paginator(queryset, form.cleaned_data["per_page"] or 25)
    if not form.filtered:
        paginator.count = form.model_count  # counted by the form's choice query already
    page = page_or_404(paginator, form.cleaned_data["page"] or 1)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "rows": rows_html(page.object_list),
        "selects": [select_of(form, name) for name in ("license", "task", "author")],
        "per_page": select_of(form, "per_page"),
        "base_query": query.urlencode(),
    }
    return render(request, "registry/model_list.html", context)


ROW_HTML = (
    '<tr><td><a href="{}">{}</a>{}</td><td>{}</td><td class="num">{}</td><td>{}</td><td>{}</td>'
    "<td>{}</td><td>{}</td><td>{}</td></tr>"
)
LIST_COLUMNS = (
    "name", "source_repo", "pipeline_tag", "license", "author", "version_count",
    "last_imported_at", "latest_version", "upstream__state", "upstream__needs_attention",
)  # fmt: skip
BADGE_HTML = ' <span class="status {}" data-upstream="{}">{}</span>'


def rows_html(models: Iterable[Mapping[str, Any]]) -> SafeString:
    """One table row per model (``LIST_COLUMNS`` values), escaped: string formatting, not a
    template loop, for the page the registry's readers open most."""
    base = reverse("registry:list")
    zone = timezone.get_current_timezone()
    return html_rows(ROW_HTML, (_cells(model, base, zone) for model in models))


def _cells(model: Mapping[str, Any], base: str, zone: tzinfo) -> tuple[Any, ...]:
    imported = model["last_imported_at"]
    if imported:
        local = timezone.localtime(imported, zone)
        when: Any = format_html(
            '<time datetime="{}">{}</time>', local.isoformat(), local.strftime("%Y-%m-%d")
        )
    else:
        when = "—"
    return (
        f"{base}{quote(model['name'])}/", model["name"], _badge(model),
        model["latest_version"] or "—",
        model["version_count"] or 0, model["source_repo"], model["pipeline_tag"] or "—",
        model["license"] or "—", model["author"] or "—", when,
    )  # fmt: skip


def _badge(model: Mapping[str, Any]) -> SafeString | str:
    """The upstream watch's badge beside the model's name: changed, gone, needs attention."""
    shown = badge(model["upstream__state"], model["upstream__needs_attention"])
    if shown is None:
        return ""
    text, css = shown
    return format_html(BADGE_HTML, css, model["upstream__state"], text)


@require_GET
@browse_required
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    """One registered model: its card metadata and its versions."""
    form = query_form(request, PageForm)
    if isinstance(form, HttpResponse):
        return form
    model = get_object_or_404(RegisteredModel, name=name)
    versions = model.versions.select_related("signing_key").order_by("-imported_at", "-pk")
    page = page_or_404(Paginator(versions, 50), form.cleaned_data["page"] or 1)
    # main, as /hf/ serves it: the newest active version.
    serves_main = versions.filter(status=ModelVersion.Status.ACTIVE).exists()
    context = {
        "model": model,
        "page": page,
        "serves_main": serves_main,
        **upstream_context(request, model),
    }
    return render(
        request, "registry/model_detail.html", {**context, **pull_lines(request, name, "main")}
    )
