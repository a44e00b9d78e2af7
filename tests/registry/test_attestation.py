from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from devservers.tools import model_signing
from registry import attestation, slsa
from registry.attestation import (
    BadSignature,
    InvalidStatementInput,
    KeyMismatch,
    MalformedBundle,
    MalformedPublicKey,
    SignedDigest,
)

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def public_pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def ec_signer(private_key, version: int = 1):
    def sign(digest: bytes) -> SignedDigest:
        assert len(digest) == 32
        der = private_key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        return SignedDigest(der=der, key_name="aegis-model-sign", key_version=version)

    return sign


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def other_ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def write_model_dir(root: Path) -> Path:
    model = root / "model"
    (model / "sub" / "deeper").mkdir(parents=True)
    (model / ".github" / "workflows").mkdir(parents=True)
    (model / "config.json").write_text('{"hidden_size": 8}')
    (model / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 40)
    (model / "sub" / "deeper" / "tokenizer.json").write_text('{"v": 1}')
    # "sub-notes.txt" sorts between "sub/..." entries as a string, after them as a path.
    (model / "sub-notes.txt").write_text("notes")
    (model / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    (model / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    return model


def files_of(model: Path) -> list[tuple[str, str]]:
    return [
        (path.relative_to(model).as_posix(), hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(model.rglob("*"))
        if path.is_file()
    ]


def run_model_signing_verify(model: Path, signature: Path, key_pem: Path):
    return subprocess.run(
        [
            model_signing(),
            "verify",
            "key",
            str(model),
            "--signature",
            str(signature),
            "--public_key",
            str(key_pem),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def provenance(artifact_sha256: str = "ab" * 32) -> dict:
    started = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    return slsa.provenance_statement(
        artifact_name="bert-tiny-1.tar.gz",
        artifact_sha256=artifact_sha256,
        repo_id="org/bert-tiny",
        commit=COMMIT,
        hub_endpoint="https://huggingface.co/",
        revision_requested="main",
        include=["*.json", "*.safetensors"],
        exclude=["*.bin"],
        files=[
            {"path": "model.safetensors", "sha256": "cd" * 32, "size": 10},
            {"path": "config.json", "sha256": "ef" * 32},
        ],
        builder_id="https://aegis.example.org/workers",
        invocation_id="import-42",
        started_on=started,
        finished_on=started + timedelta(minutes=3),
        actor="alice",
    )


def test_it_encodes_pae_like_the_dsse_specification():
    assert (
        attestation.pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_it_signs_a_model_dir_that_the_model_signing_cli_verifies(tmp_path, ec_key):
    model = write_model_dir(tmp_path)
    key_file = tmp_path / "key.pem"
    key_file.write_text(public_pem(ec_key))
    statement = attestation.model_signing_statement(files_of(model))
    bundle = attestation.sign_statement(statement, ec_signer(ec_key), public_pem(ec_key))
    signature = tmp_path / "model.sig"
    signature.write_bytes(attestation.bundle_to_bytes(bundle))

    accepted = run_model_signing_verify(model, signature, key_file)
    assert accepted.returncode == 0, accepted.stderr
    assert "Verification succeeded" in accepted.stdout

    (model / "sub" / "deeper" / "tokenizer.json").write_text('{"v": 2}')
    rejected = run_model_signing_verify(model, signature, key_file)
    assert rejected.returncode == 1
    assert "sub/deeper/tokenizer.json" in rejected.stderr


def test_it_leaves_git_files_out_of_the_model_signing_manifest(tmp_path):
    model = write_model_dir(tmp_path)
    statement = attestation.model_signing_statement(files_of(model))
    names = [resource["name"] for resource in statement["predicate"]["resources"]]
    assert names == [
        "config.json",
        "sub/deeper/tokenizer.json",
        "sub/weights.bin",
        "sub-notes.txt",
    ]
    assert statement["predicate"]["serialization"] == {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
        "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore"],
    }


def test_it_builds_the_manifest_the_model_signing_library_signs(tmp_path, ec_key):
    import model_signing

    model = write_model_dir(tmp_path)
    private_file = tmp_path / "private.pem"
    private_file.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    library_sig = tmp_path / "library.sig"
    model_signing.signing.Config().use_elliptic_key_signer(private_key=private_file).sign(
        model, library_sig
    )
    library_bundle = attestation.load_bundle(library_sig.read_bytes())
    library_statement = attestation.verify_bundle(library_bundle, public_pem(ec_key))

    ours = attestation.model_signing_statement(files_of(model))

    assert ours["predicate"]["resources"] == library_statement["predicate"]["resources"]
    assert attestation.statement_subject_digest(ours) == attestation.statement_subject_digest(
        library_statement
    )
    assert attestation.statement_files(ours) == attestation.statement_files(library_statement)
    assert (
        sorted(library_statement["predicate"]["serialization"]["ignore_paths"])
        == (ours["predicate"]["serialization"]["ignore_paths"])
    )
    assert attestation.bundle_key_hint(library_bundle) == attestation.public_key_fingerprint(
        public_pem(ec_key)
    )


def test_it_signs_provenance_that_openssl_verifies(tmp_path, ec_key):
    statement = provenance()
    bundle = attestation.sign_statement(statement, ec_signer(ec_key), public_pem(ec_key))
    (tmp_path / "key.pem").write_text(public_pem(ec_key))
    (tmp_path / "sig.der").write_bytes(attestation.signature_der_of_bundle(bundle))
    (tmp_path / "pae.bin").write_bytes(attestation.pae_bytes_of_bundle(bundle))
    command = [
        "openssl",
        "dgst",
        "-sha256",
        "-verify",
        "key.pem",
        "-signature",
        "sig.der",
        "pae.bin",
    ]

    accepted = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert accepted.returncode == 0, accepted.stderr
    assert "Verified OK" in accepted.stdout

    tampered = dict(statement, subject=[{"name": "x.tar.gz", "digest": {"sha256": "00" * 32}}])
    (tmp_path / "pae.bin").write_bytes(
        attestation.pae(attestation.IN_TOTO_PAYLOAD_TYPE, attestation.statement_payload(tampered))
    )
    rejected = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert rejected.returncode == 1
    assert "Verification failure" in rejected.stdout + rejected.stderr


def test_it_builds_a_slsa_v1_provenance_statement():
    statement = provenance("12" * 32)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [{"name": "bert-tiny-1.tar.gz", "digest": {"sha256": "12" * 32}}]
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    build = statement["predicate"]["buildDefinition"]
    assert build["buildType"] == "https://aegis-catalog.dev/hf-import/v1"
    assert build["externalParameters"] == {
        "hubEndpoint": "https://huggingface.co",
        "repository": "org/bert-tiny",
        "revision": "main",
        "include": ["*.json", "*.safetensors"],
        "exclude": ["*.bin"],
    }
    assert build["resolvedDependencies"][0] == {
        "uri": "https://huggingface.co/org/bert-tiny",
        "name": "org/bert-tiny",
        "digest": {"gitCommit": COMMIT},
    }
    assert build["resolvedDependencies"][1] == {
        "uri": f"https://huggingface.co/org/bert-tiny/resolve/{COMMIT}/config.json",
        "name": "config.json",
        "digest": {"sha256": "ef" * 32},
    }
    assert build["resolvedDependencies"][2]["annotations"] == {"size": 10}
    assert statement["predicate"]["runDetails"] == {
        "builder": {"id": "https://aegis.example.org/workers"},
        "metadata": {
            "invocationId": "import-42",
            "startedOn": "2026-11-02T09:30:00Z",
            "finishedOn": "2026-11-02T09:33:00Z",
        },
    }


def test_it_writes_times_in_utc_and_refuses_naive_times():
    base: dict[str, Any] = dict(
        artifact_name="a.tar.gz",
        artifact_sha256="ab" * 32,
        repo_id="org/m",
        commit=COMMIT,
        hub_endpoint="https://huggingface.co",
        revision_requested="main",
        include=[],
        exclude=[],
        files=[],
        builder_id="b",
        invocation_id="i",
        actor="alice",
    )
    paris = timezone(timedelta(hours=1))
    statement = slsa.provenance_statement(
        **base,
        started_on=datetime(2026, 11, 2, 10, 0, tzinfo=paris),
        finished_on=datetime(2026, 11, 2, 10, 5, tzinfo=paris),
    )
    assert statement["predicate"]["runDetails"]["metadata"]["startedOn"] == "2026-11-02T09:00:00Z"
    with pytest.raises(InvalidStatementInput, match="started_on"):
        slsa.provenance_statement(
            **base, started_on=datetime(2026, 11, 2), finished_on=datetime(2026, 11, 2, tzinfo=UTC)
        )
    with pytest.raises(InvalidStatementInput, match="commit"):
        slsa.provenance_statement(
            **(base | {"commit": "main"}),
            started_on=datetime(2026, 11, 2, tzinfo=UTC),
            finished_on=datetime(2026, 11, 2, tzinfo=UTC),
        )


def test_it_verifies_a_bundle_and_returns_the_statement(ec_key):
    statement = provenance()
    bundle = attestation.sign_statement(statement, ec_signer(ec_key), public_pem(ec_key))
    reloaded = attestation.load_bundle(attestation.bundle_to_bytes(bundle))
    assert attestation.verify_bundle(reloaded, public_pem(ec_key)) == statement
    assert (
        attestation.bundle_key_hint(reloaded)
        == hashlib.sha256(public_pem(ec_key).encode()).hexdigest()
    )


def test_it_rejects_a_bundle_checked_with_another_key(ec_key, other_ec_key):
    bundle = attestation.sign_statement(provenance(), ec_signer(ec_key), public_pem(ec_key))
    with pytest.raises(KeyMismatch):
        attestation.verify_bundle(bundle, public_pem(other_ec_key))
    bundle["verificationMaterial"]["publicKey"] = {}
    with pytest.raises(BadSignature, match="does not verify"):
        attestation.verify_bundle(bundle, public_pem(other_ec_key))


def test_it_rejects_a_tampered_payload(ec_key):
    bundle = attestation.sign_statement(provenance(), ec_signer(ec_key), public_pem(ec_key))
    tampered = provenance("00" * 32)
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(
        attestation.statement_payload(tampered)
    ).decode()
    with pytest.raises(BadSignature):
        attestation.verify_bundle(bundle, public_pem(ec_key))


def test_it_rejects_malformed_bundles(ec_key):
    with pytest.raises(MalformedBundle, match="not valid JSON"):
        attestation.load_bundle(b'{"mediaType": ')
    good = attestation.sign_statement(provenance(), ec_signer(ec_key), public_pem(ec_key))

    no_signatures = json.loads(attestation.bundle_to_bytes(good))
    no_signatures["dsseEnvelope"]["signatures"] = []
    with pytest.raises(MalformedBundle, match="no signatures"):
        attestation.load_bundle(json.dumps(no_signatures).encode())

    wrong_media_type = json.loads(attestation.bundle_to_bytes(good))
    wrong_media_type["mediaType"] = "application/json"
    with pytest.raises(MalformedBundle, match="mediaType"):
        attestation.verify_bundle(wrong_media_type, public_pem(ec_key))

    bad_base64 = json.loads(attestation.bundle_to_bytes(good))
    bad_base64["dsseEnvelope"]["payload"] = "not base64!"
    with pytest.raises(MalformedBundle, match="base64"):
        attestation.verify_bundle(bad_base64, public_pem(ec_key))

    with pytest.raises(MalformedPublicKey):
        attestation.verify_bundle(
            good, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
        )


def test_it_refuses_to_return_a_signature_made_by_another_key(ec_key, other_ec_key):
    with pytest.raises(BadSignature, match="version 3"):
        attestation.sign_statement(
            provenance(), ec_signer(other_ec_key, version=3), public_pem(ec_key)
        )


def test_it_reports_which_key_version_signed(ec_key):
    signed = attestation.sign_statement_with_details(
        provenance(), ec_signer(ec_key, version=2), public_pem(ec_key)
    )
    assert (signed.key_name, signed.key_version) == ("aegis-model-sign", 2)
    assert signed.key_fingerprint == attestation.bundle_key_hint(signed.bundle)


def test_it_fingerprints_keys_independently_of_pem_line_endings(ec_key):
    pem = public_pem(ec_key)
    assert attestation.public_key_fingerprint(pem.replace("\n", "\r\n")) == (
        hashlib.sha256(pem.encode()).hexdigest()
    )


def test_it_verifies_rsa_and_ed25519_signatures(tmp_path):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def rsa_signer(digest: bytes) -> SignedDigest:
        der = rsa_key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        return SignedDigest(der=der, key_name="rsa", key_version=1)

    bundle = attestation.sign_statement(provenance(), rsa_signer, public_pem(rsa_key))
    assert attestation.verify_bundle(bundle, public_pem(rsa_key)) == provenance()

    ed_key = ed25519.Ed25519PrivateKey.generate()
    ed_signature = ed_key.sign(attestation.pae_bytes_of_bundle(bundle))
    bundle["dsseEnvelope"]["signatures"] = [
        {"sig": base64.b64encode(ed_signature).decode(), "keyid": ""}
    ]
    bundle["verificationMaterial"]["publicKey"]["hint"] = attestation.public_key_fingerprint(
        public_pem(ed_key)
    )
    assert attestation.verify_bundle(bundle, public_pem(ed_key)) == provenance()
    with pytest.raises(BadSignature):
        attestation.verify_bundle(
            bundle | {"verificationMaterial": {"publicKey": {}, "tlogEntries": []}},
            public_pem(rsa_key),
        )


def test_it_rejects_a_model_statement_whose_subject_does_not_match_its_files():
    statement = attestation.model_signing_statement([("a.bin", "11" * 32), ("b.bin", "22" * 32)])
    assert attestation.statement_files(statement) == {"a.bin": "11" * 32, "b.bin": "22" * 32}
    statement["predicate"]["resources"][0]["digest"] = "33" * 32
    with pytest.raises(MalformedBundle, match="inconsistent"):
        attestation.statement_files(statement)


def test_it_refuses_unsafe_or_duplicate_paths_in_a_model_statement():
    for path in ("../x", "/etc/passwd", "a//b", "a/./b", ""):
        with pytest.raises(InvalidStatementInput):
            attestation.model_signing_statement([(path, "11" * 32)])
    with pytest.raises(InvalidStatementInput, match="twice"):
        attestation.model_signing_statement([("a", "11" * 32), ("a", "11" * 32)])
    with pytest.raises(InvalidStatementInput, match="sha256"):
        attestation.model_signing_statement([("a", "XYZ")])
