"""Who runs a command: the CI job (from its Vault JWT claims) or the operating-system user."""

from __future__ import annotations

import getpass
import socket

from django.conf import settings

from aegis_catalog import services
from aegis_catalog.lib.vault import VaultError


def ci_identity() -> str | None:
    """Who runs this CI job, from the claims of the JWT used to log in to Vault."""
    if settings.VAULT_AUTH_METHOD != "jwt":
        return None
    try:
        claims = services.transit_client().login_identity()
    except VaultError:
        return None
    repository, ref, actor = claims.get("repository"), claims.get("ref"), claims.get("actor")
    if not (repository or actor):
        subject = claims.get("sub")
        return f"ci:{subject}" if subject else None
    who = f"ci:{repository or '?'}"
    if ref:
        who += f"@{ref}"
    if actor:
        who += f" by {actor}"
    return who


def os_identity() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"os:{user}@{socket.gethostname()}"
