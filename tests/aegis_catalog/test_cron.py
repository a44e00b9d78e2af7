"""The periodic jobs RQ's cron scheduler runs (``manage.py rqcron aegis_catalog.cron``)."""

from __future__ import annotations

import importlib

from rq import cron

from imports.jobs import maintain_imports
from registry.anchors import anchor_audit_chain


def test_the_maintenance_and_anchor_jobs_are_registered(settings):
    cron._job_data_registry.clear()
    import aegis_catalog.cron

    importlib.reload(aegis_catalog.cron)
    registered = {entry["func"]: entry for entry in cron._job_data_registry}
    assert registered[maintain_imports]["interval"] == settings.AEGIS_MAINTENANCE_SECONDS
    assert registered[anchor_audit_chain]["interval"] == settings.AEGIS_AUDIT_ANCHOR_SECONDS
    assert {entry["queue_name"] for entry in registered.values()} == {"default"}
    cron._job_data_registry.clear()
