"""How an import's failure is told: which errors are expected (their message is shown as it is)
and the short code recorded with them."""

from __future__ import annotations

from aegis_catalog.lib.archive import UnsafeArchive
from aegis_catalog.lib.hub import HubError
from aegis_catalog.lib.storage import StorageError
from aegis_catalog.lib.vault import VaultError
from imports.packaging import PackagingError
from imports.pipeline import PipelineError
from registry.actions import RegistryError
from registry.attestation import AttestationError
from registry.policy import PolicyViolation


class ImportCancelled(Exception):
    """Someone cancelled the import; it stops at its next checkpoint."""

    code = "cancelled"


class ImportSuperseded(Exception):
    """This attempt was given up for lost and the import was retried or ended: it must stop and
    change nothing more (the row belongs to the newer attempt)."""


# Failures whose message is written for people; anything else is an internal error.
KNOWN_ERRORS: tuple[type[Exception], ...] = (
    PipelineError,
    HubError,
    VaultError,
    StorageError,
    AttestationError,
    PackagingError,
    UnsafeArchive,
    RegistryError,
    PolicyViolation,
)


def error_code(error: BaseException) -> str:
    """The code recorded with a failure: the error's own ``code``, else its class name."""
    return str(getattr(error, "code", "") or type(error).__name__)


def failure_message(error: BaseException) -> str:
    """What the import page says about a failure (never an internal error's text)."""
    if isinstance(error, KNOWN_ERRORS):
        return str(error)
    return f"internal error ({type(error).__name__}); the details are in the worker's log"
