"""``python manage.py rebuild NAME VERSION``: rebuild a version's artifact from the Hub at its
pinned commit and compare it with the registered one, byte for byte. Exit 0: reproduced;
1: the bytes differ (the first difference is named); 2: the rebuild could not be made."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from aegis_catalog.lib.hub import HubError
from imports.rebuild import RebuildError, find_version, rebuild_version


class Command(BaseCommand):
    help = (
        "Download a registered version's pinned commit from the Hub again, package it with the "
        "recorded options and compare with the registered artifact. Stores nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="registry model name")
        parser.add_argument("version", help="registry version")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = rebuild_version(find_version(options["name"], options["version"]))
        except (RebuildError, HubError, OSError) as error:
            raise CommandError(str(error), returncode=2) from None
        self.stdout.write(f"{result.model} {result.version} at commit {result.commit}")
        self.stdout.write(f"sha256 {result.rebuilt_sha256}")
        if result.reproduced:
            self.stdout.write("reproduced")
            return
        self.stdout.write(f"registered sha256 {result.registered_sha256}")
        self.stdout.write(f"stored sha256 {result.stored_sha256 or '(could not be read)'}")
        raise CommandError(f"differs: {result.difference}", returncode=1)
