"""Stage 6, sign the model files: the OpenSSF model-signing bundle (model.sig)."""

from __future__ import annotations

from typing import Any

from imports.pipeline.base import Signer
from imports.pipeline.check import CheckResult
from registry import attestation


def sign_model_files(checked: CheckResult, signer: Signer, public_key_pem: str) -> dict[str, Any]:
    """The OpenSSF model-signing bundle over ``model/``, signed through Transit."""
    statement = attestation.model_signing_statement(
        [(item.path, item.sha256) for item in checked.files]
    )
    return attestation.sign_statement(statement, signer, public_key_pem)
