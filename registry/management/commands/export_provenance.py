"""``manage.py export_provenance NAME VERSION DIR``: everything needed to verify a version
elsewhere (an air-gapped site): the artifact, its attestation, model.sig, aegis.json, the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from aegis_catalog.lib.storage import StorageError
from registry.models import ModelVersion
from registry.provenance import ExportError, export_provenance


class Command(BaseCommand):
    help = "Export a registered version's artifact and provenance files into a directory."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="registered model name")
        parser.add_argument("version", help="version")
        parser.add_argument("directory", type=Path, help="where to write the files")

    def handle(self, *args: Any, **options: Any) -> None:
        version = (
            ModelVersion.objects.select_related("model", "signing_key")
            .filter(model__name=options["name"], version=options["version"])
            .first()
        )
        if version is None:
            raise CommandError(f"no version {options['version']} of {options['name']!r}")
        try:
            exported = export_provenance(version, options["directory"])
        except (StorageError, ExportError) as error:
            raise CommandError(str(error)) from None
        for path in exported.paths:
            self.stdout.write(str(path))
        if version.status != ModelVersion.Status.ACTIVE:
            self.stderr.write(f"note: this version is {version.status}: {version.status_reason}")
