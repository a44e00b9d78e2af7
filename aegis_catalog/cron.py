"""The periodic jobs, for RQ's cron scheduler: ``python manage.py rqcron aegis_catalog.cron``
(``make run`` starts it beside the worker). Every ``AEGIS_MAINTENANCE_SECONDS``:

- imports whose worker stopped answering are marked failed, old work directories removed;
"""

from __future__ import annotations

from django.conf import settings
from rq import cron

from imports.jobs import maintain_imports

cron.register(maintain_imports, "default", interval=settings.AEGIS_MAINTENANCE_SECONDS)
