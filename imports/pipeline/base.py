"""What every stage shares: the progress callback, the signer, the errors, the key prefix."""

from __future__ import annotations

import logging
from collections.abc import Callable

from registry.attestation import SignedDigest
from registry.policy import PolicyViolation

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
Signer = Callable[[bytes], SignedDigest]


class PipelineError(Exception):
    """A stage refused to go on; the message says why in words a person can act on."""

    code = "pipeline_error"


class PreflightError(PipelineError):
    code = "preflight"


class DigestMismatch(PipelineError):
    code = "digest_mismatch"


class UnsafeModelFile(PolicyViolation, PipelineError):
    """The scan found pickle content the policy refuses (``code`` is ``policy:<rule>``)."""


class ContentYanked(PipelineError):
    """The same content was imported before and its version is yanked."""

    code = "yanked"


class ContentRejected(PipelineError):
    """The same content was imported before and a registry admin rejected its version."""

    code = "rejected"


class StoreError(PipelineError):
    code = "store"


def _noop_progress(done: int, total: int) -> None:
    return None


def storage_prefix(model_name: str, version: str, import_id: int) -> str:
    """Keys carry the import's id: no import ever overwrites another one's objects."""
    return f"{model_name}/{version}/import-{import_id}"
