"""RQ entry points: thin. Load the row, claim it, run the pipeline, record the outcome."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable

from django.db.models import F
from django.utils import timezone

from imports.actions import transition
from imports.models import ImportEvent, ImportRequest
from imports.runner import KNOWN_ERRORS, ImportCancelled, ImportRunner, Services, fail_import

logger = logging.getLogger(__name__)


def claim(request_id: int) -> ImportRequest | None:
    """Move a queued request to running; None when another worker (or a cancel) got there first."""
    # A job argument is data from Redis: anything but a positive row id is no import at all.
    if type(request_id) is not int or not 0 < request_id < 2**63:
        logger.warning(
            "import job called with %r, which is no import id; nothing to do", request_id
        )
        return None
    request = ImportRequest.objects.select_related("requested_by").filter(pk=request_id).first()
    if request is None:
        return None
    claimed = transition(
        request,
        ImportEvent.Kind.STARTED,
        f"attempt {request.attempts + 1} started on {socket.gethostname()}",
        details={"host": socket.gethostname(), "pid": os.getpid()},
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


def run_import(
    request_id: int,
    services: Services | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> str:
    """Run one import to its end. Returns the final status; never raises for known failures."""
    request = claim(request_id)
    if request is None:
        logger.info("import %s was not queued any more; nothing to do", request_id)
        return "skipped"
    try:
        runner = ImportRunner(request, services)
        runner.on_progress = on_progress
        runner.run()
    except BaseException as error:
        if not isinstance(error, (*KNOWN_ERRORS, ImportCancelled)):
            logger.exception("import %s failed", request_id)
        fail_import(request, error)
        if not isinstance(error, Exception):
            raise
    request.refresh_from_db(fields=["status"])
    return request.status
