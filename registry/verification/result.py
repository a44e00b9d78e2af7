"""What a verification found: the checks that passed, or the error naming the one that failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.models import ModelVersion, SigningKey


class VerificationError(Exception):
    """A check failed; ``check`` names it (each subclass gives its name as a class keyword)."""

    check = "verification"

    def __init_subclass__(cls, *, check: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if check is not None:
            cls.check = check


class ArtifactUnavailable(VerificationError, check="fetch"):
    """The tarball or a file beside it cannot be fetched."""


class AttestationInvalid(VerificationError, check="attestation_signature"):
    """The provenance attestation is malformed, not Aegis's SLSA provenance of this tarball,
    or its signature does not verify."""


class UntrustedKey(VerificationError, check="trusted_key"):
    """The signing key is not in the trust store, or not the key the registry records."""


class KeyRevoked(VerificationError, check="key_not_revoked"):
    """The signing key is revoked."""


class DigestMismatch(VerificationError, check="digest"):
    """The tarball's sha256 is not the one signed (or registered)."""


class VersionYanked(VerificationError, check="not_yanked"):
    """The registry records the version as yanked."""


class UnsafeArtifact(VerificationError, check="safe_extraction"):
    """The tarball would not extract safely (see ``aegis_catalog.lib.archive``)."""


class ExtractionFailed(VerificationError, check="safe_extraction"):
    """The tarball could not be extracted: not a tar.gz, truncated, or the disk is full."""


class ManifestMismatch(VerificationError, check="manifest"):
    """``MANIFEST.sha256`` is missing or malformed, or does not match the files of ``model/``."""


class ModelSignatureInvalid(VerificationError, check="model_signature"):
    """``model.sig`` is missing or malformed, or does not cover the files of ``model/``."""


class WeightsLoadFailed(VerificationError, check="load"):
    """A safetensors file of the model does not load."""


class RegistryRecordUnavailable(VerificationError, check="registry_record"):
    """The registry API gave no record of the version (unreachable, no token, not found)."""


class VersionNotActive(VerificationError, check="active"):
    """The registry records the version as deprecated (yanked raises ``VersionYanked``)."""


class VerificationAborted(VerificationError, check="verification"):
    """Verification stopped for a reason no check names (a full disk, an unexpected error)."""


@dataclass(frozen=True)
class Check:
    name: str
    detail: str


@dataclass
class VerificationResult:
    """What was verified; every entry of ``checks`` passed (a failure raises instead)."""

    artifact: str
    sha256: str = ""
    size: int = 0
    checks: list[Check] = field(default_factory=list)
    statement: dict[str, Any] = field(default_factory=dict)
    signing_key: SigningKey | None = None
    version: ModelVersion | None = None
    extracted_to: Path | None = None
    # With ``name``/``version``: the registry API's record the artifact was checked against.
    record: dict[str, Any] | None = None
    # 2: model.sig and aegis.json beside the tarball; 1: inside it (0: not extracted).
    layout: int = 0

    def passed(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, detail))

    @property
    def check_names(self) -> list[str]:
        return [item.name for item in self.checks]
