"""Stage 9, store: the tarball, and beside it its model signature, its attestation and
aegis.json, into the artifact store."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from aegis_catalog.lib.storage import ArtifactStore, StorageError, StoredObject
from imports.pipeline.base import Progress, StoreError, _noop_progress, storage_prefix
from imports.pipeline.package import ATTESTATION_SUFFIX, MODEL_SIGNATURE_SUFFIX, Packaged
from registry import attestation


@dataclass(frozen=True)
class Stored:
    artifact: StoredObject
    attestation: StoredObject
    record: StoredObject
    # <artifact>.model.sig; None only in a stage output saved by older code (layout 1).
    model_signature: StoredObject | None = None

    @property
    def urls(self) -> tuple[str, ...]:
        beside = () if self.model_signature is None else (self.model_signature.url,)
        return (self.artifact.url, self.attestation.url, self.record.url, *beside)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stored:
        return cls(**{key: StoredObject(**value) for key, value in data.items() if value})


def _put_json(store: ArtifactStore, data: bytes, key: str) -> StoredObject:
    return store.put_bytes(
        data, key, sha256=hashlib.sha256(data).hexdigest(), content_type="application/json"
    )


def store_artifact(
    store: ArtifactStore,
    packaged: Packaged,
    attestation_bundle: Mapping[str, Any],
    model_signature: Mapping[str, Any],
    *,
    model_name: str,
    version: str,
    import_id: int,
    progress: Progress = _noop_progress,
) -> Stored:
    """Upload the tarball (unless it was streamed there while packaging and is still there),
    and beside it ``<artifact>.model.sig``, ``<artifact>.sigstore.json`` and aegis.json;
    remove them on failure."""
    prefix = storage_prefix(model_name, version, import_id)
    name = packaged.name
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        progress(done, packaged.size)

    written: list[str] = []
    try:
        artifact = streamed_artifact(store, packaged, store.url_for(f"{prefix}/{name}"))
        if artifact is None:
            if packaged.path is None:
                raise StoreError(
                    f"{name} was streamed into the store while it was packaged, but it is no "
                    "longer there; retry the import to package and upload it again"
                )
            artifact = store.put_file(
                packaged.path,
                f"{prefix}/{name}",
                sha256=packaged.sha256,
                content_type="application/gzip",
                progress=advance,
            )
        written.append(artifact.url)
        signature = _put_json(
            store,
            attestation.bundle_to_bytes(dict(model_signature)),
            f"{prefix}/{name}{MODEL_SIGNATURE_SUFFIX}",
        )
        written.append(signature.url)
        bundle = _put_json(
            store,
            attestation.bundle_to_bytes(dict(attestation_bundle)),
            f"{prefix}/{name}{ATTESTATION_SUFFIX}",
        )
        written.append(bundle.url)
        record = _put_json(store, packaged.record, f"{prefix}/aegis.json")
        written.append(record.url)
    except BaseException:
        for url in written:
            store.delete(url)
        raise
    return Stored(artifact=artifact, attestation=bundle, record=record, model_signature=signature)


def streamed_artifact(
    store: ArtifactStore, packaged: Packaged, url: str | None = None
) -> StoredObject | None:
    """The tarball streamed into this store while packaging (at ``url``, when given), if it is
    still there whole."""
    if packaged.artifact is None or url not in (None, packaged.artifact.url):
        return None
    try:
        head = store.head(packaged.artifact.url)
    except StorageError:
        return None
    return packaged.artifact if head.size == packaged.size else None


def stored_still_present(store: ArtifactStore, stored: Stored, packaged: Packaged) -> bool:
    """Whether a retried import can skip the store stage: the tarball is there, same size."""
    try:
        head = store.head(stored.artifact.url)
    except StorageError:
        return False
    return (
        head.size == packaged.size
        and stored.model_signature is not None
        and store.exists(stored.model_signature.url)
        and store.exists(stored.attestation.url)
    )
