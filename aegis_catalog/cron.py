"""The periodic jobs, for RQ's cron scheduler: ``python manage.py rqcron aegis_catalog.cron``
(``make run`` starts it beside the worker). Every ``AEGIS_MAINTENANCE_SECONDS``:

- imports whose worker stopped answering are marked failed, old work directories removed;
- webhook deliveries whose job was lost (Redis down) are queued again.

Every ``AEGIS_AUDIT_ANCHOR_SECONDS``, the audit chain's head is signed through Vault and stored
as an anchor (when it moved).

Every ``AEGIS_UPSTREAM_WATCH_SECONDS``, the upstream watch compares each registered model with
its Hub repo (``registry.upstream``); RQ stops a pass that runs longer than the interval (or
ten minutes, when the interval is shorter).
"""

from __future__ import annotations

from django.conf import settings
from rq import cron

from imports.jobs import maintain_imports
from registry.anchors import anchor_audit_chain
from registry.jobs import upstream_watch_job
from webhooks.actions import requeue_pending

cron.register(maintain_imports, "default", interval=settings.AEGIS_MAINTENANCE_SECONDS)
cron.register(anchor_audit_chain, "default", interval=settings.AEGIS_AUDIT_ANCHOR_SECONDS)
cron.register(requeue_pending, "default", interval=settings.AEGIS_MAINTENANCE_SECONDS)
cron.register(
    upstream_watch_job,
    "default",
    interval=settings.AEGIS_UPSTREAM_WATCH_SECONDS,
    job_timeout=max(settings.AEGIS_UPSTREAM_WATCH_SECONDS, 600),
)
