"""``manage.py verify_audit_chain``: recompute the audit hash chain and check its anchors."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from aegis_catalog import services
from aegis_catalog.lib.storage import StorageError
from registry.anchors import verify_anchors
from registry.audit import verify_chain


class Command(BaseCommand):
    help = (
        "Check every audit event's hash link, oldest first, then every signed anchor of the "
        "chain in the artifact store; exit 1 at the first broken one."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify_chain()
        if not report.ok:
            raise CommandError(
                f"audit chain broken after {report.checked} good events: {report.reason}"
            )
        try:
            anchors, problems = verify_anchors(services.artifact_store())
        except StorageError as error:
            raise CommandError(f"the audit anchors cannot be listed: {error}") from error
        if problems:
            raise CommandError(f"audit anchors do not hold: {problems[0]}")
        self.stdout.write(
            f"audit chain intact: {report.checked} events, {anchors} signed anchor(s) hold"
        )
