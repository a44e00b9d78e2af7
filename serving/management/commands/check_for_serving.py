"""Verify versions for /hf/ before anyone pulls them (for instance right after an import, so
the first pull of a large model does not wait):
``python manage.py check_for_serving NAME [VERSION]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry.models import ModelVersion
from serving.checks import servable
from serving.names import NotServed


class Command(BaseCommand):
    help = "Verify a model's versions (or one) and copy their files for serving at /hf/."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the registered model")
        parser.add_argument("version", nargs="?", help="one version (default: every version)")

    def handle(self, *args: Any, **options: Any) -> None:
        versions = ModelVersion.objects.select_related("model", "signing_key").filter(
            model__name=options["name"]
        )
        if options["version"]:
            versions = versions.filter(version=options["version"])
        if not versions.exists():
            raise CommandError(
                f"no registered version matches {options['name']} {options['version'] or ''}"
            )
        refused = 0
        for version in versions.order_by("imported_at"):
            try:
                served = servable(version, actor="check_for_serving", inline=True)
            except NotServed as refusal:
                refused += 1
                self.stderr.write(f"{version.model.name} {version.version}: not served: {refusal}")
                continue
            self.stdout.write(
                f"{version.model.name} {version.version}: ready ({len(served.files)} files)"
            )
        if refused:
            raise CommandError(f"{refused} version(s) are not served")
