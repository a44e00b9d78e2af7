"""RQ entry points of the registry: thin."""

from __future__ import annotations

import logging

from registry.verification.runs import run_verification

logger = logging.getLogger(__name__)


def verification_job(run_id: int) -> str:
    """Verify the version of a queued "Verify now" run (``registry.verification.runs``)."""
    # A job argument is data from Redis: anything but a positive row id is no run at all.
    if type(run_id) is not int or not 0 < run_id < 2**63:
        logger.warning("verification job called with %r, which is no run id; nothing to do", run_id)
        return "skipped"
    return run_verification(run_id)
