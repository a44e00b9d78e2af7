"""The periodic jobs, for RQ's cron scheduler: ``python manage.py rqcron aegis_catalog.cron``
(``make run`` starts it beside the worker). Every ``AEGIS_MAINTENANCE_SECONDS``:

- imports whose worker stopped answering are marked failed, old work directories removed;
- the audit chain's head is signed through Vault and stored as an anchor (when it moved).
"""

from __future__ import annotations

from django.conf import settings
from rq import cron

from imports.jobs import maintain_imports
from registry.anchors import anchor_audit_chain

cron.register(maintain_imports, "default", interval=settings.AEGIS_MAINTENANCE_SECONDS)
cron.register(anchor_audit_chain, "default", interval=settings.AEGIS_AUDIT_ANCHOR_SECONDS)
