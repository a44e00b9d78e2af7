""" "Verify now" as a background job: the page asks, a worker verifies, the page shows the result.

A multi-GB artifact takes minutes to fetch, hash and extract: no web request holds that. The run
is a row (queued, running, passed or failed, with every check or the one that failed); the job
calls ``verify_and_record``, so each run is on the audit trail like any verification.
"""

from __future__ import annotations

import logging
from typing import Any

import django_rq
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from aegis_catalog.queues import require_queue
from registry.models import ModelVersion, VerificationRun
from registry.verify import VerificationError, verify_and_record

logger = logging.getLogger(__name__)

QUEUE_NAME = "default"
JOB = "registry.jobs.verification_job"


class VerificationQueueUnavailable(Exception):
    """Redis, which holds the job queue, does not answer: nothing was queued."""


def request_verification(version: ModelVersion, *, actor: str, user: Any = None) -> VerificationRun:
    """Queue a verification of ``version`` (once the row is committed); raises
    VerificationQueueUnavailable, with nothing written, when Redis does not answer."""
    require_queue(
        QUEUE_NAME,
        VerificationQueueUnavailable,
        "the job queue is unavailable (Redis does not answer): nothing was queued; try again "
        "once it is back",
    )
    run = VerificationRun.objects.create(
        version=version,
        requested_by=actor[:300],
        requested_by_user=user if getattr(user, "is_authenticated", False) else None,
    )
    transaction.on_commit(lambda: _enqueue(run.pk))
    return run


def _enqueue(run_id: int) -> None:
    queue = django_rq.get_queue(QUEUE_NAME, commit_mode="auto")
    try:
        queue.enqueue(JOB, run_id, job_timeout=settings.AEGIS_VERIFY_TIMEOUT)
    except (RedisError, OSError):
        _finish(run_id, failed_check="verification", error="the job could not be queued: "
                "Redis stopped answering; ask again once it is back")  # fmt: skip


def _finish(run_id: int, **outcome: Any) -> None:
    state = (
        VerificationRun.State.FAILED
        if outcome.get("failed_check")
        else VerificationRun.State.PASSED
    )
    VerificationRun.objects.filter(pk=run_id).update(
        state=state, finished_at=timezone.now(), **outcome
    )


def run_verification(run_id: int) -> str:
    """The job: claim the queued run, verify, record the outcome. Returns the final state."""
    claimed = VerificationRun.objects.filter(pk=run_id, state=VerificationRun.State.QUEUED).update(
        state=VerificationRun.State.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        logger.info("verification run %s is not queued any more; nothing to do", run_id)
        return "skipped"
    run = VerificationRun.objects.select_related("version__model", "requested_by_user").get(
        pk=run_id
    )
    try:
        result = verify_and_record(run.version, actor=run.requested_by, user=run.requested_by_user)
    except VerificationError as failure:  # recorded on the audit trail by verify_and_record
        _finish(run_id, failed_check=failure.check, error=str(failure))
        return VerificationRun.State.FAILED
    checks = [{"name": check.name, "detail": check.detail} for check in result.checks]
    _finish(run_id, checks=checks)
    return VerificationRun.State.PASSED
