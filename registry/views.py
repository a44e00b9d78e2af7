"""Registry pages: registered models, a model's versions, a version's provenance page with its
downloads and "Verify now", and the audit trail page with its exports and chain status."""

from __future__ import annotations

import base64
import binascii
import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django import forms
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import content_disposition_header
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from aegis_catalog import services
from aegis_catalog.lib.storage import ObjectNotFound, StorageError, parse_url
from aegis_catalog.views import (
    AUDITOR,
    IMPORTER,
    REGISTRY_ADMIN,
    browse_required,
    error_page,
    is_htmx,
    page_or_404,
    query_form,
    require_groups,
    user_in_group,
)
from imports.forms import (
    MAX_PAGE,
    MAX_QUERY_LENGTH,
    PAGE_SIZES,
)
from registry import attestation
from registry.actions import record_verification
from registry.audit import Action, verify_chain
from registry.forms import AUDIT_PAGE_SIZES, AuditFilterForm
from registry.models import AuditEvent, ModelVersion, RegisteredModel
from registry.provenance import (
    artifact_name,
    attestation_bytes,
    model_signature_bytes,
    public_key_bytes,
    record_url,
)
from registry.verify import VerificationError, verify_and_record

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
    queryset = form.filter(
        RegisteredModel.objects.annotate(
            version_count=Subquery(
                versions.order_by().values("model").annotate(count=Count("pk")).values("count")
            ),
            last_imported_at=Subquery(latest.values("imported_at")[:1]),
            latest_version=Subquery(latest.values("version")[:1]),
        ).order_by("name")
    )
    page = page_or_404(
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
    form = query_form(request, PageForm)
    if isinstance(form, HttpResponse):
        return form
    model = get_object_or_404(RegisteredModel, name=name)
    versions = model.versions.select_related("signing_key").order_by("-imported_at", "-pk")
    page = page_or_404(Paginator(versions, 50), form.cleaned_data["page"] or 1)
    return render(request, "registry/model_detail.html", {"model": model, "page": page})


# --- provenance -----------------------------------------------------------------------------

# Who may do what on the provenance and audit pages (superusers pass every check):
# every role may read a version's provenance and download its files; auditors, registry
# admins and importers may re-run the verification (it writes an audit event); auditors and
# registry admins read the audit trail.
AUDIT_GROUPS = (AUDITOR, REGISTRY_ADMIN)
VERIFY_GROUPS = (AUDITOR, REGISTRY_ADMIN, IMPORTER)
audit_required = require_groups(*AUDIT_GROUPS, what="read the audit trail")
verify_required = require_groups(*VERIFY_GROUPS, what="verify a model version")

# The checks of registry.verify, in words.
CHECK_LABELS = {
    "fetch": "The artifact and its attestation were fetched from storage",
    "attestation_signature": "The provenance attestation's signature verifies",
    "trusted_key": "The signing key is in the trust store",
    "key_not_revoked": "The signing key is not revoked",
    "digest": "The tarball's sha256 is the one signed and registered",
    "not_yanked": "The version is not yanked",
    "safe_extraction": "The tarball extracts safely",
    "model_signature": "model.sig verifies over every file of model/",
    "load": "The safetensors weights load",
    "verification": "Verification",
}
# Events of a signing key that belong on the timeline of every version it signed.
KEY_ACTIONS = (Action.KEY_ADDED, Action.KEY_ROTATED, Action.KEY_REVOKED)
TIMELINE_LIMIT = 200


@dataclass(frozen=True)
class FileRow:
    """One file of the manifest, and how it compared with the Hub's digest at import."""

    path: str
    size: int | None
    sha256: str
    hub_digest: str
    hub_digest_kind: str
    hub_state: str  # "matched", "differs" or "unknown"
    hub_note: str


@dataclass(frozen=True)
class CheckLine:
    name: str
    label: str
    detail: str


@dataclass(frozen=True)
class VerificationOutcome:
    """What "Verify now" found: every check passed, or the one that failed and why."""

    passed: bool
    checks: tuple[CheckLine, ...] = ()
    failed_check: str = ""
    failed_label: str = ""
    error: str = ""


def check_label(name: str) -> str:
    return CHECK_LABELS.get(name, name.replace("_", " "))


def _file_rows(manifest: Any) -> list[FileRow]:
    rows = []
    for entry in manifest if isinstance(manifest, list) else []:
        if not isinstance(entry, dict):
            continue
        sha256 = str(entry.get("sha256") or "")
        hub_digest = str(entry.get("hub_digest") or "")
        kind = str(entry.get("hub_digest_kind") or "")
        if kind == "lfs-sha256" and hub_digest:
            state = "matched" if hub_digest == sha256 else "differs"
            note = (
                "matches the Hub's LFS sha256"
                if state == "matched"
                else f"DIFFERS from the Hub's LFS sha256 {hub_digest}"
            )
        elif kind == "git-blob-sha1" and hub_digest:
            # The sha1 git blob id is compared with the downloaded bytes at import (an import
            # with a mismatch fails); the registry keeps the sha256, not the bytes' blob id.
            state, note = "matched", f"matched the Hub's git blob id {hub_digest} at import"
        else:
            state, note = "unknown", "no Hub digest was recorded"
        size = entry.get("size")
        rows.append(
            FileRow(
                path=str(entry.get("path") or ""),
                size=size if isinstance(size, int) else None,
                sha256=sha256,
                hub_digest=hub_digest,
                hub_digest_kind=kind,
                hub_state=state,
                hub_note=note,
            )
        )
    return rows


def decoded_statement(bundle: Any) -> tuple[str, str]:
    """The DSSE payload of a stored bundle as pretty JSON, or why it cannot be shown.

    This decodes only; the signature is checked by "Verify now" and by the reader's own tools.
    """
    try:
        loaded = attestation.load_bundle(attestation.bundle_to_bytes(bundle or {}))
        payload = base64.b64decode(loaded["dsseEnvelope"]["payload"], validate=True)
        statement = json.loads(payload)
    except attestation.AttestationError as error:
        return "", f"The stored attestation cannot be decoded: {error}"
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        return "", f"The attestation's payload is not JSON: {error}"
    return json.dumps(statement, indent=2, sort_keys=True, ensure_ascii=False), ""


def _import_request_id(item: ModelVersion) -> int | None:
    options = item.import_options if isinstance(item.import_options, dict) else {}
    value = options.get("import_request")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _timeline(item: ModelVersion, import_request_id: int | None) -> list[AuditEvent]:
    """The version's events, its model's, its import's and its signing key's, oldest first.

    The first three carry the model's name, so the model index serves them; key events
    are found through the action index.
    """
    own = Q(object_type="version", object_id=str(item.pk)) | Q(
        object_type="model", object_id=str(item.model_id)
    )
    if import_request_id is not None:
        own |= Q(object_type="import", object_id=str(import_request_id))
    key_events = Q(
        action__in=KEY_ACTIONS, object_type="signing_key", object_id=str(item.signing_key_id)
    )
    newest = AuditEvent.objects.filter((Q(model_name=item.model.name) & own) | key_events).order_by(
        "-sequence"
    )[:TIMELINE_LIMIT]
    return list(reversed(newest))


def _provenance_context(request: HttpRequest, item: ModelVersion) -> dict[str, Any]:
    endpoint = (item.source_endpoint or "").rstrip("/")
    options = item.import_options if isinstance(item.import_options, dict) else {}
    import_request_id = _import_request_id(item)
    statement, statement_error = decoded_statement(item.attestation)
    events = _timeline(item, import_request_id)
    return {
        "version": item,
        "model": item.model,
        "key": item.signing_key,
        "source_url": f"{endpoint}/{item.source_repo}" if endpoint else "",
        "commit_url": f"{endpoint}/{item.source_repo}/tree/{item.source_commit}"
        if endpoint
        else "",
        "files": _file_rows(item.manifest),
        "scan_results": item.scan_results if isinstance(item.scan_results, list) else [],
        "options": options,
        "other_options": sorted(
            (key, _display(value))
            for key, value in options.items()
            if key not in ("include", "exclude", "import_request", "policy")
        ),
        "import_request_id": import_request_id,
        "statement": statement,
        "statement_error": statement_error,
        "timeline": [_audit_row(event) for event in events],
        "timeline_truncated": len(events) == TIMELINE_LIMIT,
        # Template lookups cannot use "-": the same names, keyed with "_".
        "downloads": {
            kind.replace("-", "_"): filename for kind, filename in download_names(item).items()
        },
        "can_verify": user_in_group(request.user, *VERIFY_GROUPS),
        "can_audit": user_in_group(request.user, *AUDIT_GROUPS),
    }


def _version_or_404(name: str, version: str) -> ModelVersion:
    return get_object_or_404(
        ModelVersion.objects.select_related("model", "signing_key", "imported_by_user"),
        model__name=name,
        version=version,
    )


@require_GET
@browse_required
def version_detail(request: HttpRequest, name: str, version: str) -> HttpResponse:
    """A version's provenance: source commit, who and when, files, scans, artifact, signing key,
    the decoded provenance statement, the event timeline, downloads and "Verify now"."""
    if request.GET:
        return error_page(request, 400, "Invalid request", "This page takes no query parameters.")
    item = _version_or_404(name, version)
    return render(request, "registry/version_detail.html", _provenance_context(request, item))


def _run_verification(request: HttpRequest, item: ModelVersion) -> VerificationOutcome:
    actor = request.user.get_username()
    try:
        result = verify_and_record(item, actor=actor, user=request.user)
    except VerificationError as failure:  # verify_and_record has recorded it
        return VerificationOutcome(
            passed=False,
            failed_check=failure.check,
            failed_label=check_label(failure.check),
            error=str(failure),
        )
    except (StorageError, OSError) as failure:
        # Raised before verify_and_record could record the run (e.g. an unreadable storage
        # URL, a full disk while extracting): record it here, so every run is on the trail.
        check = "fetch" if isinstance(failure, StorageError) else "verification"
        message = str(failure) or type(failure).__name__
        record_verification(
            item,
            artifact=item.model_path,
            actor=actor,
            user=request.user,
            passed=False,
            checks=[],
            failed_check=check,
            error=message,
        )
        return VerificationOutcome(
            passed=False, failed_check=check, failed_label=check_label(check), error=message
        )
    return VerificationOutcome(
        passed=True,
        checks=tuple(
            CheckLine(check.name, check_label(check.name), check.detail) for check in result.checks
        ),
    )


@require_POST
@verify_required
def version_verify(request: HttpRequest, name: str, version: str) -> HttpResponse:
    """Re-run ``verify_model_artifact`` on the stored artifact, record the run, show each check.

    A failed verification is a result, not an error: the page answers 200 and names the check
    that failed. htmx gets the result panel and the refreshed timeline.
    """
    item = _version_or_404(name, version)
    outcome = _run_verification(request, item)
    item = _version_or_404(name, version)  # as it is now, with its key (maybe just revoked)
    context = {**_provenance_context(request, item), "verification": outcome}
    if is_htmx(request):
        response = HttpResponse(
            render_to_string("registry/version_detail.html#verification", context, request)
            + render_to_string(
                "registry/version_detail.html#timeline", {**context, "oob": True}, request
            )
        )
    else:
        response = render(request, "registry/version_detail.html", context)
    patch_vary_headers(response, ("HX-Request",))
    return response


# --- downloads ------------------------------------------------------------------------------

JSON_TYPE = "application/json"
STREAM_BLOCK_SIZE = 1024 * 1024  # read from S3 per chunk of a streamed download


def download_names(item: ModelVersion) -> dict[str, str]:
    """File names offered for each download: unique per version, so several can sit side by
    side in one folder."""
    prefix = f"{item.model.name}-{item.version}"
    name = artifact_name(item)
    return {
        "artifact": name,
        "attestation": f"{name}.sigstore.json",
        "model-sig": f"{prefix}.model.sig",
        "record": f"{prefix}.aegis.json",
        "public-key": f"{item.signing_key.name}-v{item.signing_key.version}.pub.pem",
    }


def _attachment(content: bytes, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Content-Length"] = str(len(content))
    return response


def _stored_file(url: str, filename: str, content_type: str) -> FileResponse:
    """A stored object as an attachment, streamed as it is read: a local file as it is (the
    server may send it with sendfile), an S3 object straight from its GET, so a multi-GB
    artifact starts at once and is never copied to disk first."""
    parsed = parse_url(url)
    if parsed.scheme == "file":
        assert parsed.path is not None
        try:
            handle = parsed.path.open("rb")
        except FileNotFoundError as error:
            raise ObjectNotFound(f"{url} does not exist") from error
        except OSError as error:
            raise StorageError(f"{url} cannot be read: {error.strerror or error}") from error
        return FileResponse(
            handle, as_attachment=True, filename=filename, content_type=content_type
        )
    stream, size = services.store_for(url).open_read(url)
    response = FileResponse(
        stream, as_attachment=True, filename=filename, content_type=content_type
    )
    response["Content-Length"] = str(size)  # a stream that cannot seek does not tell its size
    response.block_size = STREAM_BLOCK_SIZE
    return response


def download_response(item: ModelVersion, kind: str) -> HttpResponseBase:
    """One of a version's downloads (a key of ``download_names``) as an attachment. Raises
    ObjectNotFound or StorageError when a stored object cannot be read."""
    filename = download_names(item)[kind]
    if kind == "attestation":
        return _attachment(attestation_bytes(item), filename, JSON_TYPE)
    if kind == "model-sig":
        return _attachment(model_signature_bytes(item), filename, JSON_TYPE)
    if kind == "public-key":
        return _attachment(public_key_bytes(item), filename, "application/x-pem-file")
    url, content_type = (
        (item.model_path, "application/gzip")
        if kind == "artifact"
        else (record_url(item), JSON_TYPE)
    )
    response = _stored_file(url, filename, content_type)
    if kind == "artifact":
        # RFC 9530: what the registry says the bytes are, for the client to compare.
        digest = base64.b64encode(bytes.fromhex(item.sha256)).decode()
        response["Repr-Digest"] = f"sha-256=:{digest}:"
    return response


@require_GET
@browse_required
def version_download(request: HttpRequest, name: str, version: str, kind: str) -> HttpResponseBase:
    """The artifact, its attestation bundle, model.sig, aegis.json or the signing public key."""
    if request.GET:
        return error_page(request, 400, "Invalid request", "Downloads take no query parameters.")
    item = _version_or_404(name, version)
    names = download_names(item)
    if kind not in names:
        raise Http404(f"There is no download {kind!r}; there are {', '.join(names)}.")
    try:
        return download_response(item, kind)
    except ObjectNotFound as error:
        return error_page(request, 404, "Not in storage", f"{error}.")
    except StorageError as error:
        return error_page(request, 502, "Storage unavailable", f"{error}.")


# --- audit ----------------------------------------------------------------------------------

CHAIN_CACHE_KEY = "audit:chain-status"
CHAIN_CACHE_SECONDS = 300
DETAIL_VALUE_LIMIT = 500
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ChainStatus:
    """``verify_chain()``'s answer, as cached for the audit page."""

    ok: bool
    checked: int
    reason: str
    broken_sequence: int | None
    checked_at: datetime


@dataclass(frozen=True)
class DetailLine:
    """One line of an event's details: a field's change, or a plain value."""

    label: str
    value: str = ""
    before: str = ""
    after: str = ""
    is_change: bool = False


@dataclass(frozen=True)
class AuditRow:
    event: AuditEvent
    action_label: str
    object_url: str
    details: tuple[DetailLine, ...]

    @property
    def message(self) -> str:
        """The import timeline's own sentence, when the event has one."""
        details = self.event.details
        value = details.get("message") if isinstance(details, dict) else None
        return value if isinstance(value, str) else ""

    @property
    def changes(self) -> tuple[DetailLine, ...]:
        return tuple(line for line in self.details if line.is_change)

    @property
    def other_details(self) -> tuple[DetailLine, ...]:
        return tuple(
            line for line in self.details if not line.is_change and line.label != "message"
        )


ACTION_LABELS = dict(Action.choices)


def chain_status(*, refresh: bool = False) -> ChainStatus:
    """The chain check, cached for a few minutes (it reads every event)."""
    if not refresh:
        cached = cache.get(CHAIN_CACHE_KEY)
        if isinstance(cached, ChainStatus):
            return cached
    report = verify_chain()
    status = ChainStatus(
        ok=report.ok,
        checked=report.checked,
        reason=report.reason,
        broken_sequence=report.broken.sequence if report.broken is not None else None,
        checked_at=timezone.now(),
    )
    cache.set(CHAIN_CACHE_KEY, status, CHAIN_CACHE_SECONDS)
    return status


def _display(value: Any) -> str:
    if value is None:
        text = "—"
    elif value == "":
        text = "(empty)"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list) and all(
        isinstance(item, str | int | float) and not isinstance(item, bool) for item in value
    ):
        text = ", ".join(str(item) for item in value) if value else "(none)"
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if len(text) > DETAIL_VALUE_LIMIT:
        return text[: DETAIL_VALUE_LIMIT - 1] + "…"
    return text


def detail_lines(details: Any) -> tuple[DetailLine, ...]:
    """An event's details for people: each edited field as before → after, then the rest."""
    if not isinstance(details, dict):
        return (DetailLine("details", _display(details)),) if details else ()
    lines: list[DetailLine] = []
    rest = dict(details)
    changes = rest.pop("changes", None)
    if isinstance(changes, dict) and all(
        isinstance(change, dict) and {"before", "after"} <= change.keys()
        for change in changes.values()
    ):
        for field, change in changes.items():
            lines.append(
                DetailLine(
                    str(field),
                    before=_display(change["before"]),
                    after=_display(change["after"]),
                    is_change=True,
                )
            )
    elif changes is not None:
        rest["changes"] = changes
    if "before" in rest and "after" in rest:  # a status change
        lines.append(
            DetailLine(
                "status",
                before=_display(rest.pop("before")),
                after=_display(rest.pop("after")),
                is_change=True,
            )
        )
    lines.extend(DetailLine(str(key), _display(value)) for key, value in rest.items())
    return tuple(lines)


def _object_url(event: AuditEvent) -> str:
    try:
        if event.object_type == "version" and event.object_repr.startswith(f"{event.model_name} "):
            number = event.object_repr[len(event.model_name) + 1 :]
            return reverse("registry:version", args=[event.model_name, number])
        if event.object_type == "model" and event.model_name:
            return reverse("registry:model", args=[event.model_name])
        if event.object_type == "import" and event.object_id.isdigit():
            return reverse("imports:detail", args=[int(event.object_id)])
    except NoReverseMatch:
        pass
    return ""


def _audit_row(event: AuditEvent) -> AuditRow:
    return AuditRow(
        event=event,
        action_label=ACTION_LABELS.get(event.action, event.action),
        object_url=_object_url(event),
        details=detail_lines(event.details),
    )


EXPORT_COLUMNS = (
    "sequence",
    "created_at",
    "actor",
    "actor_user",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "model_name",
    "details",
    "previous_hash",
    "hash",
)
EXPORT_BATCH = 2000


def export_record(event: AuditEvent) -> dict[str, Any]:
    """Everything the hash covers, and the hashes: enough to re-check the chain elsewhere."""
    return {**event.content(), "previous_hash": event.previous_hash, "hash": event.hash}


def _csv_cell(value: Any) -> str:
    if isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    else:
        text = "" if value is None else str(value)
    # A spreadsheet would run a cell starting like a formula; the JSON export is verbatim.
    return "'" + text if text.startswith(CSV_FORMULA_PREFIXES) else text


class _Echo:
    """A file-like object whose write() hands the line back, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def _export_filename(extension: str) -> str:
    return f"aegis-audit-{timezone.now():%Y%m%dT%H%M%SZ}.{extension}"


def _csv_export(events: QuerySet[AuditEvent]) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(EXPORT_COLUMNS)
        for event in events.iterator(chunk_size=EXPORT_BATCH):
            record = export_record(event)
            yield writer.writerow([_csv_cell(record[column]) for column in EXPORT_COLUMNS])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, _export_filename("csv"))
    return response


def _json_export(events: QuerySet[AuditEvent], filters: dict[str, str]) -> StreamingHttpResponse:
    def chunks() -> Iterator[str]:
        yield '{"filters": ' + json.dumps(filters, sort_keys=True) + ', "events": ['
        separator = "\n"
        for event in events.iterator(chunk_size=EXPORT_BATCH):
            yield separator + json.dumps(export_record(event), sort_keys=True, ensure_ascii=False)
            separator = ",\n"
        yield "\n]}\n"

    response = StreamingHttpResponse(chunks(), content_type=JSON_TYPE)
    response["Content-Disposition"] = content_disposition_header(True, _export_filename("json"))
    return response


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
        return _csv_export(events)
    if form.export_format == "json":
        return _json_export(events, form.active_filters())
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
            "rows": [_audit_row(event) for event in page.object_list],
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
