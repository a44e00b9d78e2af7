"""``manage.py verify_artifact``: check a stored artifact, its attestation, its manifest and its
model signature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from aegis_catalog.identity import os_identity
from registry.verify import VerificationError, verify_and_record


class Command(BaseCommand):
    help = (
        "Verify an artifact (path, file:// or s3:// URL); its attestation and model signature "
        "are read from <artifact>.sigstore.json and <artifact>.model.sig beside it (an artifact "
        "of layout 1 holds model.sig inside)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("artifact", help="path, file:// or s3:// URL of the tar.gz")
        parser.add_argument("--public-key", help="PEM file to verify with (default: trust store)")
        parser.add_argument("--extract", type=Path, help="extract the verified artifact here")
        parser.add_argument("--load", action="store_true", help="also load safetensors weights")

    def handle(self, *args: Any, **options: Any) -> None:
        public_key = None
        if options["public_key"]:
            try:
                public_key = Path(options["public_key"]).read_text()
            except OSError as error:
                raise CommandError(
                    f"cannot read {options['public_key']}: {error.strerror}"
                ) from None
        try:
            result = verify_and_record(
                options["artifact"],
                actor=os_identity(),
                public_key=public_key,
                extract_to=options["extract"],
                load=options["load"],
            )
        except VerificationError as error:
            raise CommandError(f"verification failed at {error.check}: {error}") from None
        for check in result.checks:
            self.stdout.write(f"ok  {check.name:<22} {check.detail}")
        self.stdout.write(f"verified {result.artifact} (sha256 {result.sha256})")
