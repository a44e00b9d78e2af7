"""Getting an artifact to verify: the tarball and the files stored beside it, then extracting it.

Beside ``<artifact>`` (a path, a file:// or s3:// URL) are ``<artifact>.sigstore.json`` (the
provenance attestation, always needed) and, for layout 2, ``<artifact>.model.sig``. Layout 1
artifacts kept ``model.sig`` inside the tarball; which layout an artifact has is read from the
tarball itself once its digest is checked, so a missing ``.model.sig`` is not an error here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aegis_catalog import services
from aegis_catalog.lib.archive import ArchiveError, CorruptArchive, UnsafeArchive, safe_extract
from aegis_catalog.lib.registry_api import RegistryApi, RegistryApiError
from aegis_catalog.lib.storage import ArtifactStore, ObjectNotFound, StorageError
from registry.verification.result import (
    ArtifactUnavailable,
    ExtractionFailed,
    ManifestMismatch,
    ModelSignatureInvalid,
    UnsafeArtifact,
    VerificationResult,
)

ATTESTATION_SUFFIX = ".sigstore.json"
MODEL_SIGNATURE_SUFFIX = ".model.sig"
MANIFEST_NAME = "MANIFEST.sha256"
LAYOUT_1_MODEL_SIGNATURE = "model.sig"


@dataclass(frozen=True)
class Fetched:
    """A local copy of the tarball and the bytes of the files beside it."""

    tarball: Path
    name: str  # the artifact's file name, as the attestation's subject names it
    attestation: bytes
    model_signature: bytes | None  # <artifact>.model.sig; None when there is none


@contextmanager
def fetched(source: str, workdir: Path) -> Iterator[Fetched]:
    """The artifact at a path or a file:// or s3:// URL, with the files beside it."""
    name = source.rstrip("/").rsplit("/", 1)[-1]
    if source.startswith(("file://", "s3://")):
        try:
            store = services.store_for(source)
            tarball = store.download(source, workdir / name)
            attestation = _download_bytes(store, source + ATTESTATION_SUFFIX, workdir)
            signature = _download_optional(store, source + MODEL_SIGNATURE_SUFFIX, workdir)
        except StorageError as failure:
            raise ArtifactUnavailable(str(failure)) from failure
        yield Fetched(tarball, name, attestation, signature)
        return
    tarball = Path(source)
    bundle_path = Path(source + ATTESTATION_SUFFIX)
    signature_path = Path(source + MODEL_SIGNATURE_SUFFIX)
    if not tarball.is_file():
        raise ArtifactUnavailable(f"{source} does not exist")
    if not bundle_path.is_file():
        raise ArtifactUnavailable(f"the attestation {bundle_path} is missing beside the artifact")
    signature = signature_path.read_bytes() if signature_path.is_file() else None
    yield Fetched(tarball, tarball.name, bundle_path.read_bytes(), signature)


def _download_bytes(store: ArtifactStore, url: str, workdir: Path) -> bytes:
    return store.download(url, workdir / url.rsplit("/", 1)[-1]).read_bytes()


def _download_optional(store: ArtifactStore, url: str, workdir: Path) -> bytes | None:
    try:
        return _download_bytes(store, url, workdir)
    except ObjectNotFound:
        return None


def fetched_from_registry(client: RegistryApi, name: str, version: str, workdir: Path) -> Fetched:
    """The version's tarball, attestation and model signature, downloaded through the API."""
    tarball = workdir / f"{name}-{version}.tar.gz"
    try:
        client.download(name, version, "artifact", tarball)
        attestation = client.download(
            name, version, "attestation", workdir / "attestation.json"
        ).read_bytes()
        signature = client.download(
            name, version, "model-sig", workdir / "model-signature.json"
        ).read_bytes()
    except RegistryApiError as failure:
        raise ArtifactUnavailable(str(failure)) from None
    return Fetched(tarball, tarball.name, attestation, signature)


def extract(tarball: Path, destination: Path, result: VerificationResult) -> Path:
    """Extract the artifact safely (no absolute paths, no ``..``, no links leaving the tree)
    and return its root directory; every way extraction can fail is a verification failure."""
    try:
        safe_extract(tarball, destination)
    except UnsafeArchive as failure:
        raise UnsafeArtifact(str(failure)) from failure
    except CorruptArchive as failure:
        raise ExtractionFailed(f"the artifact is not a readable tar.gz: {failure}") from failure
    except ArchiveError as failure:
        raise ExtractionFailed(str(failure)) from failure
    except OSError as failure:
        raise ExtractionFailed(
            f"extracting into {destination} failed: {failure.strerror or failure}"
        ) from failure
    result.passed("safe_extraction", f"extracted into {destination}")
    return artifact_root(destination)


def artifact_root(destination: Path) -> Path:
    """The one ``<name>-<version>/`` directory an artifact extracts to."""
    roots = list(destination.iterdir())
    if len(roots) != 1 or not roots[0].is_dir() or not (roots[0] / "model").is_dir():
        raise ExtractionFailed(
            "the artifact does not hold exactly one <name>-<version>/ directory with model/ in it"
        )
    return roots[0]


def layout_of(root: Path) -> int:
    """1 when ``model.sig`` is inside the tarball (the earlier layout), else 2."""
    return 1 if (root / LAYOUT_1_MODEL_SIGNATURE).is_file() else 2


def model_signature_bytes(root: Path, layout: int, fetched_: Fetched) -> bytes:
    """The model signature that covers ``model/``: inside the tarball for layout 1 (the
    attested digest covers it), beside it for layout 2."""
    if layout == 1:
        return (root / LAYOUT_1_MODEL_SIGNATURE).read_bytes()
    if fetched_.model_signature is None:
        raise ModelSignatureInvalid(
            f"{fetched_.name}{MODEL_SIGNATURE_SUFFIX} is missing beside the artifact"
        )
    return fetched_.model_signature


def manifest_bytes(root: Path) -> bytes:
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise ManifestMismatch(f"the artifact has no {root.name}/{MANIFEST_NAME}")
    return path.read_bytes()
