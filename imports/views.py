"""Catalog (Hub search), Hub model pages with the import form, and the import pages."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from aegis_catalog import services
from aegis_catalog.lib.hub import (
    GatedRepo,
    HubError,
    HubModel,
    HubUnavailable,
    InvalidRepoId,
    InvalidRevision,
    InvalidSearchParameter,
    MissingFileDigests,
    RepoNotFound,
    RevisionNotFound,
    SearchResult,
    validate_repo_id,
    validate_revision,
)
from aegis_catalog.web.forms import (
    UnknownParameters,
    form_errors_text,
    page_or_404,
    query_form,
    reject_unknown_parameters,
    select_of,
)
from aegis_catalog.web.permissions import (
    AUDITOR,
    REGISTRY_ADMIN,
    browse_required,
    can_import,
    import_required,
    require_groups,
    user_in_group,
)
from aegis_catalog.web.responses import error_page, is_htmx
from imports.actions import (
    ImportQueueUnavailable,
    ImportRejected,
    cancel_import,
    fail_stale_imports,
    request_import,
    request_rebuild,
    retry_import,
)
from imports.formats import is_pickle_format, is_python_code
from imports.forms import (
    ImportForm,
    ImportListForm,
    RevisionForm,
    SearchForm,
    import_form_initial,
)
from imports.hub_cache import cached_card, cached_model_info, hub_cache_key
from imports.import_progress import import_progress_of
from imports.list_rows import LIST_COLUMNS, rows_html
from imports.models import ImportRequest
from imports.scanners import FILE_SCANNERS
from imports.scanners.remote_code import RemoteCode
from registry.actions import RegistryError, grant_policy_override
from registry.card import as_list, card_metadata
from registry.forms import PolicyOverrideForm
from registry.models import ImportPolicy, ModelVersion
from registry.policy import (
    RULE_LABELS,
    PolicyFinding,
    PolicyViolation,
    card_licenses,
    check_licenses,
    check_remote_code,
)

SEARCH_PAGE_SIZE = 20
DEFAULT_PAGE_SIZE = 25


# --- Hub access, cached ---------------------------------------------------------------------


def cached_search(form: SearchForm) -> SearchResult:
    """One page of Hub search results; the same normalised search is answered from the cache."""
    key = hub_cache_key("search", form.cache_key())
    result: SearchResult | None = cache.get(key)
    if result is None:
        data = form.cleaned_data
        result = services.hub_client().search(
            data["q"],
            task=data["task"] or None,
            library=data["library"] or None,
            license=data["license"] or None,
            sort=form.hub_sort,
            limit=SEARCH_PAGE_SIZE,
            cursor=data["cursor"] or None,
        )
        cache.set(key, result)
    return result


def hub_error_page(request: HttpRequest, error: HubError) -> HttpResponse:
    """A Hub failure in words, with the status a person (or a script) can act on."""
    if isinstance(error, InvalidRepoId | InvalidRevision | InvalidSearchParameter):
        return error_page(request, 400, "Invalid request", str(error))
    if isinstance(error, RepoNotFound | RevisionNotFound):
        return error_page(request, 404, "Not found on the Hub", str(error))
    if isinstance(error, GatedRepo):
        return error_page(request, 403, "Gated model", str(error))
    if isinstance(error, HubUnavailable):
        return error_page(request, 503, "The Hub is not available", str(error))
    if isinstance(error, MissingFileDigests):
        return error_page(request, 502, "No file digests to check against", str(error))
    return error_page(request, 502, "The Hub refused the request", str(error))


def _query_error(request: HttpRequest, message: str) -> HttpResponse:
    return error_page(request, 400, "Invalid request", message)


# --- catalog --------------------------------------------------------------------------------


def registered_versions(repo_ids: Iterable[str]) -> dict[str, ModelVersion]:
    """The newest registry version imported from each of `repo_ids` (one query)."""
    latest: dict[str, ModelVersion] = {}
    for version in (
        ModelVersion.objects.filter(source_repo__in=list(repo_ids))
        .exclude(status__in=(ModelVersion.Status.YANKED, ModelVersion.Status.REJECTED))
        .select_related("model")
        .order_by("source_repo", "-imported_at")
    ):
        latest.setdefault(version.source_repo, version)
    return latest


def hub_model_url(repo_id: str) -> str | None:
    """Our page for a Hub model id, or None for an id we cannot show (no org, odd characters)."""
    try:
        org, name = validate_repo_id(repo_id).split("/")
    except InvalidRepoId:
        return None
    return reverse("imports:hub_model", args=[org, name])


@require_GET
@browse_required
@vary_on_headers("HX-Request")
def catalog(request: HttpRequest) -> HttpResponse:
    """Search the Hub: live (htmx) or as a plain GET form."""
    try:
        reject_unknown_parameters(request.GET, SearchForm.FIELDS)
    except UnknownParameters as error:
        return _query_error(request, str(error))
    form = SearchForm(request.GET)
    context: dict[str, Any] = {"form": form, "result": None, "hub_error": None}
    status = 200
    if not form.is_valid():
        context["form_error"] = form_errors_text(form)
        status = 400
    else:
        try:
            result = cached_search(form)
        except InvalidSearchParameter as error:
            context["form_error"] = str(error)
            status = 400
        except HubError as error:
            context["hub_error"] = str(error)
            status = 503 if isinstance(error, HubUnavailable) else 502
        else:
            badges = registered_versions(item.repo_id for item in result.items)
            context["result"] = result
            context["rows"] = [
                (item, badges.get(item.repo_id), hub_model_url(item.repo_id))
                for item in result.items
            ]
            context["page_number"] = form.cleaned_data["page"] or 1
            if result.next_cursor:
                query = request.GET.copy()
                query["cursor"] = result.next_cursor
                query["page"] = str(context["page_number"] + 1)
                context["next_query"] = query.urlencode()
    template = "imports/catalog.html#results" if is_htmx(request) else "imports/catalog.html"
    return render(request, template, context, status=status)


# --- Hub model page and the import form -----------------------------------------------------


def _repo_id(org: str, name: str) -> str:
    try:
        return validate_repo_id(f"{org}/{name}")
    except InvalidRepoId as error:
        raise Http404(str(error)) from None


def model_warnings(model: HubModel) -> list[str]:
    warnings = []
    pickled = [item.path for item in model.files if is_pickle_format(item.path)]
    if pickled:
        warnings.append(
            f"{len(pickled)} file(s) use a pickle-based format ({', '.join(pickled[:5])}): "
            "loading them can run code. They are scanned during import; prefer safetensors."
        )
    warnings += format_warnings([item.path for item in model.files])
    if model.gated:
        warnings.append(
            "This model is gated: importing needs an HF token of an account granted access."
        )
    if not model.license:
        warnings.append("The card names no license: check the terms before using the model.")
    warnings.extend(policy_warnings(model))
    return warnings


def format_warnings(paths: list[str]) -> list[str]:
    """What each format scanner says beforehand about the files it would read (the same
    choice by name as in the scan)."""
    notes = []
    for scanner in FILE_SCANNERS:
        read = [path for path in paths if scanner.applies_to(path)]
        if read and (note := scanner.before_import(read)):
            notes.append(note)
    return notes


def policy_warnings(model: HubModel) -> list[str]:
    """What the import policy would say about this model's license and its Python files (as
    the file list shows them; the scan also reads the configs' auto_map), before anyone
    imports it."""
    findings: list[PolicyFinding] = []
    rules = ImportPolicy.current().rules()
    code = [item.path for item in model.files if is_python_code(item.path)]
    try:
        check_licenses(card_licenses(model.card_data or {}, model.license or ""), rules, findings)
        if code:
            listed = RemoteCode(python_files=tuple((path, "") for path in code))
            findings += check_remote_code(listed.describe(), rules)
    except PolicyViolation as error:
        return [
            f"The import policy blocks this model ({error.rule}): {error.reason}. "
            "A registry admin can override it for one import, with a reason."
        ]
    return [f"Import policy warning ({item.rule}): {item.reason}." for item in findings]


def model_chips(model: HubModel) -> list[tuple[str, str]]:
    """The model's metadata as chips: the card's fields, else the Hub's own, extracted as the
    registry extracts them (``registry.card.card_metadata``)."""
    meta = card_metadata(model)
    chips: list[tuple[str, str]] = []
    for kind, value in (
        ("license", meta.license),
        ("task", meta.pipeline_tag),
        ("library", meta.library_name),
    ):
        if value:
            chips.append((kind, value))
    chips += [("language", value) for value in meta.languages[:10]]
    chips += [("dataset", value) for value in meta.datasets[:10]]
    chips += [("base model", value) for value in as_list(model.card_data.get("base_model"))[:5]]
    if meta.gated != "no":
        chips.append(("gated", meta.gated))
    return chips


def _render_model_page(
    request: HttpRequest,
    repo_id: str,
    revision: str,
    *,
    import_form: ImportForm | None = None,
    status: int = 200,
) -> HttpResponse:
    try:
        model = cached_model_info(repo_id, revision)
        card_html = cached_card(repo_id, model.commit)
    except HubError as error:
        if import_form is not None and status >= 400:
            # The form's own errors come first; the Hub failing again is secondary.
            return render(
                request,
                "imports/hub_model.html",
                {"repo_id": repo_id, "model": None, "import_form": import_form,
                 "hub_error": str(error), "can_import": True,
                 "start_url": reverse("imports:start", args=repo_id.split("/")),
                 "s3_configured": bool(settings.AEGIS_S3_BUCKET)},
                status=status,
            )  # fmt: skip
        return hub_error_page(request, error)
    user_can_import = can_import(request.user)
    if import_form is None and user_can_import:
        import_form = ImportForm(
            initial=import_form_initial(
                repo_id.split("/", 1)[1], model.commit, revision, timezone.now().date()
            )
        )
    versions = (
        ModelVersion.objects.filter(source_repo=repo_id)
        .select_related("model")
        .order_by("-imported_at")[:50]
    )
    context = {
        "repo_id": repo_id,
        "revision": revision,
        "model": model,
        "card_html": card_html,
        "chips": model_chips(model),
        "warnings": model_warnings(model),
        "files": [(item, is_pickle_format(item.path)) for item in model.files],
        "versions": versions,
        "can_import": user_can_import,
        "import_form": import_form if user_can_import else None,
        "hub_url": f"{settings.HF_ENDPOINT}/{repo_id}",
        "start_url": reverse("imports:start", args=repo_id.split("/")),
        "s3_configured": bool(settings.AEGIS_S3_BUCKET),
    }
    return render(request, "imports/hub_model.html", context, status=status)


@require_GET
@browse_required
def hub_model(request: HttpRequest, org: str, name: str) -> HttpResponse:
    """A Hub model: its card, metadata, files, imported versions and (importers) the form."""
    repo_id = _repo_id(org, name)
    form = query_form(request, RevisionForm)
    if isinstance(form, HttpResponse):
        return form
    revision = form.cleaned_data["revision"] or "main"
    try:
        validate_revision(revision)
    except InvalidRevision as error:
        return _query_error(request, str(error))
    return _render_model_page(request, repo_id, revision)


@require_POST
@import_required
def start(request: HttpRequest, org: str, name: str) -> HttpResponse:
    """Start an import (POST from the model page), or link to the version it would produce."""
    repo_id = _repo_id(org, name)
    form = ImportForm(request.POST)
    if not form.is_valid():
        revision = request.POST.get("revision", "main")
        try:
            validate_revision(revision)
        except InvalidRevision:
            revision = "main"
        return _render_model_page(request, repo_id, revision, import_form=form, status=400)
    revision = form.cleaned_data["revision"]
    try:
        requested = request_import(
            form.import_options(repo_id, revision),
            actor=request.user.get_username(),
            user=request.user,
        )
    except HubError as error:
        form.add_error(None, str(error))
        return _render_model_page(request, repo_id, "main", import_form=form, status=400)
    except ImportRejected as error:
        # The form keeps what was typed; a queue that is down is the server's problem (503).
        form.add_error(None, str(error))
        status = 503 if isinstance(error, ImportQueueUnavailable) else 400
        return _render_model_page(request, repo_id, revision, import_form=form, status=status)
    if requested.existing is not None:
        existing = requested.existing
        messages.info(
            request,
            f"{repo_id} at commit {requested.commit[:12]} with these file patterns is already "
            f"in the registry as {existing.model.name} {existing.version}; nothing was "
            "imported again.",
        )
        return redirect(existing.get_absolute_url())
    import_request = requested.request
    assert import_request is not None
    messages.success(request, f"Import #{import_request.pk} of {repo_id} is queued.")
    return redirect(import_request.get_absolute_url())


# --- import pages ---------------------------------------------------------------------------


@require_GET
@browse_required
def import_list(request: HttpRequest) -> HttpResponse:
    """All imports, or with ``?mine=1`` the user's own; a fixed number of queries per page."""
    form = query_form(request, ImportListForm)
    if isinstance(form, HttpResponse):
        return form
    data = form.cleaned_data
    # Plain values, not model instances: the page shows columns, and builds no object graph.
    queryset = ImportRequest.objects.values(*LIST_COLUMNS).order_by("-created_at", "-pk")
    if data["mine"]:
        queryset = queryset.filter(requested_by_id=request.user.pk)
    if data["status"]:
        queryset = queryset.filter(status=data["status"])
    page = page_or_404(
        Paginator(queryset, data["per_page"] or DEFAULT_PAGE_SIZE), data["page"] or 1
    )
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "rows": rows_html(page.object_list),
        "selects": [select_of(form, "status"), select_of(form, "per_page")],
        "mine": bool(data["mine"]),
        "base_query": query.urlencode(),
    }
    return render(request, "imports/import_list.html", context)


def _import_context(request: HttpRequest, import_request: ImportRequest) -> dict[str, Any]:
    events = list(import_request.events.all())
    return {
        "import": import_request,
        "hub_model_url": hub_model_url(import_request.repo_id),
        "events": events,
        "progress": import_progress_of(import_request, events),
        "can_import": can_import(request.user),
        "can_retry": import_request.status
        in (ImportRequest.Status.FAILED, ImportRequest.Status.CANCELLED),
        "can_cancel": import_request.status
        in (ImportRequest.Status.QUEUED, ImportRequest.Status.RUNNING)
        and not import_request.cancel_requested,
        **_policy_context(request, import_request),
    }


def _policy_context(request: HttpRequest, import_request: ImportRequest) -> dict[str, Any]:
    """What the import page says about the import policy: the rule that blocked it, the
    overrides granted for it, and (registry admins) the form to override the rule once."""
    code = import_request.error_code or ""
    blocked_rule = (
        code.removeprefix("policy:")
        if import_request.status == ImportRequest.Status.FAILED and code.startswith("policy:")
        else ""
    )
    return {
        "blocked_rule": blocked_rule,
        "blocked_rule_label": RULE_LABELS.get(blocked_rule, blocked_rule),
        "blocked_reason": import_request.error.split(" — ", 1)[-1] if blocked_rule else "",
        "policy_overrides": list(import_request.policy_overrides.all()),
        "can_override": bool(blocked_rule) and user_in_group(request.user, REGISTRY_ADMIN),
        "override_form": PolicyOverrideForm(),
    }


def _get_import(pk: int) -> ImportRequest:
    return get_object_or_404(
        ImportRequest.objects.select_related("model_version__model", "requested_by"), pk=pk
    )


@require_POST
@require_groups(AUDITOR, REGISTRY_ADMIN, what="rebuild a version from the Hub")
def rebuild(request: HttpRequest, name: str, version: str) -> HttpResponse:
    """Queue a rebuild of the version from the Hub at its pinned commit (auditors); the result
    ("reproduced" or the first difference) goes on the audit trail and the version's timeline."""
    item = get_object_or_404(
        ModelVersion.objects.select_related("model"), model__name=name, version=version
    )
    try:
        request_rebuild(item, actor=request.user.get_username(), user_id=request.user.pk)
    except ImportQueueUnavailable as error:
        messages.error(request, f"{str(error)[:1].upper()}{str(error)[1:]}.")
    else:
        messages.success(
            request,
            f"A rebuild of {name} {version} from the Hub is queued; its result will be on "
            "this page's timeline and the audit trail.",
        )
    return HttpResponseRedirect(reverse("registry:version", args=[name, version]), status=303)


def _shown_import(pk: int) -> ImportRequest:
    """The import as it is now: one whose worker stopped answering is marked failed first, so
    its page never shows "running" for an import nothing runs. (Retry and Cancel deal with a
    stale import themselves.)"""
    fail_stale_imports([pk])
    return _get_import(pk)


@require_GET
@browse_required
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One import: live progress per stage, the timeline, the error in words, Retry/Cancel."""
    if request.GET:
        return _query_error(request, "This page takes no query parameters.")
    import_request = _shown_import(pk)
    return render(request, "imports/import_detail.html", _import_context(request, import_request))


@require_GET
@browse_required
def import_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of the import page; it stops asking to be polled once the import ended."""
    if request.GET:
        return _query_error(request, "This page takes no query parameters.")
    import_request = _shown_import(pk)
    return render(
        request, "imports/import_detail.html#progress", _import_context(request, import_request)
    )


def _back_to_import(import_request: ImportRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("imports:detail", args=[import_request.pk]), status=303)


def _act_on_import(
    request: HttpRequest, pk: int, action: Callable[..., ImportRequest], done: str
) -> HttpResponse:
    """Retry or Cancel: the action, then back to the import with ``done`` or why it refused."""
    import_request = _get_import(pk)
    try:
        action(import_request, actor=request.user.get_username())
    except ImportRejected as error:
        messages.error(request, str(error))
    else:
        messages.success(request, done)
    return _back_to_import(import_request)


@require_POST
@import_required
def retry(request: HttpRequest, pk: int) -> HttpResponse:
    return _act_on_import(
        request, pk, retry_import, f"Import #{pk} is queued again; finished stages are kept."
    )


@require_POST
@require_groups(REGISTRY_ADMIN, what="override the import policy")
def override_policy(request: HttpRequest, pk: int) -> HttpResponse:
    """Let an import blocked by a policy rule past that rule once (reason required), and retry."""
    import_request = _get_import(pk)
    form = PolicyOverrideForm(request.POST)
    if not form.is_valid():
        context = _import_context(request, import_request)
        context["override_form"] = form
        return render(request, "imports/import_detail.html", context, status=400)
    actor = request.user.get_username()
    try:
        with transaction.atomic():
            override = grant_policy_override(
                import_request, reason=form.cleaned_data["reason"], actor=actor, user=request.user
            )
            retry_import(import_request, actor=actor)
    except (RegistryError, ImportRejected) as error:
        messages.error(request, str(error))
        return _back_to_import(import_request)
    messages.success(
        request,
        f"Policy rule {override.rule} overridden once for import #{pk}; the import is queued "
        "again. The override is on the audit trail.",
    )
    return _back_to_import(import_request)


@require_POST
@import_required
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _act_on_import(request, pk, cancel_import, f"Import #{pk}: cancellation requested.")
