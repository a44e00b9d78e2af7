"""State changes of import requests: each atomic, with an explicit actor, writing its event."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import uuid4

import django_rq
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from redis.exceptions import RedisError

from aegis_catalog.queues import require_queue
from imports.errors import ImportCancelled, ImportSuperseded, error_code, failure_message
from imports.hub_cache import pinned_commit
from imports.models import ImportEvent, ImportRequest, Stage
from imports.options import ImportOptions, ImportRejected, validate_options
from registry import audit
from registry.models import ModelVersion, RegisteredModel

QUEUE_NAME = "imports"
RUN_IMPORT = "imports.jobs.run_import"
REBUILD = "imports.jobs.rebuild_job"


class ImportQueueUnavailable(ImportRejected):
    """Redis, which holds the import queue, does not answer: nothing was started."""


class VersionTaken(ImportRejected):
    """The registry already has the requested name and version (for other content)."""


QUEUE_UNAVAILABLE = "the import queue is unavailable (Redis does not answer)"


def check_queue() -> None:
    """Raise ImportQueueUnavailable unless the queue's Redis answers (never shows its URL,
    which may carry a password)."""
    require_queue(
        QUEUE_NAME,
        ImportQueueUnavailable,
        f"{QUEUE_UNAVAILABLE}: nothing was started; try again once it is back",
    )


def request_rebuild(version: ModelVersion, *, actor: str, user_id: int | None) -> None:
    """Queue a rebuild of ``version`` from the Hub; its result goes on the audit trail.
    ImportQueueUnavailable when Redis does not answer."""
    check_queue()
    queue = django_rq.get_queue(QUEUE_NAME)
    try:
        queue.enqueue(
            REBUILD, version.pk, actor, user_id, job_id=f"rebuild-{version.pk}-{uuid4().hex[:12]}"
        )
    except (RedisError, OSError):
        raise ImportQueueUnavailable(f"{QUEUE_UNAVAILABLE}: the rebuild was not queued") from None


def check_version_free(model_name: str, version: str) -> None:
    """Raise VersionTaken when the registry already has ``model_name`` ``version``."""
    if ModelVersion.objects.filter(model__name=model_name, version=version).exists():
        raise VersionTaken(f"{model_name} already has a version {version} in the registry")


def existing_version(
    repo_id: str, commit: str, include: Sequence[str], exclude: Sequence[str]
) -> ModelVersion | None:
    """A registry version already imported from this repo, commit and file patterns; a yanked
    one only when no other is active or deprecated."""
    found = sorted(
        (
            version
            for version in ModelVersion.objects.filter(source_repo=repo_id, source_commit=commit)
            .select_related("model")
            .order_by("imported_at")
            if sorted((version.import_options or {}).get("include") or []) == sorted(include)
            and sorted((version.import_options or {}).get("exclude") or []) == sorted(exclude)
        ),
        key=lambda version: version.status in ModelVersion.UNSERVED,
    )
    return found[0] if found else None


def check_name_bound_to_repo(model_name: str, repo_id: str) -> None:
    """A registry name holds versions of one Hub repo: another repo's import needs a new name."""
    bound = RegisteredModel.objects.filter(name=model_name).values_list("source_repo", flat=True)
    for source_repo in bound:
        if source_repo != repo_id:
            raise ImportRejected(
                f"{model_name} holds versions imported from {source_repo}; import {repo_id} "
                "under another name",
                "model_name",
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
    request_id = request.pk

    def _enqueue() -> None:
        # Already running on commit: enqueue now, not on yet another commit.
        queue = django_rq.get_queue(QUEUE_NAME, commit_mode="auto")
        try:
            # By dotted name: the job module imports the runner, which imports these actions.
            job = queue.enqueue(
                RUN_IMPORT, request_id, job_id=f"import-{request_id}-{uuid4().hex[:12]}"
            )
        except (RedisError, OSError):
            # Redis went away after check_queue(): a clear failed row that Retry re-queues,
            # not a queued row no worker will ever see.
            _fail(
                request,
                f"{QUEUE_UNAVAILABLE}: the job could not be queued; retry once it is back",
                code="queue_unavailable",
                where={"status": ImportRequest.Status.QUEUED},
                event=f"{QUEUE_UNAVAILABLE}: the job could not be queued",
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
    clean = validate_options(options)
    commit = pinned_commit(clean.repo_id, clean.revision, interactive=interactive)
    if clean.register:
        existing = existing_version(clean.repo_id, commit, clean.include, clean.exclude)
        if existing is not None and existing.status == ModelVersion.Status.YANKED:
            raise ImportRejected(
                f"{clean.repo_id}@{commit[:12]} with these file patterns was imported as "
                f"{existing.model.name} {existing.version}, which is yanked "
                f"({existing.status_reason or 'no reason given'}): a registry admin can restore "
                "that version, or import another commit"
            )
        if existing is not None and existing.status == ModelVersion.Status.REJECTED:
            raise ImportRejected(
                f"{clean.repo_id}@{commit[:12]} with these file patterns was imported as "
                f"{existing.model.name} {existing.version}, which a registry admin rejected "
                f"({existing.status_reason or 'no reason given'}): import another commit"
            )
        if existing is not None:
            return ImportRequested(commit=commit, existing=existing)
        check_version_free(clean.model_name, clean.version)
        check_name_bound_to_repo(clean.model_name, clean.repo_id)
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
    clean = validate_options(options)
    if clean.register:
        check_version_free(clean.model_name, clean.version)
        check_name_bound_to_repo(clean.model_name, clean.repo_id)
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
    """Queue a failed or cancelled import again; finished stages are not redone. A running
    import whose worker stopped answering is first marked failed, so it can be retried."""
    if enqueue:
        check_queue()
    fail_stale_imports([request.pk])
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
    if _fail(
        request,
        f"{actor} cancelled the import; its worker had stopped responding",
        code="cancelled",
        where={"status": ImportRequest.Status.RUNNING, "heartbeat_at__lt": _stale_before()},
        cancelled=True,
        actor=actor,
    ):
        request.refresh_from_db()
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


# --- what the worker changes ------------------------------------------------------------------


def claim_import(request_id: int) -> ImportRequest | None:
    """Move a queued import to running; None when another worker (or a cancel) got there first."""
    request = ImportRequest.objects.select_related("requested_by").filter(pk=request_id).first()
    if request is None:
        return None
    host = socket.gethostname()
    claimed = transition(
        request,
        ImportEvent.Kind.STARTED,
        f"attempt {request.attempts + 1} started on {host}",
        details={"host": host, "pid": os.getpid()},
        where={"status": ImportRequest.Status.QUEUED},
        update={
            "status": ImportRequest.Status.RUNNING,
            "started_at": timezone.now(),
            "heartbeat_at": timezone.now(),
            "attempts": F("attempts") + 1,
        },
    )
    if not claimed:
        return None
    request.refresh_from_db()
    return request


def _this_attempt(request: ImportRequest) -> dict[str, Any]:
    """The condition every change the worker makes carries: the import is still running the
    attempt this worker claimed (not given up for lost and retried, cancelled or ended)."""
    return {"status": ImportRequest.Status.RUNNING, "attempts": request.attempts}


def _as_this_attempt(changed: bool, request: ImportRequest) -> None:
    if not changed:
        raise ImportSuperseded(
            f"import #{request.pk} attempt {request.attempts} is no longer the running attempt"
        )


def save_progress(request: ImportRequest, **fields: Any) -> None:
    """Record stage outputs or facts on the row (state, commit, stage, version) for this
    attempt; ImportSuperseded when another attempt owns the row now."""
    changed = ImportRequest.objects.filter(pk=request.pk, **_this_attempt(request)).update(**fields)
    _as_this_attempt(bool(changed), request)


def begin_stage(request: ImportRequest, stage: str, *, total: int = 0) -> None:
    """A stage of a running import starts: the page shows it, with ``total`` bytes to go."""
    changed = transition(
        request,
        ImportEvent.Kind.STAGE_STARTED,
        Stage(stage).label,
        stage=stage,
        update={
            "stage": stage,
            "bytes_done": 0,
            "bytes_total": total,
            "heartbeat_at": timezone.now(),
        },
        where=_this_attempt(request),
    )
    _as_this_attempt(changed, request)


def end_stage(request: ImportRequest, stage: str, *, seconds: float, total: int = 0) -> None:
    """A stage finished, in ``seconds``."""
    changed = transition(
        request,
        ImportEvent.Kind.STAGE_FINISHED,
        f"{Stage(stage).label} done",
        stage=stage,
        details={"seconds": round(seconds, 3)},
        update={"bytes_done": total},
        where=_this_attempt(request),
    )
    _as_this_attempt(changed, request)


def skip_stage(request: ImportRequest, stage: str) -> None:
    """A retried import reuses a stage's recorded output."""
    changed = transition(
        request,
        ImportEvent.Kind.STAGE_SKIPPED,
        "already done",
        stage=stage,
        update={"heartbeat_at": timezone.now()},
        where=_this_attempt(request),
    )
    _as_this_attempt(changed, request)


def link_import(request: ImportRequest, holder: ImportRequest) -> None:
    """Finish as a link to an earlier import of the same content: no second artifact."""
    result = {**holder.result, "linked_to": holder.pk}
    target = (
        f"{holder.model_version.model.name} {holder.model_version.version}"
        if holder.model_version
        else holder.result.get("artifact_url", "its artifact")
    )
    changed = transition(
        request,
        ImportEvent.Kind.SUCCEEDED,
        f"{holder.repo_id}@{holder.commit[:12]} was already imported by import "
        f"#{holder.pk}: linked to {target} instead of importing it again",
        details=result,
        update={
            "status": ImportRequest.Status.SUCCEEDED,
            "finished_at": timezone.now(),
            "result": result,
            "model_version": holder.model_version_id,
            "commit": holder.commit,
        },
        where=_this_attempt(request),
    )
    _as_this_attempt(changed, request)


def finish_import(
    request: ImportRequest, result: dict[str, Any], version: ModelVersion | None
) -> None:
    """The import succeeded: its artifact is stored (and registered as ``version``)."""
    where = f"registered as {version.model.name} {version.version}" if version else "stored"
    changed = transition(
        request,
        ImportEvent.Kind.SUCCEEDED,
        f"imported {request.repo_id}@{result['commit'][:12]}: {where} (sha256 {result['sha256']})",
        details=result,
        update={
            "status": ImportRequest.Status.SUCCEEDED,
            "finished_at": timezone.now(),
            "result": result,
            "error": "",
            "error_code": "",
        },
        where=_this_attempt(request),
    )
    _as_this_attempt(changed, request)


def fail_import(request: ImportRequest, error: BaseException) -> bool:
    """Record this attempt's failure (or cancellation) in words; False when the attempt was
    already given up for lost (the row is the newer attempt's)."""
    where = _this_attempt(request)
    if isinstance(error, ImportCancelled):
        return _fail(request, "cancelled", code=error_code(error), where=where, cancelled=True)
    return _fail(request, failure_message(error), code=error_code(error), where=where)


def fail_stale_imports(ids: list[int] | None = None, *, max_silence: float | None = None) -> int:
    """Mark running imports whose heartbeat stopped as failed: their worker died.

    Returns how many were marked.
    """
    stale = ImportRequest.objects.filter(
        status=ImportRequest.Status.RUNNING, heartbeat_at__lt=_stale_before(max_silence)
    )
    if ids is not None:
        stale = stale.filter(pk__in=ids)
    marked = 0
    for request in stale:
        marked += _fail(
            request,
            f"the worker running this import stopped responding during the {request.stage} "
            f"stage (no heartbeat since {request.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC); "
            "retry to resume from the last finished stage",
            code="worker_lost",
            where={"status": ImportRequest.Status.RUNNING, "heartbeat_at": request.heartbeat_at},
            event="the worker stopped responding",
        )
    return marked


def _stale_before(max_silence: float | None = None) -> Any:
    """A running import whose last heartbeat is older than this lost its worker."""
    silence = timedelta(seconds=max_silence or settings.AEGIS_IMPORT_HEARTBEAT_TIMEOUT)
    return timezone.now() - silence


def fail_killed_import(request_id: int, how: str) -> None:
    """The worker process running the import was killed (``how``: by which signal)."""
    request = ImportRequest.objects.filter(pk=request_id).first()
    if request is None:
        return
    _fail(
        request,
        f"the worker process running this import was {how} during the "
        f"{request.stage or 'first'} stage; retry to resume from the last finished stage",
        code="worker_killed",
        where={"status": ImportRequest.Status.RUNNING},
        event=f"the worker process was {how}",
    )


def _fail(
    request: ImportRequest,
    message: str,
    *,
    code: str,
    where: dict[str, Any] | None = None,
    event: str = "",
    cancelled: bool = False,
    actor: str = WORKER_ACTOR,
) -> bool:
    """End an import as failed (or cancelled), releasing its claim on the content."""
    status = ImportRequest.Status.CANCELLED if cancelled else ImportRequest.Status.FAILED
    stage = ImportRequest.objects.filter(pk=request.pk).values_list("stage", flat=True).first()
    return transition(
        request,
        ImportEvent.Kind.CANCELLED if cancelled else ImportEvent.Kind.FAILED,
        event or message,
        stage=stage or "",
        details={"code": code},
        where=where,
        update={
            "status": status,
            "error": "" if cancelled else message,
            "error_code": code,
            "finished_at": timezone.now(),
            "content_key": "",
        },
        actor=actor,
    )
