"""``export_provenance``: a version carried elsewhere verifies with tools that are not ours."""

from __future__ import annotations

import hashlib
import subprocess

import pytest
from django.core.management import CommandError, call_command

from devservers.tools import model_signing
from registry import attestation
from registry.models import ModelVersion
from registry.verify import verify_model_artifact

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(aegis_s3) -> ModelVersion:
    call_command(
        "hf_import",
        "--repo-id", "acme/tiny-bert", "--model-name", "tiny-bert", "--version", "1.0",
        "--upload-s3", "--register", "--no-progress",
    )  # fmt: skip
    return ModelVersion.objects.select_related("model", "signing_key").get()


def test_the_exported_files_verify_with_openssl_and_model_signing(version, tmp_path, capsys):
    out = tmp_path / "carry"
    call_command("export_provenance", "tiny-bert", "1.0", str(out))
    names = sorted(path.name for path in out.iterdir())
    assert names == [
        "aegis.json",
        "public_key.pem",
        "tiny-bert-1.0.tar.gz",
        "tiny-bert-1.0.tar.gz.model.sig",
        "tiny-bert-1.0.tar.gz.sigstore.json",
    ]
    tarball = out / "tiny-bert-1.0.tar.gz"
    assert hashlib.sha256(tarball.read_bytes()).hexdigest() == version.sha256

    bundle = attestation.load_bundle((out / "tiny-bert-1.0.tar.gz.sigstore.json").read_bytes())
    (tmp_path / "pae.bin").write_bytes(attestation.pae_bytes_of_bundle(bundle))
    (tmp_path / "sig.der").write_bytes(attestation.signature_der_of_bundle(bundle))
    openssl = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", str(out / "public_key.pem"),
         "-signature", str(tmp_path / "sig.der"), str(tmp_path / "pae.bin")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert openssl.returncode == 0 and "Verified OK" in openssl.stdout

    extracted = tmp_path / "x"
    extracted.mkdir()
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(extracted)], check=True)
    inner = extracted / "tiny-bert-1.0"
    assert sorted(path.name for path in inner.iterdir()) == ["MANIFEST.sha256", "model"]
    signature = out / "tiny-bert-1.0.tar.gz.model.sig"
    check = subprocess.run(
        [model_signing(), "verify", "key", str(inner / "model"),
         "--signature", str(signature), "--public_key", str(out / "public_key.pem")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    manifest = subprocess.run(
        ["sha256sum", "--strict", "-c", "MANIFEST.sha256"], cwd=inner, capture_output=True
    )
    assert manifest.returncode == 0, manifest.stdout + manifest.stderr

    # Our own verifier reads the exported directory as it is, the public key given.
    result = verify_model_artifact(str(tarball), public_key=(out / "public_key.pem").read_text())
    assert result.check_names[-2:] == ["manifest", "model_signature"]


def test_it_refuses_an_unknown_version(version, tmp_path):
    with pytest.raises(CommandError, match="no version 9.9"):
        call_command("export_provenance", "tiny-bert", "9.9", str(tmp_path / "out"))
