"""One function per check of ``registry.verify``; each records what passed on the result or
raises the ``VerificationError`` naming its check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aegis_catalog.lib.checksums import ChecksumListError, parse_sha256sums
from aegis_catalog.lib.storage import sha256_file
from registry import attestation
from registry.models import ModelVersion, SigningKey
from registry.verification.fetch import MANIFEST_NAME
from registry.verification.result import (
    AttestationInvalid,
    DigestMismatch,
    KeyRevoked,
    ManifestMismatch,
    ModelSignatureInvalid,
    UntrustedKey,
    VerificationError,
    VerificationResult,
    VersionNotActive,
    VersionYanked,
    WeightsLoadFailed,
)


def _key_for(bundle: dict[str, Any], public_key: str | None) -> tuple[str, SigningKey | None]:
    """The PEM to verify with and its trust-store row (None only for a caller-given key)."""
    hint = attestation.bundle_key_hint(bundle)
    if public_key is not None:
        fingerprint = attestation.public_key_fingerprint(public_key)
        row = SigningKey.objects.filter(fingerprint=fingerprint).order_by("-revoked").first()
        return public_key, row
    if not hint:
        raise UntrustedKey("the bundle names no public key, and none was given")
    row = SigningKey.objects.filter(fingerprint=hint).order_by("-revoked").first()
    if row is None:
        raise UntrustedKey(
            f"signed by a key that is not in the trust store (fingerprint {hint[:16]}...)"
        )
    return row.public_key_pem, row


def _registry_key_pem(bundle: dict[str, Any], registry_key: dict[str, Any], what: str) -> str:
    """The registry's public key for the version, if ``bundle`` names exactly that key."""
    recorded = str(registry_key.get("fingerprint") or "")
    pem = str(registry_key.get("public_key_pem") or "")
    label = f"{registry_key.get('name')} v{registry_key.get('version')}"
    try:
        matches = bool(pem) and attestation.public_key_fingerprint(pem) == recorded
    except attestation.AttestationError:
        matches = False
    if not matches:
        raise UntrustedKey(f"the registry's public key of {label} does not match its fingerprint")
    hint = attestation.bundle_key_hint(bundle) or ""
    if hint != recorded:
        raise UntrustedKey(
            f"{what} names the key {hint[:16] or 'none'}..., but the registry records that "
            f"{label} ({recorded[:16]}...) signed this version"
        )
    return pem


def verify_bundle(
    bundle: dict[str, Any],
    public_key: str | None,
    error: type[VerificationError],
    what: str,
    *,
    registry_key: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], SigningKey | None]:
    """The signed statement; with ``registry_key`` (the API's record of the signing key) the
    bundle must name that key and verify with it, and the local trust store is not read."""
    if registry_key is not None:
        pem, row = _registry_key_pem(bundle, registry_key, what), None
    else:
        pem, row = _key_for(bundle, public_key)
    if row is not None and row.revoked:
        raise KeyRevoked(f"{what} was signed by {row}, which is revoked")
    try:
        statement = attestation.verify_bundle(bundle, pem)
    except attestation.AttestationError as failure:
        raise error(f"{what}: {failure}") from failure
    return statement, row


def check_attestation(
    bundle_bytes: bytes,
    public_key: str | None,
    result: VerificationResult,
    *,
    artifact_name: str,
    registry_key: dict[str, Any] | None = None,
) -> SigningKey | None:
    """Verify the provenance attestation and that it is Aegis's SLSA provenance of a subject
    named like the tarball; keep its statement, return the trust-store key."""
    try:
        bundle = attestation.load_bundle(bundle_bytes)
    except attestation.AttestationError as failure:
        raise AttestationInvalid(f"the attestation is malformed: {failure}") from failure
    statement, key = verify_bundle(
        bundle,
        public_key,
        AttestationInvalid,
        "the provenance attestation",
        registry_key=registry_key,
    )
    _check_provenance_type(statement, artifact_name)
    result.statement = statement
    result.passed(
        "attestation_signature",
        f"the provenance signature verifies; SLSA provenance of {artifact_name}",
    )
    return key


def _check_provenance_type(statement: dict[str, Any], artifact_name: str) -> None:
    """Another signed statement (a model.sig bundle, an audit anchor) is not provenance."""
    predicate_type = statement.get("predicateType")
    if predicate_type != attestation.SLSA_PROVENANCE_PREDICATE_TYPE:
        raise AttestationInvalid(
            f"the attestation is not SLSA provenance: its predicateType is {predicate_type!r}, "
            f"not {attestation.SLSA_PROVENANCE_PREDICATE_TYPE}"
        )
    predicate = statement.get("predicate")
    definition = predicate.get("buildDefinition") if isinstance(predicate, dict) else None
    build_type = definition.get("buildType") if isinstance(definition, dict) else None
    if build_type != attestation.HF_IMPORT_BUILD_TYPE:
        raise AttestationInvalid(
            f"the provenance's buildType is {build_type!r}, not Aegis's "
            f"{attestation.HF_IMPORT_BUILD_TYPE}"
        )
    if not subject_digests(statement, artifact_name):
        names = [item.get("name") for item in _subjects(statement)]
        raise AttestationInvalid(
            f"the provenance has no subject named {artifact_name!r} (its subjects: {names})"
        )


def _subjects(statement: dict[str, Any]) -> list[dict[str, Any]]:
    subjects = statement.get("subject")
    if not isinstance(subjects, list):
        return []
    return [item for item in subjects if isinstance(item, dict)]


def subject_digests(statement: dict[str, Any], artifact_name: str) -> set[str]:
    """The sha256 digests the statement signs for a subject named ``artifact_name``."""
    digests = set()
    for item in _subjects(statement):
        digest = item.get("digest")
        if item.get("name") == artifact_name and isinstance(digest, dict):
            value = digest.get("sha256")
            if isinstance(value, str) and value:
                digests.add(value)
    return digests


def check_signed_digest(tarball: Path, artifact_name: str, result: VerificationResult) -> str:
    """Hash the tarball; its sha256 must be the one the verified attestation signs for it."""
    digest = sha256_file(tarball)
    result.sha256, result.size = digest, tarball.stat().st_size
    signed = subject_digests(result.statement, artifact_name)
    if digest not in signed:
        raise DigestMismatch(
            f"the artifact's sha256 {digest} is not the one the attestation signs "
            f"({', '.join(sorted(signed)) or 'none'})"
        )
    return digest


def check_not_yanked(result: VerificationResult) -> None:
    """The version (given, or the latest registered with the artifact's sha256) is not yanked,
    nor awaiting approval or rejected."""
    registered = result.version
    if registered is None:
        registered = (
            ModelVersion.objects.select_related("model")
            .filter(sha256=result.sha256)
            .order_by("-imported_at")
            .first()
        )
        result.version = registered
    if registered is not None and registered.status == ModelVersion.Status.YANKED:
        raise VersionYanked(
            f"{registered.model.name} {registered.version} is yanked: {registered.status_reason}"
        )
    if registered is not None and registered.status in (
        ModelVersion.Status.AWAITING,
        ModelVersion.Status.REJECTED,
    ):
        raise VersionNotActive(
            f"{registered.model.name} {registered.version} is {registered.get_status_display()}"
            ", not active: a registry admin has not approved it"
        )
    result.passed(
        "not_yanked",
        f"{registered.model.name} {registered.version} is {registered.status}"
        if registered
        else "not in this registry",
    )


def hash_files(root: Path) -> dict[str, str]:
    """sha256 of every regular file under the artifact root, by ``/``-separated path."""
    return {
        path.relative_to(root).as_posix(): sha256_file(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def check_manifest(
    manifest: bytes, digests: dict[str, str], root_name: str, result: VerificationResult
) -> None:
    """``MANIFEST.sha256`` lists exactly the extracted files, each with its sha256."""
    try:
        listed = parse_sha256sums(manifest)
    except ChecksumListError as failure:
        raise ManifestMismatch(f"{MANIFEST_NAME} is malformed: {failure}") from failure
    on_disk = {path: digest for path, digest in digests.items() if path != MANIFEST_NAME}
    if set(listed) != set(on_disk):
        missing = sorted(set(listed) - set(on_disk))
        extra = sorted(set(on_disk) - set(listed))
        raise ManifestMismatch(
            f"{root_name}/{MANIFEST_NAME} does not list the extracted files (missing: "
            f"{missing or 'none'}, not listed: {extra or 'none'})"
        )
    for path, digest in sorted(listed.items()):
        if on_disk[path] != digest:
            raise ManifestMismatch(f"{root_name}/{path} differs from its sha256 in {MANIFEST_NAME}")
    result.passed("manifest", f"{MANIFEST_NAME} matches the {len(listed)} extracted files")


def check_model_signature(
    signature: bytes,
    digests: dict[str, str],
    public_key: str | None,
    result: VerificationResult,
    *,
    where: str,
    registry_key: dict[str, Any] | None = None,
) -> None:
    """The model-signing bundle verifies and covers exactly the files of ``model/``."""
    try:
        bundle = attestation.load_bundle(signature)
    except attestation.AttestationError as failure:
        raise ModelSignatureInvalid(f"{where} is malformed: {failure}") from failure
    statement, _ = verify_bundle(
        bundle, public_key, ModelSignatureInvalid, where, registry_key=registry_key
    )
    try:
        signed = attestation.statement_files(statement)
    except attestation.AttestationError as failure:
        raise ModelSignatureInvalid(f"{where}: {failure}") from failure
    ignored = statement["predicate"]["serialization"].get("ignore_paths") or ()
    on_disk = {
        name: digest
        for path, digest in digests.items()
        if path.startswith("model/")
        and not attestation.is_ignored_by_model_signing(name := path[len("model/") :], ignored)
    }
    if set(signed) != set(on_disk):
        missing = sorted(set(signed) - set(on_disk))
        extra = sorted(set(on_disk) - set(signed))
        raise ModelSignatureInvalid(
            f"model/ does not hold the files {where} signs (missing: {missing or 'none'}, "
            f"not signed: {extra or 'none'})"
        )
    for name, digest in on_disk.items():
        if digest != signed[name]:
            raise ModelSignatureInvalid(f"model/{name} differs from its sha256 in {where}")
    result.passed("model_signature", f"{where} covers the {len(signed)} files of model/")


def load_weights(root: Path, result: VerificationResult) -> None:
    from safetensors import safe_open

    files = sorted(root.glob("model/**/*.safetensors"))
    tensors = 0
    for path in files:
        try:
            with safe_open(str(path), framework="numpy") as handle:
                for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                    handle.get_tensor(name)
                    tensors += 1
        except Exception as failure:
            raise WeightsLoadFailed(f"{path.name} does not load: {failure}") from failure
    result.passed("load", f"{tensors} tensors loaded from {len(files)} safetensors files")
