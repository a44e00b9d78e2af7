"""``manage.py hf_import`` end to end: Hub double, real OpenBao, real SeaweedFS, real tools."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command

from devservers.tools import VENV_BIN, model_signing
from imports.models import ImportEvent, ImportRequest
from registry import attestation
from registry.models import ModelVersion, RegisteredModel, SigningKey
from registry.verify import verify_model_artifact

pytestmark = pytest.mark.django_db


def hf_import(*args: str) -> None:
    call_command("hf_import", *args, "--no-progress")


def assert_tar_lists_the_layout(tarball: Path) -> None:
    listing = subprocess.run(
        ["tar", "-tzf", str(tarball)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert listing[-1] == "tiny-bert-1.0/MANIFEST.sha256"
    assert "tiny-bert-1.0/model.sig" not in listing and "tiny-bert-1.0/aegis.json" not in listing
    for member in (
        "tiny-bert-1.0/model/config.json",
        "tiny-bert-1.0/model/model.safetensors",
        "tiny-bert-1.0/model/README.md",
        "tiny-bert-1.0/model/tokenizer/vocab.txt",
    ):
        assert member in listing


def assert_openssl_verifies(bundle_bytes: bytes, key_pem: Path, tmp_path: Path, sha256: str):
    bundle = attestation.load_bundle(bundle_bytes)
    (tmp_path / "pae.bin").write_bytes(attestation.pae_bytes_of_bundle(bundle))
    (tmp_path / "sig.der").write_bytes(attestation.signature_der_of_bundle(bundle))
    openssl = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", str(key_pem), "-signature",
         str(tmp_path / "sig.der"), str(tmp_path / "pae.bin")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert openssl.returncode == 0, openssl.stderr
    assert "Verified OK" in openssl.stdout
    statement = attestation.verify_bundle(bundle, key_pem.read_text())
    assert statement["subject"][0]["digest"]["sha256"] == sha256


def assert_model_signing_verifies(tarball: Path, signature: Path, key_pem: Path, tmp_path: Path):
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(extracted)], check=True)
    signing = subprocess.run(
        [model_signing(), "verify", "key", str(extracted / "tiny-bert-1.0" / "model"),
         "--signature", str(signature), "--public_key", str(key_pem)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert signing.returncode == 0, signing.stdout + signing.stderr


def test_it_imports_a_multi_file_repo_into_s3_that_standard_tools_verify(aegis_s3, tmp_path):
    hf_import(
        "--repo-id", "acme/tiny-bert",
        "--model-name", "tiny-bert",
        "--version", "1.0",
        "--upload-s3",
        "--register",
        "--actor", "alice",
    )  # fmt: skip

    version = ModelVersion.objects.select_related("model", "signing_key").get()
    assert version.model_path.startswith(f"s3://{aegis_s3.settings.AEGIS_S3_BUCKET}/models/")
    assert version.source_commit == aegis_s3.hub.resolve("acme/tiny-bert", "main")
    assert version.imported_by == "alice"

    s3 = _s3_client(aegis_s3)
    bucket, key = version.model_path.removeprefix("s3://").split("/", 1)
    tarball = tmp_path / "tiny-bert-1.0.tar.gz"
    s3.download_file(bucket, key, str(tarball))
    assert hashlib.sha256(tarball.read_bytes()).hexdigest() == version.sha256
    assert_tar_lists_the_layout(tarball)
    key_pem = tmp_path / "key.pem"
    key_pem.write_text(version.signing_key.public_key_pem)
    bundle_bytes = s3.get_object(Bucket=bucket, Key=key + ".sigstore.json")["Body"].read()
    assert_openssl_verifies(bundle_bytes, key_pem, tmp_path, version.sha256)
    signature = tmp_path / "tiny-bert-1.0.tar.gz.model.sig"
    signature.write_bytes(s3.get_object(Bucket=bucket, Key=key + ".model.sig")["Body"].read())
    assert_model_signing_verifies(tarball, signature, key_pem, tmp_path)

    # The same checks from our side, and the registry's copy of the card.
    result = verify_model_artifact(version, load=True)
    assert result.check_names == [
        "fetch",
        "attestation_signature",
        "key_not_revoked",
        "digest",
        "not_yanked",
        "safe_extraction",
        "manifest",
        "model_signature",
        "load",
    ]
    model = RegisteredModel.objects.get(name="tiny-bert")
    assert model.license == "apache-2.0"
    assert model.tags == ["bert", "tiny"]
    assert model.datasets == ["wikitext"]
    assert model.base_model == "google-bert/bert-base-uncased"
    assert model.pipeline_tag == "fill-mask"
    assert model.library_name == "transformers"
    assert model.languages == ["en"]
    assert model.card_data["license"] == "apache-2.0"
    manifest = {item["path"]: item for item in version.manifest}
    assert (
        manifest["tokenizer/vocab.txt"]["sha256"]
        == hashlib.sha256(aegis_s3.hub.files("acme/tiny-bert")["tokenizer/vocab.txt"]).hexdigest()
    )
    assert manifest["model.safetensors"]["hub_digest_kind"] == "lfs-sha256"


def test_it_gives_a_byte_identical_tarball_when_the_same_import_runs_twice(aegis):
    common = ("--repo-id", "acme/tiny-bert", "--model-name", "tiny-bert", "--version", "2.0")
    hf_import(*common, "--register")
    hf_import(*common)

    first, second = ImportRequest.objects.order_by("pk")
    assert first.status == second.status == ImportRequest.Status.SUCCEEDED
    assert first.result["sha256"] == second.result["sha256"]
    first_path = Path(first.result["artifact_url"].removeprefix("file://"))
    second_path = Path(second.result["artifact_url"].removeprefix("file://"))
    assert first_path != second_path
    assert first_path.read_bytes() == second_path.read_bytes()
    # Two attestations (who and when differ), both over the same digest.
    assert first.result["attestation_url"] != second.result["attestation_url"]


def test_the_tarball_does_not_depend_on_who_signs_it(aegis, transit_key):
    """Two imports of the same commit signed with different keys (as two independent
    installations would be): the same tarball bytes, different model signatures beside it."""
    common = ("--repo-id", "acme/tiny-bert", "--model-name", "tiny-bert", "--version", "3.0")
    hf_import(*common)
    hf_import(*common, "--sign-key", transit_key)

    first, second = ImportRequest.objects.order_by("pk")
    assert first.result["signing_key"] != second.result["signing_key"]
    paths = [Path(item.result["artifact_url"].removeprefix("file://")) for item in (first, second)]
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert first.result["sha256"] == second.result["sha256"]
    signatures = [Path(f"{path}.model.sig").read_bytes() for path in paths]
    assert signatures[0] != signatures[1]


def test_it_pins_an_older_revision_to_its_commit(aegis):
    older = aegis.hub.resolve("acme/tiny-bert", "v1.0")
    hf_import(
        "--repo-id", "acme/tiny-bert", "--model-name", "tiny-bert", "--version", "0.9",
        "--revision", "v1.0", "--include", "*.json", "*.safetensors", "--register",
    )  # fmt: skip
    version = ModelVersion.objects.get()
    assert version.source_commit == older
    assert version.source_revision == "v1.0"
    assert sorted(item["path"] for item in version.manifest) == [
        "config.json",
        "model.safetensors",
        "tokenizer/tokenizer_config.json",
    ]
    assert version.import_options["include"] == ["*.json", "*.safetensors"]


def test_it_records_every_stage_in_the_timeline(aegis):
    hf_import("--repo-id", "acme/tiny-bert", "--model-name", "tb", "--version", "1", "--register")
    request = ImportRequest.objects.get()
    finished = list(
        request.events.filter(kind=ImportEvent.Kind.STAGE_FINISHED).values_list("stage", flat=True)
    )
    one_pass = ["stream"]  # download, check, scan and package at once
    assert finished == [
        "resolve", "preflight", *one_pass, "sign_model", "attest", "store", "register",
    ]  # fmt: skip
    assert request.source == ImportRequest.Source.CLI
    assert request.actor.startswith("os:")
    assert SigningKey.objects.filter(name="aegis-model-sign").exists()


def test_with_one_pass_off_each_stage_runs_on_its_own(aegis):
    aegis.settings.AEGIS_ONE_PASS_IMPORT = False
    hf_import("--repo-id", "acme/tiny-bert", "--model-name", "tb", "--version", "1", "--register")
    request = ImportRequest.objects.get()
    finished = list(
        request.events.filter(kind=ImportEvent.Kind.STAGE_FINISHED).values_list("stage", flat=True)
    )
    assert finished == [
        "resolve", "preflight", "download", "check", "scan", "sign_model", "package", "attest",
        "store", "register",
    ]  # fmt: skip


def _s3_client(environment):
    import boto3

    settings = environment.settings
    return boto3.client(
        "s3",
        endpoint_url=settings.AWS_ENDPOINT_URL_S3,
        aws_access_key_id=settings.AWS_ACCESS_KEY_ID,
        aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY,
        region_name="us-east-1",
    )


def readme_verification_recipe() -> list[str]:
    """The shell lines of the README's 'Verifying with standard tools' block."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Verifying with standard tools", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [
        line
        for line in block.splitlines()
        if line.strip() and not line.startswith("#") and "manage.py" not in line
    ]


def test_the_readme_verification_recipe_works_as_written(aegis, tmp_path):
    import os

    hf_import("--repo-id", "acme/tiny-bert", "--model-name", "tiny-bert", "--version", "1.0")
    request = ImportRequest.objects.get()
    artifact = Path(request.result["artifact_url"].removeprefix("file://"))
    for name in (artifact.name, artifact.name + ".sigstore.json", artifact.name + ".model.sig"):
        (tmp_path / name).write_bytes((artifact.parent / name).read_bytes())
    key = SigningKey.objects.get(
        name=request.result["signing_key"], version=request.result["signing_key_version"]
    )
    (tmp_path / "key.pem").write_text(key.public_key_pem)
    recipe = readme_verification_recipe()
    assert any(line.startswith("openssl dgst") for line in recipe)
    assert any(line.startswith("model_signing verify") for line in recipe)
    environment = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(recipe)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Verified OK" in run.stdout
    assert "tiny-bert-1.0.tar.gz: OK" in run.stdout  # the attestation's subject
    assert "tiny-bert-1.0/model/config.json" in run.stdout
    assert "model/config.json: OK" in run.stdout  # sha256sum -c MANIFEST.sha256
    assert any(line.startswith("(cd tiny-bert-1.0 && sha256sum") for line in recipe)


def test_it_shows_a_progress_bar_per_stage(aegis, capsys):
    call_command("hf_import", "--repo-id", "acme/tiny-bert", "--model-name", "tb", "--version", "1")
    output = capsys.readouterr()
    assert "Download, check, scan and package" in output.err
    assert "100%" in output.err
    assert re.search(r"import #\d+ succeeded", output.out)


def test_a_second_import_of_the_same_commit_links_to_the_first(aegis, capsys):
    hf_import("--repo-id", "acme/tiny-bert", "--model-name", "tb", "--version", "1", "--register")
    hf_import("--repo-id", "acme/tiny-bert", "--model-name", "tb", "--version", "2", "--register")
    output = capsys.readouterr().out
    assert "registered:  tb 1" in output
    assert "already in the registry as tb 1" in output
    assert "nothing was imported again" in output
    assert ModelVersion.objects.count() == 1
    assert ImportRequest.objects.count() == 1
