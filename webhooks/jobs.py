"""RQ entry point of the webhooks: one attempt, and the next one scheduled after its backoff
(RQ's scheduler: the worker runs ``--with-scheduler``)."""

from __future__ import annotations

import logging
from datetime import timedelta

import django_rq

from webhooks.delivery import attempt_delivery

logger = logging.getLogger(__name__)

QUEUE_NAME = "default"
JOB = "webhooks.jobs.deliver"


def deliver(delivery_id: int) -> str:
    """Attempt one delivery; schedule the next attempt when it failed and attempts remain."""
    if type(delivery_id) is not int or not 0 < delivery_id < 2**63:
        logger.warning("webhook job called with %r, which is no delivery id", delivery_id)
        return "skipped"
    outcome = attempt_delivery(delivery_id)
    if outcome is None:
        return "skipped"
    if outcome.retry_in is not None:
        queue = django_rq.get_queue(QUEUE_NAME)
        queue.enqueue_in(timedelta(seconds=outcome.retry_in), JOB, delivery_id)
    return outcome.status
