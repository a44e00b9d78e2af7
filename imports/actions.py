"""State changes of import requests: each atomic, with an explicit actor, writing its event."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import django_rq
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from aegis_catalog.lib.hub import HubError, validate_repo_id, validate_revision
from imports.hub_cache import pinned_commit
from imports.models import ImportEvent, ImportRequest
from registry import audit
from registry.models import ImportPolicy, ModelVersion, name_validator, version_validator
from registry.policy import COMMIT_PATTERN, RULE_REQUIRE_COMMIT, PolicyViolation

QUEUE_NAME = "imports"
MAX_PATTERNS = 100
SIGN_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
S3_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class ImportRejected(Exception):
    """The import cannot be started as asked; the message says why, ``field`` which input."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ImportQueueUnavailable(ImportRejected):
    """Redis, which holds the import queue, does not answer: nothing was started."""


class VersionTaken(ImportRejected):
    """The registry already has the requested name and version (for other content)."""


QUEUE_UNAVAILABLE = "the import queue is unavailable (Redis does not answer)"


def check_queue() -> None:
    """Raise ImportQueueUnavailable unless the queue's Redis answers (never shows its URL,
    which may carry a password)."""
    try:
        django_rq.get_connection(QUEUE_NAME).ping()
    except (RedisError, OSError):
        raise ImportQueueUnavailable(
            f"{QUEUE_UNAVAILABLE}: nothing was started; try again once it is back"
        ) from None


@dataclass(frozen=True)
class ImportOptions:
    repo_id: str
    model_name: str
    version: str
    revision: str = "main"
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    sign_key: str = ""
    upload_s3: bool = False
    s3_bucket: str = ""
    register: bool = True


def _check_policy_at_request(revision: str) -> None:
    """The policy rules a request can break before anything runs: answered at once."""
    rules = ImportPolicy.current().rules()
    if rules.require_commit and not COMMIT_PATTERN.fullmatch(revision):
        raise ImportRejected(
            str(
                PolicyViolation(
                    RULE_REQUIRE_COMMIT,
                    f"{revision!r} is a branch or tag that can move: the import policy "
                    "requires the 40-character commit",
                )
            )
        )


def _validate_source(options: ImportOptions) -> tuple[str, str]:
    """The repo id and revision, checked by the Hub's own rules and the policy."""
    try:
        repo_id = validate_repo_id(options.repo_id)
    except HubError as error:
        raise ImportRejected(str(error), "repo_id") from None
    try:
        revision = validate_revision(options.revision or "main")
    except HubError as error:
        raise ImportRejected(str(error), "revision") from None
    _check_policy_at_request(revision)
    return repo_id, revision


def _validate_names(options: ImportOptions) -> None:
    for field, label, validator, value in (
        ("model_name", "model name", name_validator, options.model_name),
        ("version", "version", version_validator, options.version),
    ):
        try:
            validator(value)
        except ValidationError as error:
            raise ImportRejected(
                f"invalid {label} {value!r}: {' '.join(error.messages)}", field
            ) from None


def _validate_patterns(options: ImportOptions) -> None:
    patterns = [*options.include, *options.exclude]
    if len(patterns) > MAX_PATTERNS:
        raise ImportRejected(f"at most {MAX_PATTERNS} file patterns, not {len(patterns)}")
    for field, values in (("include", options.include), ("exclude", options.exclude)):
        for pattern in values:
            if not pattern.strip() or len(pattern) > 300 or _CONTROL_CHARACTERS.search(pattern):
                raise ImportRejected(f"invalid file pattern {pattern!r}", field)


def _validate_sign_key(options: ImportOptions) -> str:
    sign_key = options.sign_key or settings.AEGIS_SIGN_KEY
    if not SIGN_KEY_RE.fullmatch(sign_key):
        # The name becomes part of Vault API paths (transit/sign/<name>).
        raise ImportRejected(
            f"invalid signing key name {sign_key!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            "sign_key",
        )
    return sign_key


def _validate_bucket(options: ImportOptions) -> str:
    bucket = options.s3_bucket or (settings.AEGIS_S3_BUCKET or "")
    if not options.upload_s3:
        return ""
    if not bucket:
        raise ImportRejected(
            "upload to S3 needs a bucket: pass --s3-bucket or set AEGIS_S3_BUCKET", "upload_s3"
        )
    if not S3_BUCKET_RE.fullmatch(bucket):
        raise ImportRejected(
            f"invalid S3 bucket name {bucket!r}: use 3-63 lowercase letters, digits, '.' or '-', "
            "starting and ending with a letter or digit",
            "s3_bucket",
        )
    return bucket


def _validate(options: ImportOptions) -> ImportOptions:
    """The options checked and normalised, or ImportRejected naming the field at fault."""
    repo_id, revision = _validate_source(options)
    _validate_names(options)
    _validate_patterns(options)
    sign_key = _validate_sign_key(options)
    bucket = _validate_bucket(options)
    return ImportOptions(
        repo_id=repo_id,
        model_name=options.model_name,
        version=options.version,
        revision=revision,
        include=[p.strip() for p in options.include],
        exclude=[p.strip() for p in options.exclude],
        sign_key=sign_key,
        upload_s3=options.upload_s3,
        s3_bucket=bucket,
        register=options.register,
    )


def check_version_free(model_name: str, version: str) -> None:
    """Raise VersionTaken when the registry already has ``model_name`` ``version``."""
    if ModelVersion.objects.filter(model__name=model_name, version=version).exists():
        raise VersionTaken(f"{model_name} already has a version {version} in the registry")


def existing_version(
    repo_id: str, commit: str, include: Sequence[str], exclude: Sequence[str]
) -> ModelVersion | None:
    """A registry version already imported from this repo, commit and file patterns."""
    for version in (
        ModelVersion.objects.filter(source_repo=repo_id, source_commit=commit)
        .exclude(status=ModelVersion.Status.YANKED)
        .select_related("model")
        .order_by("imported_at")
    ):
        options = version.import_options or {}
        if sorted(options.get("include") or []) == sorted(include) and sorted(
            options.get("exclude") or []
        ) == sorted(exclude):
            return version
    return None


WORKER_ACTOR = "aegis-worker"


@transaction.atomic
def record_event(
    request: ImportRequest,
    kind: str,
    message: str,
    *,
    stage: str = "",
    details: dict[str, Any] | None = None,
    actor: str = WORKER_ACTOR,
    user: User | AnonymousUser | None = None,
) -> ImportEvent:
    """One line of the import's timeline, and the same in the audit trail."""
    event = ImportEvent.objects.create(
        request=request, kind=kind, stage=stage, message=message, details=details or {}
    )
    audit.record(
        f"import.{kind}",
        actor=actor,
        user=user,
        object_type="import",
        object_id=request.pk,
        object_repr=f"import #{request.pk} {request.repo_id}@{request.revision}",
        model_name=request.model_name,
        details={"message": message, "stage": stage, **(details or {})},
    )
    return event


def transition(
    request: ImportRequest,
    kind: str,
    message: str,
    *,
    update: dict[str, Any],
    where: dict[str, Any] | None = None,
    stage: str = "",
    details: dict[str, Any] | None = None,
    actor: str = WORKER_ACTOR,
) -> bool:
    """Change the row (if it still matches ``where``) and record why, in one transaction."""
    with transaction.atomic():
        changed = ImportRequest.objects.filter(pk=request.pk, **(where or {})).update(**update)
        if changed:
            record_event(request, kind, message, stage=stage, details=details, actor=actor)
    return bool(changed)


def enqueue_import(request: ImportRequest) -> None:
    """Queue the job once the row is committed (a worker must be able to read it)."""
    from imports.jobs import run_import

    request_id = request.pk

    def _enqueue() -> None:
        # Already running on commit: enqueue now, not on yet another commit.
        queue = django_rq.get_queue(QUEUE_NAME, commit_mode="auto")
        try:
            job = queue.enqueue(
                run_import, request_id, job_id=f"import-{request_id}-{uuid4().hex[:12]}"
            )
        except (RedisError, OSError):
            # Redis went away after check_queue(): a clear failed row that Retry re-queues,
            # not a queued row no worker will ever see.
            transition(
                request,
                ImportEvent.Kind.FAILED,
                f"{QUEUE_UNAVAILABLE}: the job could not be queued",
                where={"status": ImportRequest.Status.QUEUED},
                details={"code": "queue_unavailable"},
                update={
                    "status": ImportRequest.Status.FAILED,
                    "error": f"{QUEUE_UNAVAILABLE}: the job could not be queued; retry once "
                    "it is back",
                    "error_code": "queue_unavailable",
                    "finished_at": timezone.now(),
                },
            )
            return
        ImportRequest.objects.filter(pk=request_id).update(job_id=job.id)

    transaction.on_commit(_enqueue)


@dataclass(frozen=True)
class ImportRequested:
    """What asking for an import led to: a queued import, or the version already registered
    with the same content (then nothing was started)."""

    commit: str
    request: ImportRequest | None = None
    existing: ModelVersion | None = None


@transaction.atomic
def request_import(
    options: ImportOptions,
    *,
    actor: str,
    user: User | AnonymousUser | None = None,
    source: str = ImportRequest.Source.WEB,
    enqueue: bool = True,
    interactive: bool = True,
) -> ImportRequested:
    """Ask for an import, as the page, the API and ``hf_import`` do: validate the options, pin
    the revision to its commit, answer with the version already registered from that repo,
    commit and file patterns (when registering), refuse a name and version already taken, then
    write the row and queue its job.

    Raises ImportRejected (VersionTaken, ImportQueueUnavailable) or the Hub's HubError;
    ``interactive`` (someone waits at a page) asks the Hub once, without retries.
    """
    clean = _validate(options)
    commit = pinned_commit(clean.repo_id, clean.revision, interactive=interactive)
    if clean.register:
        existing = existing_version(clean.repo_id, commit, clean.include, clean.exclude)
        if existing is not None:
            return ImportRequested(commit=commit, existing=existing)
        check_version_free(clean.model_name, clean.version)
    request = _create_request(
        clean, commit=commit, actor=actor, user=user, source=source, enqueue=enqueue
    )
    return ImportRequested(commit=commit, request=request)


@transaction.atomic
def start_import(
    options: ImportOptions,
    *,
    actor: str,
    user: User | AnonymousUser | None = None,
    source: str = ImportRequest.Source.WEB,
    enqueue: bool = True,
) -> ImportRequest:
    """Validate the options, write the ImportRequest row and, unless told not to, queue its job;
    the resolve stage pins the revision. (``request_import`` pins it first.)"""
    clean = _validate(options)
    if clean.register:
        check_version_free(clean.model_name, clean.version)
    return _create_request(clean, commit="", actor=actor, user=user, source=source, enqueue=enqueue)


def _create_request(
    clean: ImportOptions,
    *,
    commit: str,
    actor: str,
    user: User | AnonymousUser | None,
    source: str,
    enqueue: bool,
) -> ImportRequest:
    if enqueue:
        check_queue()
    request = ImportRequest.objects.create(
        repo_id=clean.repo_id,
        revision=clean.revision,
        commit=commit,
        model_name=clean.model_name,
        version=clean.version,
        include_patterns=list(clean.include),
        exclude_patterns=list(clean.exclude),
        sign_key=clean.sign_key,
        upload_s3=clean.upload_s3,
        s3_bucket=clean.s3_bucket,
        register=clean.register,
        source=source,
        requested_by=user if isinstance(user, User) else None,
        actor=actor,
    )
    details: dict[str, Any] = {"include": list(clean.include), "exclude": list(clean.exclude)}
    if commit:
        details["commit"] = commit
    record_event(
        request,
        ImportEvent.Kind.REQUESTED,
        f"{actor} asked to import {clean.repo_id}@{clean.revision} as "
        f"{clean.model_name} {clean.version}",
        details=details,
        actor=actor,
        user=user,
    )
    if enqueue:
        enqueue_import(request)
    return request


@transaction.atomic
def retry_import(request: ImportRequest, *, actor: str, enqueue: bool = True) -> ImportRequest:
    """Queue a failed or cancelled import again; finished stages are not redone."""
    if enqueue:
        check_queue()
    updated = ImportRequest.objects.filter(
        pk=request.pk,
        status__in=[ImportRequest.Status.FAILED, ImportRequest.Status.CANCELLED],
    ).update(
        status=ImportRequest.Status.QUEUED,
        error="",
        error_code="",
        cancel_requested=False,
        finished_at=None,
    )
    if not updated:
        raise ImportRejected(
            f"import #{request.pk} is {request.status}: "
            "only failed or cancelled imports can be retried"
        )
    request.refresh_from_db()
    record_event(request, ImportEvent.Kind.RETRIED, f"{actor} retried the import", actor=actor)
    if enqueue:
        enqueue_import(request)
    return request


@transaction.atomic
def cancel_import(request: ImportRequest, *, actor: str) -> ImportRequest:
    """Cancel a queued import now; ask a running one to stop at its next checkpoint."""
    if ImportRequest.objects.filter(pk=request.pk, status=ImportRequest.Status.QUEUED).update(
        status=ImportRequest.Status.CANCELLED, finished_at=timezone.now(), cancel_requested=True
    ):
        request.refresh_from_db()
        record_event(
            request, ImportEvent.Kind.CANCELLED, f"{actor} cancelled the import", actor=actor
        )
        return request
    if ImportRequest.objects.filter(pk=request.pk, status=ImportRequest.Status.RUNNING).update(
        cancel_requested=True
    ):
        request.refresh_from_db()
        record_event(
            request,
            ImportEvent.Kind.NOTE,
            f"{actor} asked the running import to stop",
            actor=actor,
        )
        return request
    raise ImportRejected(f"import #{request.pk} is {request.status}: it cannot be cancelled")
