"""A version's provenance page, its downloads and "Verify now"."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from aegis_catalog.lib.storage import InvalidStorageKey, ObjectNotFound, StorageError
from aegis_catalog.web.permissions import (
    AUDIT_GROUPS,
    REGISTRY_ADMIN,
    VERIFY_GROUPS,
    browse_required,
    require_groups,
    user_in_group,
)
from aegis_catalog.web.responses import error_page, is_htmx
from registry import attestation
from registry.audit import Action
from registry.audit_display import audit_row, display_value
from registry.downloads import (
    ALLOW_YANKED,
    STATUS_HEADER,
    RecordMismatch,
    VersionNotApproved,
    VersionYanked,
    download_names,
    download_response,
)
from registry.models import AuditEvent, ModelVersion, VerificationRun, VersionApproval
from registry.provenance import artifact_layout, artifact_root
from registry.pulling import pull_lines, recent_pulls
from registry.verification.runs import VerificationQueueUnavailable, request_verification

# Who may do what on the provenance and audit pages (superusers pass every check):
# every role may read a version's provenance and download its files; auditors, registry
# admins and importers may re-run the verification (it writes an audit event); auditors and
# registry admins read the audit trail.
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
    "manifest": "MANIFEST.sha256 matches every extracted file",
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
    """A "Verify now" run as the page shows it: queued or running, every check passed, or the
    one that failed and why."""

    run_id: int
    state: str
    requested_by: str
    requested_at: datetime
    finished_at: datetime | None
    checks: tuple[CheckLine, ...] = ()
    failed_check: str = ""
    failed_label: str = ""
    error: str = ""

    @property
    def done(self) -> bool:
        return self.state in (VerificationRun.State.PASSED, VerificationRun.State.FAILED)

    @property
    def passed(self) -> bool:
        return self.state == VerificationRun.State.PASSED

    @property
    def may_ask_again(self) -> bool:
        """Done, or not done long after any job would have been stopped (its job was lost:
        Redis flushed, a worker killed before it claimed the run), so the page is not stuck."""
        limit = timedelta(seconds=settings.AEGIS_VERIFY_TIMEOUT + 60)
        return self.done or timezone.now() - self.requested_at > limit


def outcome_of(run: VerificationRun) -> VerificationOutcome:
    checks = run.checks if isinstance(run.checks, list) else []
    return VerificationOutcome(
        run_id=run.pk,
        state=run.state,
        requested_by=run.requested_by,
        requested_at=run.requested_at,
        finished_at=run.finished_at,
        checks=tuple(
            CheckLine(
                str(item.get("name")), check_label(str(item.get("name"))), str(item.get("detail"))
            )
            for item in checks
            if isinstance(item, dict)
        ),
        failed_check=run.failed_check,
        failed_label=check_label(run.failed_check) if run.failed_check else "",
        error=run.error,
    )


def _latest_outcome(item: ModelVersion) -> VerificationOutcome | None:
    run = item.verification_runs.order_by("-requested_at", "-pk").first()
    return outcome_of(run) if run is not None else None


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
    can_audit = user_in_group(request.user, *AUDIT_GROUPS)
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
            (key, display_value(value))
            for key, value in options.items()
            if key not in ("include", "exclude", "import_request", "policy")
        ),
        "import_request_id": import_request_id,
        "statement": statement,
        "statement_error": statement_error,
        "timeline": [audit_row(event) for event in events],
        "timeline_truncated": len(events) == TIMELINE_LIMIT,
        # Template lookups cannot use "-": the same names, keyed with "_".
        "downloads": {
            kind.replace("-", "_"): filename for kind, filename in download_names(item).items()
        },
        "artifact_root": artifact_root(item),
        "artifact_layout": artifact_layout(item),
        "can_verify": user_in_group(request.user, *VERIFY_GROUPS),
        "can_audit": can_audit,
        "pulls": recent_pulls(item) if can_audit else [],
        "verification": _latest_outcome(item),
        **_approval_context(request, item),
        **pull_lines(request, item.model.name, item.version),
    }


def _approval_context(request: HttpRequest, item: ModelVersion) -> dict[str, Any]:
    """The version's approval, and whether this user may decide it (a registry admin who is
    not its requester; the action checks again)."""
    try:
        approval = item.approval  # (selected with the version)
    except VersionApproval.DoesNotExist:
        approval = None
    if approval is None:
        return {"approval": None}
    is_requester = approval.requested_by == request.user.get_username() or (
        approval.requested_by_user_id is not None
        and approval.requested_by_user_id == request.user.pk
    )
    can_decide = (
        approval.decision == VersionApproval.Decision.PENDING
        and user_in_group(request.user, REGISTRY_ADMIN)
        and not is_requester
    )
    return {"approval": approval, "can_decide": can_decide, "is_requester": is_requester}


def _version_or_404(name: str, version: str) -> ModelVersion:
    return get_object_or_404(
        ModelVersion.objects.select_related("model", "signing_key", "imported_by_user", "approval"),
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


def _verification_panel(
    request: HttpRequest,
    item: ModelVersion,
    outcome: VerificationOutcome | None,
    *,
    refused: str = "",
    status: int = 200,
) -> HttpResponse:
    """The verification panel for htmx (with the refreshed timeline once the run is done), or
    the whole page. While a run is queued or running the page polls this every second: the
    panel alone then needs no timeline, statement or pulls."""
    if is_htmx(request) and not (outcome is not None and outcome.done):
        context: dict[str, Any] = {
            "version": item,
            "model": item.model,
            "can_verify": user_in_group(request.user, *VERIFY_GROUPS),
        }
    else:
        context = _provenance_context(request, item)
    context.update(verification=outcome, verification_refused=refused)
    if is_htmx(request):
        panel = render_to_string("registry/version_detail.html#verification", context, request)
        if outcome is not None and outcome.done:
            panel += render_to_string(
                "registry/version_detail.html#timeline", {**context, "oob": True}, request
            )
        response = HttpResponse(panel, status=status)
    else:
        response = render(request, "registry/version_detail.html", context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response


@require_POST
@verify_required
def version_verify(request: HttpRequest, name: str, version: str) -> HttpResponse:
    """Queue ``verify_model_artifact`` on the stored artifact as a background job; the panel
    then follows the run (``version_verification``) until it shows every check, or the one
    that failed. Without htmx, back to the page, which shows the latest run."""
    item = _version_or_404(name, version)
    try:
        run = request_verification(item, actor=request.user.get_username(), user=request.user)
    except VerificationQueueUnavailable as refused:
        return _verification_panel(
            request, item, None, refused=f"Not queued: {refused}.", status=503
        )
    if not is_htmx(request):
        return redirect(item.get_absolute_url() + "#verification", permanent=False)
    return _verification_panel(request, item, outcome_of(run))


@require_GET
@verify_required
def version_verification(request: HttpRequest, name: str, version: str, run: int) -> HttpResponse:
    """One "Verify now" run's panel, polled by the page while the run is queued or running."""
    item = _version_or_404(name, version)
    found = get_object_or_404(VerificationRun, pk=run, version=item)
    if not is_htmx(request):
        return redirect(item.get_absolute_url() + "#verification", permanent=False)
    return _verification_panel(request, item, outcome_of(found))


@require_GET
@browse_required
def version_download(request: HttpRequest, name: str, version: str, kind: str) -> HttpResponseBase:
    """The artifact, its attestation bundle, model.sig, aegis.json or the signing public key.

    A yanked version's artifact answers 410 with the reason, unless an auditor or registry
    admin asks for it explicitly (``?allow_yanked=1``)."""
    if set(request.GET) - {ALLOW_YANKED} or request.GET.get(ALLOW_YANKED, "1") != "1":
        return error_page(
            request,
            400,
            "Invalid request",
            f"Downloads take no query parameters but {ALLOW_YANKED}=1.",
        )
    item = _version_or_404(name, version)
    names = download_names(item)
    if kind not in names:
        raise Http404(f"There is no download {kind!r}; there are {', '.join(names)}.")
    allow_yanked = ALLOW_YANKED in request.GET and user_in_group(request.user, *AUDIT_GROUPS)
    try:
        return download_response(item, kind, allow_yanked=allow_yanked)
    except VersionYanked as refusal:
        response = error_page(request, 410, "Version yanked", str(refusal))
    except VersionNotApproved as refusal:
        response = error_page(request, refusal.status, "Not approved", f"{refusal}.")
    except RecordMismatch as mismatch:
        response = error_page(request, 409, "Import record does not match", f"{mismatch}.")
    except InvalidStorageKey as error:
        response = error_page(request, 403, "Not served", f"{error}.")
    except ObjectNotFound as error:
        response = error_page(request, 404, "Not in storage", f"{error}.")
    except StorageError as error:
        response = error_page(request, 502, "Storage unavailable", f"{error}.")
    response[STATUS_HEADER] = item.status
    return response
