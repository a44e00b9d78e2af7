"""Registry pages: registered models with search and filters, a model's versions, provenance."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.paginator import EmptyPage, Page, Paginator
from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from aegis_catalog.views import browse_required, error_page
from imports.forms import (
    MAX_PAGE,
    MAX_QUERY_LENGTH,
    PAGE_SIZES,
    UnknownParameters,
    form_errors_text,
    reject_unknown_parameters,
)
from registry.models import ModelVersion, RegisteredModel

_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/-]{0,99}")


def _choices(values: list[str], empty: str) -> list[tuple[str, str]]:
    return [("", empty), *((value, value) for value in values)]


class RegistryFilterForm(forms.Form):
    """Search and filters of the registry list (GET); filter values must exist in the registry."""

    q = forms.CharField(label="Search", required=False, max_length=MAX_QUERY_LENGTH)
    license = forms.ChoiceField(label="License", required=False)
    task = forms.ChoiceField(label="Task", required=False)
    author = forms.ChoiceField(label="Author", required=False)
    tag = forms.CharField(label="Tag", required=False, max_length=100)
    page = forms.IntegerField(label="Page", required=False, min_value=1, max_value=MAX_PAGE)
    per_page = forms.TypedChoiceField(
        label="Per page",
        required=False,
        coerce=int,
        empty_value=None,
        choices=[(str(size), str(size)) for size in PAGE_SIZES],
    )

    FIELDS = {"q", "license", "task", "author", "tag", "page", "per_page"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        models = RegisteredModel.objects.order_by()
        for field, column, empty in (
            ("license", "license", "any license"),
            ("task", "pipeline_tag", "any task"),
            ("author", "author", "any author"),
        ):
            values = list(
                models.exclude(**{column: ""})
                .values_list(column, flat=True)
                .distinct()
                .order_by(column)
            )
            self.fields[field].choices = _choices(values, empty)  # type: ignore[attr-defined]

    def clean_q(self) -> str:
        value: str = self.cleaned_data["q"]
        if any(ord(char) < 32 for char in value):
            raise forms.ValidationError("The search text cannot contain control characters.")
        return " ".join(value.split())

    def clean_tag(self) -> str:
        value: str = self.cleaned_data["tag"].strip()
        if value and not _TAG.fullmatch(value):
            raise forms.ValidationError(
                "A tag uses letters, digits and . _ : + / - only, starting with a letter or digit."
            )
        return value

    def filter(self, queryset: QuerySet[RegisteredModel]) -> QuerySet[RegisteredModel]:
        data = self.cleaned_data
        if data["q"]:
            queryset = queryset.filter(
                Q(name__icontains=data["q"]) | Q(source_repo__icontains=data["q"])
            )
        if data["license"]:
            queryset = queryset.filter(license=data["license"])
        if data["task"]:
            queryset = queryset.filter(pipeline_tag=data["task"])
        if data["author"]:
            queryset = queryset.filter(author=data["author"])
        if data["tag"]:
            # JSON text search works on PostgreSQL and SQLite alike; the tag pattern needs no
            # JSON escaping, and the quotes make it match a whole tag.
            queryset = queryset.filter(tags__icontains=f'"{data["tag"]}"')
        return queryset


class PageForm(forms.Form):
    page = forms.IntegerField(label="Page", required=False, min_value=1, max_value=MAX_PAGE)

    FIELDS = {"page"}


def _page(paginator: Paginator, number: int) -> Page:
    try:
        return paginator.page(number)
    except EmptyPage:
        raise Http404(
            f"There is no page {number}: there are {paginator.num_pages} page(s)."
        ) from None


@require_GET
@browse_required
def model_list(request: HttpRequest) -> HttpResponse:
    """Registered models, searchable and filtered; a fixed number of queries per page."""
    try:
        reject_unknown_parameters(request.GET, RegistryFilterForm.FIELDS)
    except UnknownParameters as error:
        return error_page(request, 400, "Invalid request", str(error))
    form = RegistryFilterForm(request.GET)
    if not form.is_valid():
        return error_page(request, 400, "Invalid request", form_errors_text(form))
    latest = ModelVersion.objects.filter(model=OuterRef("pk")).order_by("-imported_at", "-pk")
    queryset = form.filter(
        RegisteredModel.objects.annotate(
            version_count=Count("versions"),
            last_imported_at=Max("versions__imported_at"),
            latest_version=Subquery(latest.values("version")[:1]),
        ).order_by("name")
    )
    page = _page(
        Paginator(queryset, form.cleaned_data["per_page"] or 25), form.cleaned_data["page"] or 1
    )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "registry/model_list.html",
        {"form": form, "page": page, "base_query": query.urlencode()},
    )


@require_GET
@browse_required
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    """One registered model: its card metadata and its versions."""
    try:
        reject_unknown_parameters(request.GET, PageForm.FIELDS)
    except UnknownParameters as error:
        return error_page(request, 400, "Invalid request", str(error))
    form = PageForm(request.GET)
    if not form.is_valid():
        return error_page(request, 400, "Invalid request", form_errors_text(form))
    model = get_object_or_404(RegisteredModel, name=name)
    versions = model.versions.select_related("signing_key").order_by("-imported_at", "-pk")
    page = _page(Paginator(versions, 50), form.cleaned_data["page"] or 1)
    return render(request, "registry/model_detail.html", {"model": model, "page": page})


@require_GET
@browse_required
def version_detail(request: HttpRequest, name: str, version: str) -> HttpResponse:
    """A version's provenance: source commit, who and when, files, scans, artifact, signing key."""
    if request.GET:
        return error_page(request, 400, "Invalid request", "This page takes no query parameters.")
    item = get_object_or_404(
        ModelVersion.objects.select_related("model", "signing_key", "imported_by_user"),
        model__name=name,
        version=version,
    )
    endpoint = (item.source_endpoint or "").rstrip("/")
    options = item.import_options or {}
    import_request_id = options.get("import_request")
    manifest = item.manifest if isinstance(item.manifest, list) else []
    return render(
        request,
        "registry/version_detail.html",
        {
            "version": item,
            "model": item.model,
            "source_url": f"{endpoint}/{item.source_repo}" if endpoint else "",
            "commit_url": f"{endpoint}/{item.source_repo}/tree/{item.source_commit}"
            if endpoint
            else "",
            "files": manifest,
            "scan_results": item.scan_results if isinstance(item.scan_results, list) else [],
            "options": options,
            "import_request_id": import_request_id if isinstance(import_request_id, int) else None,
        },
    )
