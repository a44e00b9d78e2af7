"""A version's provenance as files: what auditors download and carry to an air-gapped site."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aegis_catalog import services
from aegis_catalog.lib.storage import sha256_file
from registry import attestation
from registry.models import ModelVersion

PUBLIC_KEY_NAME = "public_key.pem"
MODEL_SIGNATURE_SUFFIX = ".model.sig"  # <artifact>.model.sig, beside the tarball
ATTESTATION_SUFFIX = ".sigstore.json"


@dataclass(frozen=True)
class ExportedProvenance:
    artifact: Path
    attestation: Path
    model_signature: Path
    record: Path
    public_key: Path

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.artifact, self.attestation, self.model_signature, self.record, self.public_key)


def artifact_name(version: ModelVersion) -> str:
    return version.model_path.rsplit("/", 1)[-1]


def record_url(version: ModelVersion) -> str:
    """aegis.json is stored beside the tarball."""
    return version.model_path.rsplit("/", 1)[0] + "/aegis.json"


def stored_urls(version: ModelVersion) -> tuple[str, ...]:
    """Every object stored for the version: the tarball, beside it its model signature and
    attestation, and aegis.json."""
    tarball = version.model_path
    return (
        tarball,
        tarball + MODEL_SIGNATURE_SUFFIX,
        tarball + ATTESTATION_SUFFIX,
        record_url(version),
    )


def artifact_layout(version: ModelVersion) -> int:
    """2: the tarball holds only model/ and MANIFEST.sha256; 1: model.sig and aegis.json inside
    (versions registered before layout 2 record no layout)."""
    options = version.import_options if isinstance(version.import_options, dict) else {}
    layout = options.get("layout", 1)
    return layout if isinstance(layout, int) else 1


def artifact_root(version: ModelVersion) -> str:
    """The directory the tarball extracts to, ``<name>-<version>``."""
    return artifact_name(version).removesuffix(".tar.gz")


def model_signature_name(version: ModelVersion) -> str:
    """``<artifact>.model.sig``: the model signature's name beside the tarball."""
    return artifact_name(version) + MODEL_SIGNATURE_SUFFIX


def attestation_bytes(version: ModelVersion) -> bytes:
    """The signed provenance, byte for byte as stored beside the artifact."""
    return attestation.bundle_to_bytes(version.attestation)


def model_signature_bytes(version: ModelVersion) -> bytes:
    """The model signature, byte for byte as stored beside the tarball (``<artifact>.model.sig``;
    for an artifact of layout 1, as inside it)."""
    return attestation.bundle_to_bytes(version.model_signature)


def public_key_bytes(version: ModelVersion) -> bytes:
    return version.signing_key.public_key_pem.encode()


class ExportError(Exception):
    pass


def export_provenance(version: ModelVersion, directory: Path) -> ExportedProvenance:
    """Write the artifact and, beside it as in the store, ``<artifact>.sigstore.json``,
    ``<artifact>.model.sig`` and aegis.json, and the public key: ``verify_artifact`` and the
    standard tools of the README verify the directory as it is."""
    directory.mkdir(parents=True, exist_ok=True)
    store = services.store_for(version.model_path)
    name = artifact_name(version)
    artifact = store.download(version.model_path, directory / name)
    if sha256_file(artifact) != version.sha256:
        artifact.unlink()
        raise ExportError(
            f"{version.model_path} does not have the registered sha256 {version.sha256}: "
            "the stored artifact was changed; nothing was exported"
        )
    record = store.download(record_url(version), directory / "aegis.json")
    exported = ExportedProvenance(
        artifact=artifact,
        attestation=directory / f"{name}{ATTESTATION_SUFFIX}",
        model_signature=directory / model_signature_name(version),
        record=record,
        public_key=directory / PUBLIC_KEY_NAME,
    )
    exported.attestation.write_bytes(attestation_bytes(version))
    exported.model_signature.write_bytes(model_signature_bytes(version))
    exported.public_key.write_bytes(public_key_bytes(version))
    return exported
