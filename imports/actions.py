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
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from aegis_catalog.lib.hub import HubError, validate_repo_id, validate_revision
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
    """The import cannot be started as asked; the message says why."""


class ImportQueueUnavailable(ImportRejected):
    """Redis, which holds the import queue, does not answer: nothing was started."""


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


def _validate(options: ImportOptions) -> ImportOptions:
    from django.core.exceptions import ValidationError

    try:
        repo_id = validate_repo_id(options.repo_id)
        revision = validate_revision(options.revision or "main")
    except HubError as error:
        raise ImportRejected(str(error)) from None
    _check_policy_at_request(revision)
    for label, validator, value in (
        ("model name", name_validator, options.model_name),
        ("version", version_validator, options.version),
    ):
        try:
            validator(value)
        except ValidationError as error:
            raise ImportRejected(f"invalid {label} {value!r}: {' '.join(error.messages)}") from None
    patterns = [*options.include, *options.exclude]
    if len(patterns) > MAX_PATTERNS:
        raise ImportRejected(f"at most {MAX_PATTERNS} file patterns, not {len(patterns)}")
    for pattern in patterns:
        if not pattern.strip() or len(pattern) > 300 or _CONTROL_CHARACTERS.search(pattern):
            raise ImportRejected(f"invalid file pattern {pattern!r}")
    sign_key = options.sign_key or settings.AEGIS_SIGN_KEY
    if not SIGN_KEY_RE.fullmatch(sign_key):
        # The name becomes part of Vault API paths (transit/sign/<name>).
        raise ImportRejected(
            f"invalid signing key name {sign_key!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    bucket = options.s3_bucket or (settings.AEGIS_S3_BUCKET or "")
    if options.upload_s3 and not bucket:
        raise ImportRejected("upload to S3 needs a bucket: pass --s3-bucket or set AEGIS_S3_BUCKET")
    if options.upload_s3 and not S3_BUCKET_RE.fullmatch(bucket):
        raise ImportRejected(
            f"invalid S3 bucket name {bucket!r}: use 3-63 lowercase letters, digits, '.' or '-', "
            "starting and ending with a letter or digit"
        )
    if (
        options.register
        and ModelVersion.objects.filter(
            model__name=options.model_name, version=options.version
        ).exists()
    ):
        raise ImportRejected(
            f"{options.model_name} already has a version {options.version} in the registry"
        )
    return ImportOptions(
        repo_id=repo_id,
        model_name=options.model_name,
        version=options.version,
        revision=revision,
        include=[p.strip() for p in options.include],
        exclude=[p.strip() for p in options.exclude],
        sign_key=sign_key,
        upload_s3=options.upload_s3,
        s3_bucket=bucket if options.upload_s3 else "",
        register=options.register,
    )


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


@transaction.atomic
def start_import(
    options: ImportOptions,
    *,
    actor: str,
    user: User | AnonymousUser | None = None,
    source: str = ImportRequest.Source.WEB,
    enqueue: bool = True,
) -> ImportRequest:
    """Validate the options, write the ImportRequest row and, unless told not to, queue its job."""
    clean = _validate(options)
    if enqueue:
        check_queue()
    request = ImportRequest.objects.create(
        repo_id=clean.repo_id,
        revision=clean.revision,
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
    record_event(
        request,
        ImportEvent.Kind.REQUESTED,
        f"{actor} asked to import {clean.repo_id}@{clean.revision} as "
        f"{clean.model_name} {clean.version}",
        details={"include": list(clean.include), "exclude": list(clean.exclude)},
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
