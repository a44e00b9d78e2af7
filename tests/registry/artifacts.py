"""Helpers for verification tests: re-sign an attestation, rebuild an artifact as the earlier
packaging code (layout 1, model.sig and aegis.json inside the tarball) wrote it."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aegis_catalog import services
from registry import attestation
from registry.models import ModelVersion, SigningKey
from tests.factories import member_bytes


def artifact_path(version: ModelVersion) -> Path:
    return Path(version.model_path.removeprefix("file://"))


def trusted_signer(key: SigningKey) -> attestation.Signer:
    """Signs through Transit with the key version the trust store holds."""
    client = services.transit_client()

    def sign(digest: bytes) -> attestation.SignedDigest:
        signature = client.sign_digest(key.name, digest, key_version=key.version)
        return attestation.SignedDigest(signature.der, key.name, signature.key_version)

    return sign


def resign(
    tarball: Path,
    key: SigningKey,
    edit: Callable[[dict[str, Any]], None] | None = None,
    *,
    statement: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Sign (with the trusted key) the provenance beside ``tarball`` again, its subject digest
    set to the tarball's sha256 (after ``edit``), and write it to ``<tarball>.sigstore.json``."""
    if statement is None:
        bundle = attestation.load_bundle(Path(f"{tarball}.sigstore.json").read_bytes())
        statement = attestation.verify_bundle(bundle, key.public_key_pem)
        statement["subject"][0]["digest"]["sha256"] = hashlib.sha256(
            tarball.read_bytes()
        ).hexdigest()
    if edit is not None:
        edit(statement)
    signed = attestation.sign_statement(statement, trusted_signer(key), key.public_key_pem)
    Path(f"{tarball}.sigstore.json").write_bytes(attestation.bundle_to_bytes(signed))
    return statement


def _add(archive: tarfile.TarFile, name: str, data: bytes | None, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
    if data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(info)
    else:
        info.size, info.mode = len(data), 0o644
        archive.addfile(info, io.BytesIO(data))


def layout_1_tarball(
    root: str, model_files: Mapping[str, bytes], *, model_sig: bytes, record: bytes, mtime: int
) -> bytes:
    """A tar.gz as the packager before layout 2 wrote it: entries sorted by name, so
    ``aegis.json`` and ``model.sig`` at the root come before ``model/``; no manifest."""
    entries: dict[str, bytes | None] = {
        f"{root}/aegis.json": record,
        f"{root}/model.sig": model_sig,
    }
    for path, data in model_files.items():
        entries[f"{root}/model/{path}"] = data
    directories = {root, f"{root}/model"}
    for name in list(entries):
        parent = name.rsplit("/", 1)[0]
        while "/" in parent:
            directories.add(parent)
            parent = parent.rsplit("/", 1)[0]
    for directory in directories:
        entries[f"{directory}/"] = None
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(entries, key=lambda item: item.encode()):
            _add(archive, name.rstrip("/"), entries[name], mtime)
    return buffer.getvalue()


def model_files_of(tarball: Path) -> dict[str, bytes]:
    """The files under ``<root>/model/`` of an artifact, by path relative to ``model/``."""
    prefix = f"{tarball.name.removesuffix('.tar.gz')}/model/"
    with tarfile.open(tarball) as archive:
        return {
            member.name.removeprefix(prefix): member_bytes(archive, member)
            for member in archive.getmembers()
            if member.isfile() and member.name.startswith(prefix)
        }


def convert_to_layout_1(version: ModelVersion) -> Path:
    """Replace a registered version's stored artifact by the same model in layout 1, as an
    installation before layout 2 stored it: model.sig inside the tarball and none beside it, the
    attestation signed over the new tarball, the registry's sha256 updated."""
    path = artifact_path(version)
    root = path.name.removesuffix(".tar.gz")
    model_files = model_files_of(path)
    with tarfile.open(path) as archive:
        mtime = int(archive.getmembers()[0].mtime)
    record = path.with_name("aegis.json").read_bytes()
    model_sig = attestation.bundle_to_bytes(version.model_signature)
    path.write_bytes(
        layout_1_tarball(root, model_files, model_sig=model_sig, record=record, mtime=mtime)
    )
    Path(f"{path}.model.sig").unlink()
    resign(path, version.signing_key)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    options = {key: value for key, value in version.import_options.items() if key != "layout"}
    ModelVersion.objects.filter(pk=version.pk).update(
        sha256=sha256, size=path.stat().st_size, import_options=options
    )
    version.refresh_from_db()
    return path
