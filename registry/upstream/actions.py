"""The upstream watch's state changes, each atomic, with an actor.

A check's outcome is written under a lock on the model's ``UpstreamState``, so two checks of
one model at once (the periodic pass and a "Check upstream now") write one after the other and
put one event on the audit trail: ``upstream.changed`` when the changes differ from the last
recorded ones, ``upstream.in_sync`` when there are none any more. A check that could not be
made records its error and changes nothing else.
"""

from __future__ import annotations

from typing import Any

import django_rq
from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from aegis_catalog.queues import require_queue
from registry import audit
from registry.models import AuditEvent, ModelVersion, RegisteredModel, UpstreamState
from registry.upstream.diff import UpstreamDiff

QUEUE_NAME = "default"
CHECK_JOB = "registry.jobs.upstream_check_job"
ERROR_LIMIT = 2000


class UpstreamQueueUnavailable(Exception):
    """Redis, which holds the job queue, does not answer: nothing was queued."""


def _locked_state(model: RegisteredModel) -> UpstreamState:
    """The model's state row, created on first use, locked until the transaction ends."""
    try:
        with transaction.atomic():
            UpstreamState.objects.get_or_create(model=model)
    except IntegrityError:  # created by a check running at the same time
        pass
    return UpstreamState.objects.select_for_update().get(model=model)


def _state_of(diff: UpstreamDiff) -> str:
    if diff.gone:
        return UpstreamState.State.GONE
    return UpstreamState.State.IN_SYNC if diff.is_empty else UpstreamState.State.CHANGED


@transaction.atomic
def record_upstream_check(
    model: RegisteredModel,
    baseline: ModelVersion,
    *,
    revision: str,
    upstream_commit: str,
    diff: UpstreamDiff,
    actor: str,
    user: User | AnonymousUser | None = None,
) -> AuditEvent | None:
    """Store a check's diff against ``baseline``; the audit event, when the changes moved."""
    state = _locked_state(model)
    before = UpstreamDiff.from_json(state.diff)
    moved = before.changes != diff.changes or (
        not diff.is_empty and state.baseline_id != baseline.pk
    )
    now = timezone.now()
    state.state = _state_of(diff)
    state.needs_attention = bool(diff.attention)
    state.baseline = baseline
    state.tracked_revision = revision
    state.upstream_commit = upstream_commit
    state.diff = diff.to_json()
    state.checked_at = state.attempted_at = now
    state.error = ""
    event = None
    if moved:
        state.changed_at = now
        if not diff.is_empty:
            event = _audit(audit.Action.UPSTREAM_CHANGED, model, baseline, revision, diff,
                           actor=actor, user=user)  # fmt: skip
        elif not before.is_empty:
            event = _audit(audit.Action.UPSTREAM_IN_SYNC, model, baseline, revision, diff,
                           actor=actor, user=user)  # fmt: skip
    state.save()
    return event


@transaction.atomic
def record_upstream_error(model: RegisteredModel, *, error: str) -> UpstreamState:
    """A check that could not be made: its error, and nothing else changed (no event)."""
    state = _locked_state(model)
    state.attempted_at = timezone.now()
    state.error = error[:ERROR_LIMIT] or "the check failed"
    state.save(update_fields=["attempted_at", "error"])
    return state


def request_upstream_check(model: RegisteredModel, *, actor: str) -> UpstreamState:
    """Queue a check of ``model`` now (once the request is committed); raises
    UpstreamQueueUnavailable, with nothing written, when Redis does not answer."""
    require_queue(
        QUEUE_NAME,
        UpstreamQueueUnavailable,
        "the job queue is unavailable (Redis does not answer): nothing was queued; try again "
        "once it is back",
    )
    with transaction.atomic():
        state = _locked_state(model)
        state.check_requested_at = timezone.now()
        state.check_requested_by = actor[:300]
        state.save(update_fields=["check_requested_at", "check_requested_by"])
    transaction.on_commit(lambda: _enqueue(model.pk, actor))
    return state


def _enqueue(model_id: int, actor: str) -> None:
    queue = django_rq.get_queue(QUEUE_NAME, commit_mode="auto")
    try:
        queue.enqueue(CHECK_JOB, model_id, actor)
    except (RedisError, OSError):
        UpstreamState.objects.filter(model_id=model_id).update(
            attempted_at=timezone.now(),
            error="the check could not be queued: Redis stopped answering; ask again once it "
            "is back",
        )


def _audit(
    action: str,
    model: RegisteredModel,
    baseline: ModelVersion,
    revision: str,
    diff: UpstreamDiff,
    *,
    actor: str,
    user: User | AnonymousUser | None,
) -> AuditEvent:
    return audit.record(
        action,
        actor=actor,
        user=user,
        object_type="model",
        object_id=model.pk,
        object_repr=model.name,
        model_name=model.name,
        details=event_details(baseline, revision, diff),
    )


def event_details(baseline: ModelVersion, revision: str, diff: UpstreamDiff) -> dict[str, Any]:
    """The audit event's details: each changed value as before -> after (as the audit pages
    show edits), files and new commits as lines, and why it needs attention."""
    changes = diff.changes
    details: dict[str, Any] = {
        "version": baseline.version,
        "revision": revision,
        "changes": _before_after(baseline, revision, changes),
        **_file_lines(changes.get("files", {})),
    }
    if changes.get("new_commits"):
        details["new commits"] = [
            f"{item['commit'][:12]} {item['title']}" for item in changes["new_commits"]
        ]
    if diff.attention:
        details["needs attention"] = list(diff.attention)
    return details


def _before_after(
    baseline: ModelVersion, revision: str, changes: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    shown: dict[str, dict[str, Any]] = {}
    if changes.get("gone"):
        gone = "(the repo is gone)" if changes["gone"] == "repo" else f"(no {revision!r} any more)"
        shown["repo"] = {"before": baseline.source_repo, "after": gone}
    if changes.get("renamed_to"):
        shown["repo"] = {"before": baseline.source_repo, "after": changes["renamed_to"]}
    for name in ("commit", "license", "gated"):
        if name in changes:
            shown[name] = {"before": changes[name]["before"], "after": changes[name]["after"]}
    for item in changes.get("card", ()):
        shown[f"card: {item['field']}"] = {"before": item["before"], "after": item["after"]}
    return shown


def _file_lines(files: dict[str, Any]) -> dict[str, list[str]]:
    lines = {
        f"files {kind}": [f"{item['path']} ({item['size']:,} bytes)" for item in files[kind]]
        for kind in ("added", "removed")
        if files.get(kind)
    }
    if files.get("changed"):
        lines["files changed"] = [
            f"{item['path']} ({item['size_before']:,} → {item['size_after']:,} bytes)"
            for item in files["changed"]
        ]
    return lines
