"""``manage.py sync_signing_keys``: read the transit key's public versions into the trust store."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from aegis_catalog import services
from aegis_catalog.lib.vault import VaultError
from registry.actions import RegistryError, sync_signing_keys
from registry.models import SigningKey


class Command(BaseCommand):
    help = "Copy every public version of the signing key from Vault into the trust store."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--key", default="", help="transit key name (AEGIS_SIGN_KEY)")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["key"] or settings.AEGIS_SIGN_KEY
        try:
            latest = sync_signing_keys(services.transit_client(), name)
        except (VaultError, RegistryError) as error:
            raise CommandError(str(error)) from None
        for key in SigningKey.objects.filter(name=name, vault_addr=latest.vault_addr):
            state = "revoked" if key.revoked else "trusted"
            self.stdout.write(f"{key.name} v{key.version} {key.fingerprint[:16]} {state}")
