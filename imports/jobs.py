"""RQ entry points: thin. Load the row, claim it, run the pipeline, record the outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable

from imports.actions import claim_import, fail_import
from imports.errors import KNOWN_ERRORS, ImportCancelled
from imports.models import ImportRequest
from imports.runner import ImportRunner, Services

logger = logging.getLogger(__name__)


def claim(request_id: int) -> ImportRequest | None:
    """The queued import to run; None when there is none to claim."""
    # A job argument is data from Redis: anything but a positive row id is no import at all.
    if type(request_id) is not int or not 0 < request_id < 2**63:
        logger.warning(
            "import job called with %r, which is no import id; nothing to do", request_id
        )
        return None
    return claim_import(request_id)


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
