"""Runtime verification of a stored artifact, offline from the trust store.

``verify_model_artifact`` checks, in order: the artifact can be fetched, the provenance
attestation's signature (and that it is Aegis's SLSA provenance of this tarball), that the
signing key is trusted and not revoked, the tarball digest against the attestation (and the
registry), that the version is not yanked, safe extraction, ``MANIFEST.sha256`` against the
extracted files, the model signature over ``model/`` (``<artifact>.model.sig`` beside the
tarball; inside it for artifacts of layout 1), and optionally that safetensors weights load.

This module orchestrates; ``registry.verification`` holds the parts (``result``: the result and
the errors, ``fetch``: fetching and extraction, ``checks``: one function per check).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aegis_catalog.lib.registry_api import RegistryApi, RegistryApiError
from aegis_catalog.lib.storage import StorageError
from registry.models import ModelVersion
from registry.verification import checks
from registry.verification.fetch import (
    MODEL_SIGNATURE_SUFFIX,
    Fetched,
    extract,
    fetched,
    fetched_from_registry,
    layout_of,
    manifest_bytes,
    model_signature_bytes,
)
from registry.verification.result import (
    ArtifactUnavailable,
    AttestationInvalid,
    Check,
    DigestMismatch,
    ExtractionFailed,
    KeyRevoked,
    ManifestMismatch,
    ModelSignatureInvalid,
    RegistryRecordUnavailable,
    UnsafeArtifact,
    UntrustedKey,
    VerificationAborted,
    VerificationError,
    VerificationResult,
    VersionNotActive,
    VersionYanked,
    WeightsLoadFailed,
)

__all__ = [
    "ArtifactUnavailable",
    "AttestationInvalid",
    "Check",
    "DigestMismatch",
    "ExtractionFailed",
    "KeyRevoked",
    "ManifestMismatch",
    "ModelSignatureInvalid",
    "RegistryRecordUnavailable",
    "UnsafeArtifact",
    "UntrustedKey",
    "VerificationAborted",
    "VerificationError",
    "VerificationResult",
    "VersionNotActive",
    "VersionYanked",
    "WeightsLoadFailed",
    "find_version_by_path",
    "verify_and_record",
    "verify_model_artifact",
]

logger = logging.getLogger(__name__)


@contextmanager
def _failures_as_verification_errors() -> Iterator[None]:
    """A store, a disk or an archive failing is a verification failure with its reason."""
    try:
        yield
    except VerificationError:
        raise
    except StorageError as failure:
        raise ArtifactUnavailable(str(failure)) from failure
    except OSError as failure:
        where = f" ({failure.filename})" if failure.filename else ""
        raise VerificationAborted(
            f"verification stopped: {failure.strerror or failure}{where}"
        ) from failure


def verify_model_artifact(
    path_or_url_or_version: str | Path | ModelVersion | None = None,
    *,
    public_key: str | None = None,
    extract_to: Path | None = None,
    load: bool = False,
    extract: bool = True,
    name: str | None = None,
    version: str | None = None,
    allow_deprecated: bool = False,
    api_url: str | None = None,
    api_token: str | None = None,
) -> VerificationResult:
    """Verify an artifact; raise the ``VerificationError`` subclass naming the first failed check.

    ``public_key`` (a PEM) replaces the trust-store lookup for the attestation and the model
    signature; a key the trust store knows as revoked is still refused.

    ``extract=False`` stops after the digest and yank checks: the signed provenance already
    binds every byte of the tarball, so a consumer that will not read ``model/`` can skip the
    extraction, the manifest and the model signature (one read of the file, as fast as hashing
    it).

    With ``name`` and ``version``, the registry's own record is the reference instead of the
    local trust store: it is read from the registry API (``AEGIS_API_URL`` and
    ``AEGIS_API_TOKEN``/``AEGIS_API_TOKEN_FILE``, or ``api_url``/``api_token``), the version must
    be active (``allow_deprecated`` lets a deprecated one pass; yanked never does), its signing
    key not revoked, both signatures must be by exactly the key and version the registry
    records, and the tarball's sha256 the registered one. The artifact is downloaded through
    the API unless a path or URL is given. A store, disk or archive failure is a
    ``VerificationError`` too (``fetch``, ``safe_extraction`` or ``verification``).
    """
    if name is not None or version is not None:
        if not name or not version:
            raise TypeError("verify_model_artifact needs both name= and version=")
        if public_key is not None or isinstance(path_or_url_or_version, ModelVersion):
            raise TypeError("with name= and version= the registry's record gives the key")
        with _failures_as_verification_errors():
            return _verify_against_registry(
                name,
                version,
                source=None if path_or_url_or_version is None else str(path_or_url_or_version),
                extract_to=extract_to,
                load=load,
                allow_deprecated=allow_deprecated,
                api_url=api_url,
                api_token=api_token,
            )
    if path_or_url_or_version is None:
        raise TypeError("verify_model_artifact needs a path, URL or version, or name= and version=")
    if load and not extract:
        raise TypeError("load=True needs the extraction (extract=True)")
    with _failures_as_verification_errors():
        return _verify_against_trust_store(
            path_or_url_or_version,
            public_key=public_key,
            extract_to=extract_to,
            load=load,
            extract=extract,
        )


def _verify_against_trust_store(
    target: str | Path | ModelVersion,
    *,
    public_key: str | None,
    extract_to: Path | None,
    load: bool,
    extract: bool,
) -> VerificationResult:
    """``verify_model_artifact(path_or_url_or_version)``: the local trust store is the reference."""
    registered = target if isinstance(target, ModelVersion) else None
    source = registered.model_path if registered else str(target)
    result = VerificationResult(artifact=source, version=registered)
    with tempfile.TemporaryDirectory(prefix="aegis-verify-") as scratch:
        workdir = Path(scratch)
        with fetched(source, workdir) as artifact:
            result.passed("fetch", f"fetched {source}")
            key = checks.check_attestation(
                artifact.attestation, public_key, result, artifact_name=artifact.name
            )
            result.signing_key = key
            result.passed(
                "key_not_revoked",
                f"signed by {key}" if key else "signed by the given public key",
            )
            digest = checks.check_signed_digest(artifact.tarball, artifact.name, result)
            if registered is not None and registered.sha256 != digest:
                raise DigestMismatch(
                    f"the artifact's sha256 {digest} differs from the registry's "
                    f"{registered.sha256}"
                )
            result.passed("digest", f"sha256 {digest}")
            checks.check_not_yanked(result)
            if extract:
                _check_contents(
                    artifact, workdir, extract_to, result, public_key=public_key, load=load
                )
    return result


def _check_contents(
    artifact: Fetched,
    workdir: Path,
    extract_to: Path | None,
    result: VerificationResult,
    *,
    public_key: str | None = None,
    registry_key: dict[str, Any] | None = None,
    load: bool,
) -> None:
    """Extract the tarball, check the manifest and the model signature over ``model/``, and
    load the weights if asked. Every extracted file is hashed once, for both checks."""
    root = extract(artifact.tarball, extract_to or workdir / "extracted", result)
    result.extracted_to = root.parent if extract_to else None
    result.layout = layout_of(root)
    signature = model_signature_bytes(root, result.layout, artifact)
    digests = checks.hash_files(root)
    if result.layout == 1:
        where = "model.sig (inside the tarball, layout 1)"
    else:
        checks.check_manifest(manifest_bytes(root), digests, root.name, result)
        where = f"{artifact.name}{MODEL_SIGNATURE_SUFFIX}"
    checks.check_model_signature(
        signature, digests, public_key, result, where=where, registry_key=registry_key
    )
    if load:
        checks.load_weights(root, result)


def _registry_record(
    name: str, version: str, api_url: str | None, api_token: str | None
) -> tuple[RegistryApi, dict[str, Any]]:
    try:
        client = RegistryApi.from_environment(api_url, api_token)
        record = client.version(name, version)
    except RegistryApiError as failure:
        raise RegistryRecordUnavailable(
            f"no registry record of {name} {version}: {failure}"
        ) from None
    key = record.get("signing_key")
    if not isinstance(key, dict) or not isinstance(record.get("sha256"), str):
        raise RegistryRecordUnavailable(f"the registry's record of {name} {version} is incomplete")
    return client, record


def _check_record_status(
    name: str,
    version: str,
    record: dict[str, Any],
    allow_deprecated: bool,
    result: VerificationResult,
) -> None:
    """The registry records the version as active (or deprecated, if allowed), never yanked."""
    status = record.get("status")
    if status == ModelVersion.Status.YANKED:
        raise VersionYanked(f"{name} {version} is yanked: {record.get('status_reason') or ''}")
    if status != ModelVersion.Status.ACTIVE and not (
        allow_deprecated and status == ModelVersion.Status.DEPRECATED
    ):
        raise VersionNotActive(
            f"{name} {version} is {status}, not active: {record.get('status_reason') or ''}"
        )
    result.passed("active", f"{name} {version} is {status}")


def _verify_against_registry(
    name: str,
    version: str,
    *,
    source: str | None,
    extract_to: Path | None,
    load: bool,
    allow_deprecated: bool,
    api_url: str | None,
    api_token: str | None,
) -> VerificationResult:
    """``verify_model_artifact(name=, version=)``: the registry API's record is the reference."""
    client, record = _registry_record(name, version, api_url, api_token)
    key = record["signing_key"]
    key_label = f"{key.get('name')} v{key.get('version')}"
    result = VerificationResult(artifact=source or f"{name} {version}", record=record)
    result.passed("registry_record", f"{name} {version} as recorded by {client.base_url}")
    _check_record_status(name, version, record, allow_deprecated, result)
    if key.get("revoked"):
        raise KeyRevoked(f"{name} {version} was signed by {key_label}, which is revoked")
    with tempfile.TemporaryDirectory(prefix="aegis-verify-") as scratch:
        workdir = Path(scratch)
        if source is None:
            artifact = fetched_from_registry(client, name, version, workdir)
            result.passed("fetch", f"downloaded {name} {version} from {client.base_url}")
            _verify_fetched_against_record(artifact, workdir, record, result, extract_to, load)
        else:
            with fetched(source, workdir) as artifact:
                result.passed("fetch", f"fetched {source}")
                _verify_fetched_against_record(artifact, workdir, record, result, extract_to, load)
    result.passed("key_not_revoked", f"signed by {key_label}, not revoked")
    return result


def _verify_fetched_against_record(
    artifact: Fetched,
    workdir: Path,
    record: dict[str, Any],
    result: VerificationResult,
    extract_to: Path | None,
    load: bool,
) -> None:
    """The checks after the fetch, with the registry's record of key and sha256 as reference."""
    key = record["signing_key"]
    checks.check_attestation(
        artifact.attestation, None, result, artifact_name=artifact.name, registry_key=key
    )
    result.passed(
        "trusted_key",
        f"signed by {key.get('name')} v{key.get('version')}, the key the registry records",
    )
    digest = checks.check_signed_digest(artifact.tarball, artifact.name, result)
    if digest != record["sha256"]:
        raise DigestMismatch(
            f"the artifact's sha256 {digest} differs from the registry's {record['sha256']}"
        )
    result.passed("digest", f"sha256 {digest}, as registered")
    _check_contents(artifact, workdir, extract_to, result, registry_key=key, load=load)


def verify_and_record(
    path_or_url_or_version: str | Path | ModelVersion,
    *,
    actor: str,
    user: Any = None,
    public_key: str | None = None,
    extract_to: Path | None = None,
    load: bool = False,
) -> VerificationResult:
    """``verify_model_artifact``, with the run and its result written to the audit trail.

    Every run is recorded: a failure of any kind (an unexpected error included, which is
    logged) is recorded as a failed run and raised as a ``VerificationError`` with its reason.
    """
    from registry.actions import record_verification

    target = path_or_url_or_version
    version = target if isinstance(target, ModelVersion) else None
    artifact = version.model_path if version else str(target)

    def record_failure(failure: VerificationError) -> None:
        record_verification(
            version or find_version_by_path(artifact),
            artifact=artifact,
            actor=actor,
            user=user,
            passed=False,
            checks=[],
            failed_check=failure.check,
            error=str(failure),
        )

    result = _run_recording_failures(
        lambda: verify_model_artifact(
            target, public_key=public_key, extract_to=extract_to, load=load
        ),
        record_failure,
    )
    record_verification(
        result.version,
        artifact=artifact,
        actor=actor,
        user=user,
        passed=True,
        checks=result.check_names,
    )
    return result


def _run_recording_failures(
    run: Callable[[], VerificationResult], record: Callable[[VerificationError], None]
) -> VerificationResult:
    try:
        return run()
    except VerificationError as failure:
        record(failure)
        raise
    except Exception as unexpected:
        logger.exception("verification stopped by an unexpected error")
        aborted = VerificationAborted(
            f"verification stopped by an unexpected error: {type(unexpected).__name__}: "
            f"{unexpected}"
        )
        record(aborted)
        raise aborted from unexpected


def find_version_by_path(artifact: str) -> ModelVersion | None:
    return ModelVersion.objects.select_related("model").filter(model_path=artifact).first()
