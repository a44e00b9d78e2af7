"""Request and response shapes of ``/api/v1/``; the OpenAPI description is generated from them.

Input patterns repeat the rules the forms and actions enforce (registry names and versions,
no control characters), so the description tells clients what is accepted; the forms and
``imports.actions`` still validate every value once more.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from ninja import Field, Schema
from pydantic import BeforeValidator, StrictBool

from aegis_catalog.web.forms import MAX_PAGE, MAX_QUERY_LENGTH
from registry.audit import Action
from registry.models import NAME_PATTERN, VERSION_PATTERN

MAX_PER_PAGE = 100
MAX_AUDIT_PER_PAGE = 200
MAX_CURSOR_LIMIT = 200
MAX_ID = 2**63 - 1
# Text a person types: no control characters (the forms refuse them as well).
PLAIN_TEXT = r"^[^\x00-\x1f\x7f]*$"
TAG_OR_EMPTY = r"^([A-Za-z0-9][A-Za-z0-9._:+/-]{0,99})?$"
SHA256 = r"^[0-9a-f]{64}$"
# Glob patterns of the import form: one per item, no separator the form would split on, and
# short enough that the form's 3,000 characters per list hold.
MAX_PATTERNS = 10
FilePattern = Annotated[
    str,
    Field(
        min_length=1,
        max_length=250,
        pattern=r"^[^\x00-\x1f\x7f,]*[^\x00-\x20\x7f,][^\x00-\x1f\x7f,]*$",
    ),
]


def _iso_date(value: Any) -> Any:
    """Only ``YYYY-MM-DD``: pydantic alone would also read ``0`` as a Unix time."""
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("Enter a date as YYYY-MM-DD.")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
# Printable ASCII except the characters git refuses in ref names (~ ^ : ? * [ \); the other
# git rules (no "..", no ".lock" ending, ...) are checked by the import form's validation.
REVISION_CHARACTERS = r"^[!-)+-9;->@-Z\]_-}]+$"
# What the server refuses beyond the patterns (aegis_catalog.lib.hub.validate_revision and
# validate_repo_id), stated in the OpenAPI description as "not" patterns so a client, or
# schemathesis, knows every rule; the server checks them with the same validators.
REVISION_REFUSED = (r"\.\.", "//", r"@\{", r"/\.", "^[/.-]", "[/.]$", r"\.lock$")
_REPO_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
REPO_ID_PATTERN = rf"^{_REPO_PART}/{_REPO_PART}$"
REPO_ID_REFUSED = (r"\.\.", "--", r"\.git$")
VersionStatus = Literal["active", "deprecated", "yanked", "awaiting", "rejected"]
ImportStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
DownloadKind = Literal["artifact", "attestation", "model-sig", "record", "public-key"]


# --- errors -----------------------------------------------------------------------------------


class ErrorDetail(Schema):
    code: str = Field(description="machine-readable: bad_request, unauthenticated, forbidden, …")
    message: str = Field(description="what went wrong, in words a person can act on")
    field: str | None = Field(None, description="the parameter or body field at fault, if one")


class ErrorOut(Schema):
    """Every error answer of the API has this shape."""

    error: ErrorDetail


# --- paging ---------------------------------------------------------------------------------


class PageQuery(Schema):
    page: int = Field(1, ge=1, le=MAX_PAGE, description="page number, from 1")
    per_page: int = Field(25, ge=1, le=MAX_PER_PAGE, description=f"at most {MAX_PER_PAGE}")


class PageInfo(Schema):
    page: int
    per_page: int
    total: int = Field(description="how many items match, on every page together")
    pages: int
    next: str | None = Field(description="URL of the next page, or null on the last")
    previous: str | None


# --- registry -------------------------------------------------------------------------------


class ModelQuery(PageQuery):
    """The registry page's search and filters."""

    q: str = Field(
        "", max_length=MAX_QUERY_LENGTH, pattern=PLAIN_TEXT, description="in name or Hub repo"
    )
    license: str = Field("", max_length=100, pattern=PLAIN_TEXT)
    task: str = Field("", max_length=100, pattern=PLAIN_TEXT, description="pipeline tag")
    author: str = Field("", max_length=100, pattern=PLAIN_TEXT)
    tag: str = Field("", max_length=100, pattern=TAG_OR_EMPTY)


class ModelSummary(Schema):
    name: str
    source_repo: str
    author: str
    license: str
    pipeline_tag: str
    library_name: str
    tags: list[Any]
    version_count: int
    latest_version: str | None
    last_imported_at: datetime | None
    url: str
    html_url: str


class ModelPage(PageInfo):
    items: list[ModelSummary]


class VersionSummary(Schema):
    model: str
    version: str
    status: VersionStatus
    sha256: str
    size: int
    source_repo: str
    source_commit: str
    imported_at: datetime
    url: str


class VersionPage(PageInfo):
    items: list[VersionSummary]


class ModelDetail(Schema):
    name: str
    source_repo: str
    author: str
    license: str
    pipeline_tag: str
    library_name: str
    base_model: str
    tags: list[Any]
    datasets: list[Any]
    languages: list[Any]
    gated: str
    card_data: dict[str, Any] = Field(description="the card's YAML metadata, as imported")
    created_at: datetime
    updated_at: datetime
    url: str
    html_url: str
    versions: VersionPage


class VersionListQuery(Schema):
    model: str = Field("", max_length=100, pattern=PLAIN_TEXT, description="a registry name")
    status: VersionStatus | None = None
    sha256: str | None = Field(None, pattern=SHA256, description="the tarball's sha256")
    cursor: int | None = Field(
        None, ge=0, le=MAX_ID, description="`next_cursor` of the previous page; omit for the first"
    )
    limit: int = Field(50, ge=1, le=MAX_CURSOR_LIMIT, description=f"at most {MAX_CURSOR_LIMIT}")


class VersionCursorPage(Schema):
    items: list[VersionSummary]
    limit: int
    next_cursor: int | None = Field(description="pass as `cursor` for the next page; null: done")
    next: str | None


class SigningKeyOut(Schema):
    name: str
    version: int
    algorithm: str
    fingerprint: str = Field(description="sha256 of the public key, as bundles name it")
    public_key_pem: str
    revoked: bool
    revoked_at: datetime | None
    vault_created_at: datetime | None
    fetched_at: datetime


class KeyPage(PageInfo):
    items: list[SigningKeyOut]


class SourceOut(Schema):
    repo: str
    revision: str
    commit: str
    endpoint: str


class MetadataOut(Schema):
    """Card metadata: the version's license at its commit, the rest from the model's card."""

    license: str
    author: str
    pipeline_tag: str
    library_name: str
    base_model: str
    tags: list[Any]
    datasets: list[Any]
    languages: list[Any]
    gated: str


class VersionLinks(Schema):
    self: str
    html: str
    model: str
    artifact: str
    attestation: str
    model_sig: str
    record: str = Field(description="aegis.json, the import record")
    public_key: str


class VersionDetail(Schema):
    model: str
    version: str
    status: VersionStatus
    status_reason: str
    model_path: str = Field(description="file:// or s3:// URL of the tar.gz in storage")
    sha256: str
    size: int
    file_count: int
    signing_key: SigningKeyOut
    source: SourceOut
    imported_by: str
    imported_at: datetime
    import_options: dict[str, Any]
    metadata: MetadataOut
    files: list[Any] = Field(description="the manifest: path, size, sha256 and the Hub's digest")
    scan_results: list[Any]
    links: VersionLinks


# --- imports --------------------------------------------------------------------------------


class ImportIn(Schema):
    """What the import form asks for."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"repo_id": "acme/tiny-bert", "model_name": "tiny-bert", "version": "2026.11.1"}
            ]
        }
    }

    repo_id: str = Field(
        min_length=3,
        max_length=193,
        pattern=REPO_ID_PATTERN,
        description="org/name on the Hub: each part at most 96 letters, digits, '-', '_' or '.', "
        "not starting or ending with '-' or '.'; no '..' or '--'; no '.git' ending",
        json_schema_extra={"allOf": [{"not": {"pattern": bad}} for bad in REPO_ID_REFUSED]},
    )
    model_name: str = Field(pattern=NAME_PATTERN, max_length=100)
    version: str = Field(pattern=VERSION_PATTERN, max_length=64)
    revision: str = Field(
        "main",
        min_length=1,
        max_length=200,
        pattern=REVISION_CHARACTERS,
        description="branch, tag or 40-hex commit; printable ASCII without ~^:?*[\\, and a git "
        "ref name: no '..', '//', '@{' or '/.', not starting with '/', '-' or '.', not ending "
        "with '/', '.' or '.lock'",
        json_schema_extra={"allOf": [{"not": {"pattern": bad}} for bad in REVISION_REFUSED]},
    )
    include: list[FilePattern] = Field(
        default_factory=list, max_length=MAX_PATTERNS, description="globs; empty: every file"
    )
    exclude: list[FilePattern] = Field(
        default_factory=list, max_length=MAX_PATTERNS, description="globs of files to leave out"
    )
    upload_s3: StrictBool = False
    register_version: StrictBool = Field(
        True, alias="register", description="register the artifact in the registry"
    )


class ImportEventOut(Schema):
    created_at: datetime
    kind: str
    stage: str
    message: str
    details: dict[str, Any]


class ImportLinks(Schema):
    self: str
    html: str
    version: str | None = Field(description="the registry version it produced, once it has")


class ImportOut(Schema):
    id: int
    status: ImportStatus
    is_terminal: bool
    stage: str
    repo_id: str
    revision: str
    commit: str
    model_name: str
    version: str
    include: list[Any]
    exclude: list[Any]
    upload_s3: bool
    register_version: bool = Field(alias="register")
    source: str
    actor: str
    requested_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    bytes_done: int
    bytes_total: int
    attempts: int
    cancel_requested: bool
    error: str
    error_code: str
    links: ImportLinks
    events: list[ImportEventOut]


class ExistingVersionOut(Schema):
    """Nothing was imported: the same repo, commit and file patterns are already registered."""

    message: str
    existing_version: VersionSummary


# --- audit ----------------------------------------------------------------------------------


class AuditQuery(Schema):
    actor: str = Field("", max_length=300, pattern=PLAIN_TEXT)
    action: Action | None = None
    model: str = Field("", max_length=100, pattern=PLAIN_TEXT)
    date_from: IsoDate | None = Field(None, alias="from", description="first day, YYYY-MM-DD")
    date_to: IsoDate | None = Field(None, alias="to", description="last day, included")
    page: int = Field(1, ge=1, le=MAX_PAGE)
    per_page: int = Field(50, ge=1, le=MAX_AUDIT_PER_PAGE)


class AuditEventOut(Schema):
    sequence: int
    created_at: datetime
    actor: str
    actor_user: int | None
    action: str
    object_type: str
    object_id: str
    object_repr: str
    model_name: str
    details: dict[str, Any]
    previous_hash: str
    hash: str


class AuditPage(PageInfo):
    items: list[AuditEventOut]


# --- approvals and the upstream watch -------------------------------------------------------

ApprovalDecision = Literal["pending", "approved", "rejected"]


class ApprovalOut(Schema):
    model: str
    version: str
    status: VersionStatus
    decision: ApprovalDecision
    requested_by: str
    requested_at: datetime
    decided_by: str
    decided_at: datetime | None
    reason: str
    url: str = Field(description="the version in the API")
    html_url: str = Field(description="the version's provenance page")


class ApprovalList(Schema):
    pending: list[ApprovalOut] = Field(description="oldest first")
    decided: list[ApprovalOut] = Field(description="the 20 latest decisions, newest first")


class DecisionIn(Schema):
    decision: Literal["approve", "reject"]
    reason: str = Field(..., min_length=1, max_length=2000, pattern=PLAIN_TEXT)


UpstreamStateName = Literal["not_checked", "in_sync", "changed", "gone"]


class UpstreamOut(Schema):
    model: str
    state: UpstreamStateName = Field(description="not_checked until the watch's first pass")
    needs_attention: bool
    baseline_version: str | None = Field(description="the version the diff is measured from")
    tracked_revision: str
    upstream_commit: str
    diff: dict[str, Any] = Field(description="what changed since the baseline's commit")
    checked_at: datetime | None
    changed_at: datetime | None
    attempted_at: datetime | None
    error: str = Field(description="why the last attempt could not check (never a change)")
