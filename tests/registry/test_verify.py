"""``verify_model_artifact`` accepts a good artifact and names the check each bad one fails."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from django.core.management import CommandError, call_command

from aegis_catalog import services
from registry import actions, attestation, slsa, verify
from registry.models import ModelVersion
from registry.verify import verify_model_artifact
from tests.factories import member_bytes
from tests.registry.artifacts import artifact_path, resign, trusted_signer

pytestmark = pytest.mark.django_db


def test_it_accepts_the_imported_artifact_by_version_path_and_url(imported, tmp_path):
    by_version = verify_model_artifact(imported)
    by_url = verify_model_artifact(imported.model_path)
    by_path = verify_model_artifact(str(artifact_path(imported)), extract_to=tmp_path / "out")
    assert by_version.sha256 == by_url.sha256 == by_path.sha256 == imported.sha256
    assert by_path.version == imported
    assert (tmp_path / "out" / "tiny-bert-1.0" / "model" / "config.json").is_file()
    assert by_version.check_names == [
        "fetch", "attestation_signature", "key_not_revoked", "digest", "not_yanked",
        "safe_extraction", "manifest", "model_signature",
    ]  # fmt: skip
    assert by_version.layout == 2


def test_it_refuses_a_tarball_with_one_flipped_byte(imported):
    path = artifact_path(imported)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(verify.DigestMismatch) as error:
        verify_model_artifact(str(path))
    assert error.value.check == "digest"


def _other_key_signer() -> tuple[attestation.Signer, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )

    def sign(digest: bytes) -> attestation.SignedDigest:
        der = private.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        return attestation.SignedDigest(der, "intruder", 1)

    return sign, pem


def test_it_refuses_an_attestation_signed_by_a_key_outside_the_trust_store(imported):
    path = artifact_path(imported)
    signer, pem = _other_key_signer()
    bundle = attestation.load_bundle(Path(str(path) + ".sigstore.json").read_bytes())
    statement = attestation.verify_bundle(bundle, imported.signing_key.public_key_pem)
    forged = attestation.sign_statement(statement, signer, pem)
    Path(str(path) + ".sigstore.json").write_bytes(attestation.bundle_to_bytes(forged))
    with pytest.raises(verify.UntrustedKey):
        verify_model_artifact(str(path))


def test_it_refuses_a_signature_from_another_key_under_the_trusted_keys_name(imported):
    path = artifact_path(imported)
    signer, pem = _other_key_signer()
    bundle = attestation.load_bundle(Path(str(path) + ".sigstore.json").read_bytes())
    statement = attestation.verify_bundle(bundle, imported.signing_key.public_key_pem)
    forged = attestation.sign_statement(statement, signer, pem)
    forged["verificationMaterial"]["publicKey"]["hint"] = imported.signing_key.fingerprint
    Path(str(path) + ".sigstore.json").write_bytes(attestation.bundle_to_bytes(forged))
    with pytest.raises(verify.AttestationInvalid) as error:
        verify_model_artifact(str(path))
    assert error.value.check == "attestation_signature"


def test_it_refuses_a_key_version_revoked_by_rotation(imported, aegis, transit_key):
    aegis.openbao.rotate(transit_key)
    aegis.openbao.set_min_decryption_version(transit_key, 2)
    latest = actions.sync_signing_keys(services.transit_client(), transit_key)
    assert latest.version == 2
    imported.signing_key.refresh_from_db()
    assert imported.signing_key.revoked
    with pytest.raises(verify.KeyRevoked) as error:
        verify_model_artifact(imported)
    assert error.value.check == "key_not_revoked"
    assert f"{transit_key} v1" in str(error.value)


def test_it_refuses_a_yanked_version(imported):
    actions.set_version_status(
        imported, ModelVersion.Status.YANKED, actor="admin", reason="licence withdrawn"
    )
    with pytest.raises(verify.VersionYanked, match="licence withdrawn"):
        verify_model_artifact(imported.model_path)


def _tar_with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("evil-1.0/model/config.json")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"{}"))
        archive.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return buffer.getvalue()


def _member(name: str, *, link_to: str | None = None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    if link_to is not None:
        info.type = tarfile.SYMTYPE
        info.linkname = link_to
    else:
        info.size = 4
    return info


@pytest.mark.parametrize(
    ("member", "named"),
    [
        (_member("evil-1.0/../../escaped.txt"), "escaped.txt"),
        (_member("/tmp/aegis-absolute.txt"), "aegis-absolute.txt"),
        (_member("evil-1.0/model/link", link_to="../../../../etc/passwd"), "link"),
    ],
    ids=["dot-dot", "absolute", "symlink"],
)
def test_it_refuses_a_signed_tarball_whose_members_leave_the_tree(
    imported, tmp_path, member, named
):
    """Even correctly signed by the trusted key, an unsafe tarball is not extracted."""
    data = _tar_with(member, b"evil")
    evil = tmp_path / "evil-1.0.tar.gz"
    evil.write_bytes(data)
    key = imported.signing_key
    signer = trusted_signer(key)
    statement = slsa.provenance_statement(
        artifact_name=evil.name,
        artifact_sha256=hashlib.sha256(data).hexdigest(),
        repo_id="acme/evil",
        commit="0" * 40,
        hub_endpoint="http://hub.invalid",
        revision_requested="main",
        include=[],
        exclude=[],
        files=[],
        builder_id="https://aegis.test/builder",
        invocation_id="test",
        started_on=datetime.now(UTC),
        finished_on=datetime.now(UTC),
        actor="mallory",
    )
    bundle = attestation.sign_statement(statement, signer, key.public_key_pem)
    Path(str(evil) + ".sigstore.json").write_bytes(attestation.bundle_to_bytes(bundle))
    extract_to = tmp_path / "extract"
    with pytest.raises(verify.UnsafeArtifact) as error:
        verify_model_artifact(str(evil), extract_to=extract_to)
    assert error.value.check == "safe_extraction"
    assert named in str(error.value)
    assert not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/aegis-absolute.txt").exists()
    assert not extract_to.exists() or not any(extract_to.rglob("*"))


def _repack(source: Path, target: Path, replace: dict[str, bytes]) -> None:
    """Copy the tarball with some members' contents replaced (by name under the root)."""
    buffer = io.BytesIO()
    root = source.name.removesuffix(".tar.gz")
    with tarfile.open(source) as original, tarfile.open(fileobj=buffer, mode="w:gz") as copy:
        for member in original.getmembers():
            content = member_bytes(original, member) if member.isfile() else None
            relative = member.name.removeprefix(f"{root}/")
            if relative in replace:
                content = replace[relative]
                member.size = len(content)
            copy.addfile(member, io.BytesIO(content) if content is not None else None)
    target.write_bytes(buffer.getvalue())


def test_it_refuses_an_artifact_whose_model_files_differ_from_model_sig(imported, tmp_path):
    """A repackaged tarball (new attestation, a manifest made to match, the same model.sig
    beside) with one model file changed."""
    source = artifact_path(imported)
    tampered = json.dumps({"tampered": True}).encode()
    manifest = b"".join(
        line.replace(line.split(b"  ", 1)[0], hashlib.sha256(tampered).hexdigest().encode())
        if line.endswith(b"  model/config.json\n")
        else line
        for line in _member_bytes(source, "MANIFEST.sha256").splitlines(keepends=True)
    )
    repacked = tmp_path / source.name
    _repack(source, repacked, {"model/config.json": tampered, "MANIFEST.sha256": manifest})
    Path(f"{repacked}.model.sig").write_bytes(Path(f"{source}.model.sig").read_bytes())
    resign(repacked, imported.signing_key, statement=_statement_for(source, repacked, imported))
    with pytest.raises(verify.ModelSignatureInvalid, match="config.json") as error:
        verify_model_artifact(str(repacked))
    assert "tiny-bert-1.0.tar.gz.model.sig" in str(error.value)


def _member_bytes(tarball: Path, relative: str) -> bytes:
    with tarfile.open(tarball) as archive:
        root = tarball.name.removesuffix(".tar.gz")
        return member_bytes(archive, archive.getmember(f"{root}/{relative}"))


def _statement_for(source: Path, repacked: Path, version: ModelVersion) -> dict:
    bundle = attestation.load_bundle(Path(f"{source}.sigstore.json").read_bytes())
    statement = attestation.verify_bundle(bundle, version.signing_key.public_key_pem)
    statement["subject"][0]["digest"]["sha256"] = hashlib.sha256(repacked.read_bytes()).hexdigest()
    return statement


def test_it_refuses_an_artifact_whose_files_differ_from_its_manifest(imported, tmp_path):
    source = artifact_path(imported)
    repacked = tmp_path / source.name
    _repack(source, repacked, {"model/config.json": b'{"tampered": true}'})
    Path(f"{repacked}.model.sig").write_bytes(Path(f"{source}.model.sig").read_bytes())
    resign(repacked, imported.signing_key, statement=_statement_for(source, repacked, imported))
    with pytest.raises(verify.ManifestMismatch, match="model/config.json differs") as error:
        verify_model_artifact(str(repacked))
    assert error.value.check == "manifest"


def test_it_names_the_model_signature_missing_beside_the_artifact(imported):
    path = artifact_path(imported)
    Path(f"{path}.model.sig").unlink()
    assert verify_model_artifact(str(path), extract=False).sha256 == imported.sha256
    with pytest.raises(verify.ModelSignatureInvalid, match="model.sig is missing beside"):
        verify_model_artifact(str(path))


def test_the_command_prints_each_check_and_fails_with_the_check_name(imported, capsys, tmp_path):
    key_file = tmp_path / "key.pem"
    key_file.write_text(imported.signing_key.public_key_pem)
    call_command("verify_artifact", imported.model_path, "--public-key", str(key_file))
    output = capsys.readouterr().out
    assert "ok  digest" in output
    assert "ok  model_signature" in output
    path = artifact_path(imported)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CommandError, match="verification failed at digest"):
        call_command("verify_artifact", str(path))
