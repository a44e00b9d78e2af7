"""``manage.py verify_audit_chain``: recompute the audit hash chain; name the first broken link."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from registry.audit import verify_chain


class Command(BaseCommand):
    help = "Check every audit event's hash link, oldest first; exit 1 at the first broken one."

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify_chain()
        if not report.ok:
            raise CommandError(
                f"audit chain broken after {report.checked} good events: {report.reason}"
            )
        self.stdout.write(f"audit chain intact: {report.checked} events")
