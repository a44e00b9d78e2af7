"""RQ entry points of the registry: thin."""

from __future__ import annotations

import logging

from registry.actions import SYSTEM_ACTOR
from registry.upstream.watch import check_model, watch_pass
from registry.verification.runs import run_verification

logger = logging.getLogger(__name__)


def verification_job(run_id: int) -> str:
    """Verify the version of a queued "Verify now" run (``registry.verification.runs``)."""
    # A job argument is data from Redis: anything but a positive row id is no run at all.
    if type(run_id) is not int or not 0 < run_id < 2**63:
        logger.warning("verification job called with %r, which is no run id; nothing to do", run_id)
        return "skipped"
    return run_verification(run_id)


def upstream_watch_job() -> dict[str, int]:
    """The periodic upstream watch (``aegis_catalog.cron``): one pass over every registered
    model; returns how many checks ended in each outcome."""
    counts: dict[str, int] = {}
    for result in watch_pass(actor=SYSTEM_ACTOR):
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    logger.info("upstream watch: %s", counts)
    return counts


def upstream_check_job(model_id: int, actor: str = SYSTEM_ACTOR) -> str:
    """Check one model's upstream now: the job behind the model page's "Check upstream now"
    (``registry.upstream.actions.request_upstream_check``)."""
    if type(model_id) is not int or not 0 < model_id < 2**63:
        logger.warning("upstream check called with %r, which is no model id", model_id)
        return "skipped"
    return check_model(model_id, actor=str(actor)[:300] or SYSTEM_ACTOR).outcome
