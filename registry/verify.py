"""Runtime verification of a stored artifact, offline from the trust store.

``verify_model_artifact`` checks, in order: the artifact can be fetched, the provenance
attestation's signature, that the signing key is trusted and not revoked, the tarball digest
against the attestation (and the registry), that the version is not yanked, safe extraction,
``model.sig`` over ``model/``, and optionally that safetensors weights load.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aegis_catalog import services
from aegis_catalog.lib.archive import UnsafeArchive, safe_extract
from aegis_catalog.lib.registry_api import RegistryApi, RegistryApiError
from aegis_catalog.lib.storage import StorageError, sha256_file
from registry import attestation
from registry.models import ModelVersion, SigningKey


class VerificationError(Exception):
    """A check failed; ``check`` names it (each subclass gives its name as a class keyword)."""

    check = "verification"

    def __init_subclass__(cls, *, check: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if check is not None:
            cls.check = check


class ArtifactUnavailable(VerificationError, check="fetch"):
    """The tarball or its attestation cannot be fetched."""


class AttestationInvalid(VerificationError, check="attestation_signature"):
    """The provenance attestation is malformed or its signature does not verify."""


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


class ModelSignatureInvalid(VerificationError, check="model_signature"):
    """``model.sig`` is missing or malformed, or does not cover the files of ``model/``."""


class WeightsLoadFailed(VerificationError, check="load"):
    """A safetensors file of the model does not load."""


class RegistryRecordUnavailable(VerificationError, check="registry_record"):
    """The registry API gave no record of the version (unreachable, no token, not found)."""


class VersionNotActive(VerificationError, check="active"):
    """The registry records the version as deprecated (yanked raises ``VersionYanked``)."""


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

    def passed(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, detail))

    @property
    def check_names(self) -> list[str]:
        return [item.name for item in self.checks]


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


def _verify_bundle(
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


@contextmanager
def _fetched(source: str, workdir: Path) -> Iterator[tuple[Path, bytes]]:
    """The tarball as a local path and its attestation bundle bytes."""
    if source.startswith(("file://", "s3://")):
        try:
            store = services.store_for(source)
            local = store.download(source, workdir / Path(source).name)
            bundle_path = store.download(
                source + ".sigstore.json", workdir / (Path(source).name + ".sigstore.json")
            )
        except StorageError as failure:
            raise ArtifactUnavailable(str(failure)) from failure
        yield local, bundle_path.read_bytes()
        return
    local = Path(source)
    bundle_path = Path(source + ".sigstore.json")
    if not local.is_file():
        raise ArtifactUnavailable(f"{source} does not exist")
    if not bundle_path.is_file():
        raise ArtifactUnavailable(f"the attestation {bundle_path} is missing beside the artifact")
    yield local, bundle_path.read_bytes()


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

    ``public_key`` (a PEM) replaces the trust-store lookup for the attestation and ``model.sig``;
    a key the trust store knows as revoked is still refused.

    ``extract=False`` stops after the digest and yank checks: the signed provenance already
    binds every byte of the tarball, so a consumer that will not read ``model/`` can skip the
    extraction and the ``model.sig`` check (one read of the file, as fast as hashing it).

    With ``name`` and ``version``, the registry's own record is the reference instead of the
    local trust store: it is read from the registry API (``AEGIS_API_URL`` and
    ``AEGIS_API_TOKEN``/``AEGIS_API_TOKEN_FILE``, or ``api_url``/``api_token``), the version must
    be active (``allow_deprecated`` lets a deprecated one pass; yanked never does), its signing
    key not revoked, both signatures must be by exactly the key and version the registry
    records, and the tarball's sha256 the registered one. The artifact is downloaded through
    the API unless a path or URL is given.
    """
    if name is not None or version is not None:
        if not name or not version:
            raise TypeError("verify_model_artifact needs both name= and version=")
        if public_key is not None or isinstance(path_or_url_or_version, ModelVersion):
            raise TypeError("with name= and version= the registry's record gives the key")
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
        with _fetched(source, workdir) as (tarball, bundle_bytes):
            result.passed("fetch", f"fetched {source}")
            key = _check_attestation(bundle_bytes, public_key, result)
            result.signing_key = key
            result.passed(
                "key_not_revoked",
                f"signed by {key}" if key else "signed by the given public key",
            )
            digest = _check_signed_digest(tarball, result)
            if registered is not None and registered.sha256 != digest:
                raise DigestMismatch(
                    f"the artifact's sha256 {digest} differs from the registry's "
                    f"{registered.sha256}"
                )
            result.passed("digest", f"sha256 {digest}")
            _check_not_yanked(result)
            if extract:
                _check_contents(
                    tarball, workdir, extract_to, result, public_key=public_key, load=load
                )
    return result


def _check_attestation(
    bundle_bytes: bytes,
    public_key: str | None,
    result: VerificationResult,
    *,
    registry_key: dict[str, Any] | None = None,
) -> SigningKey | None:
    """Verify the provenance attestation; keep its statement, return the trust-store key."""
    try:
        bundle = attestation.load_bundle(bundle_bytes)
    except attestation.AttestationError as failure:
        raise AttestationInvalid(f"the attestation is malformed: {failure}") from failure
    statement, key = _verify_bundle(
        bundle,
        public_key,
        AttestationInvalid,
        "the provenance attestation",
        registry_key=registry_key,
    )
    result.statement = statement
    result.passed("attestation_signature", "the provenance signature verifies")
    return key


def _check_signed_digest(tarball: Path, result: VerificationResult) -> str:
    """Hash the tarball; its sha256 must be a subject of the verified attestation."""
    digest = sha256_file(tarball)
    result.sha256, result.size = digest, tarball.stat().st_size
    subjects = {
        item.get("digest", {}).get("sha256") for item in result.statement.get("subject", [])
    }
    if digest not in subjects:
        raise DigestMismatch(
            f"the artifact's sha256 {digest} is not the one the attestation signs "
            f"({', '.join(sorted(s for s in subjects if s)) or 'none'})"
        )
    return digest


def _check_not_yanked(result: VerificationResult) -> None:
    """The version (given, or the latest registered with the artifact's sha256) is not yanked."""
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
    result.passed(
        "not_yanked",
        f"{registered.model.name} {registered.version} is {registered.status}"
        if registered
        else "not in this registry",
    )


def _check_contents(
    tarball: Path,
    workdir: Path,
    extract_to: Path | None,
    result: VerificationResult,
    *,
    public_key: str | None = None,
    registry_key: dict[str, Any] | None = None,
    load: bool,
) -> None:
    """Extract the tarball, check ``model.sig`` over ``model/``, and load the weights if asked."""
    destination = _extract(tarball, extract_to or workdir / "extracted", result)
    result.extracted_to = destination if extract_to else None
    _check_model_signature(tarball, destination, public_key, result, registry_key=registry_key)
    if load:
        _load_weights(destination, result)


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
            tarball = workdir / f"{name}-{version}.tar.gz"
            try:
                client.download(name, version, "artifact", tarball)
                bundle_bytes = client.download(
                    name, version, "attestation", workdir / "attestation.json"
                ).read_bytes()
            except RegistryApiError as failure:
                raise ArtifactUnavailable(str(failure)) from None
            result.passed("fetch", f"downloaded {name} {version} from {client.base_url}")
            _verify_fetched_against_record(
                tarball, bundle_bytes, workdir, record, result, extract_to, load
            )
        else:
            with _fetched(source, workdir) as (tarball, bundle_bytes):
                result.passed("fetch", f"fetched {source}")
                _verify_fetched_against_record(
                    tarball, bundle_bytes, workdir, record, result, extract_to, load
                )
    result.passed("key_not_revoked", f"signed by {key_label}, not revoked")
    return result


def _verify_fetched_against_record(
    tarball: Path,
    bundle_bytes: bytes,
    workdir: Path,
    record: dict[str, Any],
    result: VerificationResult,
    extract_to: Path | None,
    load: bool,
) -> None:
    """The checks after the fetch, with the registry's record of key and sha256 as reference."""
    key = record["signing_key"]
    _check_attestation(bundle_bytes, None, result, registry_key=key)
    result.passed(
        "trusted_key",
        f"signed by {key.get('name')} v{key.get('version')}, the key the registry records",
    )
    digest = _check_signed_digest(tarball, result)
    if digest != record["sha256"]:
        raise DigestMismatch(
            f"the artifact's sha256 {digest} differs from the registry's {record['sha256']}"
        )
    result.passed("digest", f"sha256 {digest}, as registered")
    _check_contents(tarball, workdir, extract_to, result, registry_key=key, load=load)


def _artifact_root(destination: Path) -> Path:
    roots = [item for item in destination.iterdir() if item.is_dir()]
    if len(roots) != 1 or not (roots[0] / "model.sig").is_file():
        raise ModelSignatureInvalid("the artifact has no <name>-<version>/model.sig")
    return roots[0]


def _extract(tarball: Path, destination: Path, result: VerificationResult) -> Path:
    """Extract the artifact safely (no absolute paths, no ``..``, no links leaving the tree)."""
    try:
        safe_extract(tarball, destination)
    except UnsafeArchive as failure:
        raise UnsafeArtifact(str(failure)) from failure
    result.passed("safe_extraction", f"extracted into {destination}")
    return destination


def _check_model_signature(
    tarball: Path,
    destination: Path,
    public_key: str | None,
    result: VerificationResult,
    *,
    registry_key: dict[str, Any] | None = None,
) -> None:
    root = _artifact_root(destination)
    try:
        bundle = attestation.load_bundle((root / "model.sig").read_bytes())
    except attestation.AttestationError as failure:
        raise ModelSignatureInvalid(f"model.sig is malformed: {failure}") from failure
    statement, _ = _verify_bundle(
        bundle, public_key, ModelSignatureInvalid, "model.sig", registry_key=registry_key
    )
    try:
        signed = attestation.statement_files(statement)
    except attestation.AttestationError as failure:
        raise ModelSignatureInvalid(f"model.sig: {failure}") from failure
    ignored = statement["predicate"]["serialization"].get("ignore_paths") or ()
    model_dir = root / "model"
    on_disk = {
        name: path
        for path in sorted(model_dir.rglob("*"))
        if path.is_file()
        and not attestation.is_ignored_by_model_signing(
            name := path.relative_to(model_dir).as_posix(), ignored
        )
    }
    if set(signed) != set(on_disk):
        missing = sorted(set(signed) - set(on_disk))
        extra = sorted(set(on_disk) - set(signed))
        raise ModelSignatureInvalid(
            f"model/ does not hold the signed files (missing: {missing or 'none'}, "
            f"not signed: {extra or 'none'})"
        )
    for name, path in on_disk.items():
        if sha256_file(path) != signed[name]:
            raise ModelSignatureInvalid(f"model/{name} differs from its signed sha256")
    result.passed("model_signature", f"model.sig covers the {len(signed)} files of model/")


def _load_weights(destination: Path, result: VerificationResult) -> None:
    from safetensors import safe_open

    files = sorted(_artifact_root(destination).glob("model/**/*.safetensors"))
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


def verify_and_record(
    path_or_url_or_version: str | Path | ModelVersion,
    *,
    actor: str,
    user: Any = None,
    public_key: str | None = None,
    extract_to: Path | None = None,
    load: bool = False,
) -> VerificationResult:
    """``verify_model_artifact``, with the run and its result written to the audit trail."""
    from registry.actions import record_verification

    target = path_or_url_or_version
    version = target if isinstance(target, ModelVersion) else None
    artifact = version.model_path if version else str(target)
    try:
        result = verify_model_artifact(
            target, public_key=public_key, extract_to=extract_to, load=load
        )
    except VerificationError as failure:
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
        raise
    record_verification(
        result.version,
        artifact=artifact,
        actor=actor,
        user=user,
        passed=True,
        checks=result.check_names,
    )
    return result


def find_version_by_path(artifact: str) -> ModelVersion | None:
    return ModelVersion.objects.select_related("model").filter(model_path=artifact).first()
