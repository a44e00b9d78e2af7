"""Verification of both artifact layouts, of the attestation's type, and of every way
extraction can fail ("Verify now" included): each is a recorded verification failure."""

from __future__ import annotations

import errno
import hashlib
import html
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from django.core.management import call_command

from devservers.tools import VENV_BIN
from registry import attestation, verify
from registry.models import AuditEvent, ModelVersion
from registry.verify import verify_and_record, verify_model_artifact
from tests.factories import verify_now
from tests.registry.artifacts import (
    artifact_path,
    convert_to_layout_1,
    layout_1_tarball,
    model_files_of,
    resign,
)

pytestmark = pytest.mark.django_db


# --- the layout ------------------------------------------------------------------------------


def test_the_tarball_holds_only_the_model_and_its_manifest_and_the_rest_is_beside_it(imported):
    path = artifact_path(imported)
    with tarfile.open(path) as archive:
        names = archive.getnames()
    assert names[-1] == "tiny-bert-1.0/MANIFEST.sha256"
    assert all(name.startswith("tiny-bert-1.0/model") for name in names[1:-1])
    assert "tiny-bert-1.0/model.sig" not in names and "tiny-bert-1.0/aegis.json" not in names
    beside = attestation.load_bundle(Path(f"{path}.model.sig").read_bytes())
    assert beside == imported.model_signature
    record = json.loads(path.with_name("aegis.json").read_bytes())
    assert record["layout"] == 3
    assert record["artifact"] == {
        "name": "tiny-bert-1.0.tar.gz",
        "sha256": imported.sha256,
        "size": imported.size,
        "layout": 3,
        "root": "tiny-bert-1.0",
        "manifest": "MANIFEST.sha256",
        "model_signature": "tiny-bert-1.0.tar.gz.model.sig",
        "attestation": "tiny-bert-1.0.tar.gz.sigstore.json",
    }
    assert record["imported"]["by"].startswith("os:")


# --- an artifact stored in layout 1 still verifies ---------------------------------------------


def test_an_artifact_stored_in_the_earlier_layout_still_verifies(imported, capsys):
    path = convert_to_layout_1(imported)
    with tarfile.open(path) as archive:
        assert "tiny-bert-1.0/model.sig" in archive.getnames()
    assert not Path(f"{path}.model.sig").exists()

    result = verify_model_artifact(imported, load=True)

    assert result.layout == 1
    assert result.check_names == [
        "fetch", "attestation_signature", "key_not_revoked", "digest", "not_yanked",
        "safe_extraction", "model_signature", "load",
    ]  # fmt: skip
    call_command("verify_artifact", imported.model_path)
    assert "ok  model_signature" in capsys.readouterr().out


def test_verify_now_passes_an_artifact_stored_in_the_earlier_layout(imported, charlie_client):
    convert_to_layout_1(imported)

    html = verify_now(charlie_client)

    assert 'data-result="passed"' in html
    event = AuditEvent.objects.get(action="verification.passed")
    assert event.details["checks"][-1] == "model_signature"


def test_the_commands_the_page_prints_verify_either_layout(imported, charlie_client, tmp_path):
    def run_page_commands(directory: Path) -> str:
        directory.mkdir()
        page = charlie_client.get("/registry/tiny-bert/1.0/").content.decode()
        script = html.unescape(page.split('<pre class="commands">', 1)[1].split("</pre>", 1)[0])
        for kind in ("artifact", "attestation", "model-sig", "public-key"):
            response = charlie_client.get(f"/registry/tiny-bert/1.0/download/{kind}/")
            name = response["Content-Disposition"].split('filename="', 1)[1].rstrip('"')
            content = (
                b"".join(response.streaming_content) if response.streaming else response.content
            )
            (directory / name).write_bytes(content)
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=directory, capture_output=True,
            text=True, env={**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"},
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        return script

    assert "MANIFEST.sha256" in run_page_commands(tmp_path / "layout-2")
    convert_to_layout_1(imported)
    assert "MANIFEST.sha256" not in run_page_commands(tmp_path / "layout-1")


def test_a_layout_1_artifact_whose_inner_model_sig_does_not_cover_model_fails(imported):
    path = convert_to_layout_1(imported)
    root = "tiny-bert-1.0"
    files = model_files_of(path)
    files["config.json"] = b'{"tampered": true}'
    path.write_bytes(
        layout_1_tarball(
            root,
            files,
            model_sig=attestation.bundle_to_bytes(imported.model_signature),
            record=b"{}\n",
            mtime=0,
        )
    )
    resign(path, imported.signing_key)
    with pytest.raises(verify.ModelSignatureInvalid, match="config.json"):
        verify_model_artifact(str(path))


# --- issue 19 item 8: only Aegis's SLSA provenance of this tarball is an attestation -----------


def test_a_model_signature_bundle_cannot_stand_in_for_the_provenance(imported):
    """A statement signed by the trusted key over the tarball's digest, but a model-signing
    statement, not provenance."""
    path = artifact_path(imported)
    statement = attestation.model_signing_statement([("config.json", "ab" * 32)])
    statement["subject"] = [{"name": path.name, "digest": {"sha256": imported.sha256}}]
    resign(path, imported.signing_key, statement=statement)

    with pytest.raises(verify.AttestationInvalid, match="not SLSA provenance") as error:
        verify_model_artifact(str(path), extract=False)
    assert error.value.check == "attestation_signature"


def test_provenance_of_another_build_type_is_refused(imported):
    path = artifact_path(imported)

    def other_build(statement: dict) -> None:
        statement["predicate"]["buildDefinition"]["buildType"] = "https://example.org/other/v1"

    resign(path, imported.signing_key, other_build)
    with pytest.raises(verify.AttestationInvalid, match="buildType"):
        verify_model_artifact(str(path), extract=False)


def test_provenance_whose_subject_names_another_file_is_refused(imported):
    path = artifact_path(imported)

    def renamed(statement: dict) -> None:
        statement["subject"][0]["name"] = "something-else.tar.gz"

    resign(path, imported.signing_key, renamed)
    with pytest.raises(verify.AttestationInvalid, match="no subject named 'tiny-bert-1.0.tar.gz'"):
        verify_model_artifact(str(path), extract=False)


# --- issue 19 item 6: extraction failures are recorded verification failures ------------------


def _sign_as_the_artifact(version: ModelVersion, data: bytes) -> None:
    """Store ``data`` as the version's artifact, signed and registered as if it were one."""
    path = artifact_path(version)
    path.write_bytes(data)
    resign(path, version.signing_key)
    digest = hashlib.sha256(data).hexdigest()
    ModelVersion.objects.filter(pk=version.pk).update(sha256=digest, size=len(data))
    version.refresh_from_db()


def test_a_signed_file_that_is_not_a_tarball_is_a_recorded_failure(imported):
    _sign_as_the_artifact(imported, os.urandom(4096))

    with pytest.raises(verify.ExtractionFailed, match="not a readable tar.gz") as error:
        verify_and_record(imported, actor="charlie")

    assert error.value.check == "safe_extraction"
    event = AuditEvent.objects.get(action="verification.failed")
    assert event.details["failed_check"] == "safe_extraction"
    assert "not a readable tar.gz" in event.details["error"]


def test_verify_now_answers_a_signed_non_tarball_with_the_reason(imported, charlie_client):
    _sign_as_the_artifact(imported, b"this is not a tar.gz\n" * 100)

    html = verify_now(charlie_client)

    assert 'data-result="failed"' in html and 'data-check="safe_extraction"' in html
    assert "not a readable tar.gz" in html
    event = AuditEvent.objects.get(action="verification.failed")
    assert (event.actor, event.details["failed_check"]) == ("charlie", "safe_extraction")


def _disk_full(monkeypatch) -> None:
    def no_space(self, tarinfo, targetpath):
        raise OSError(errno.ENOSPC, "No space left on device", targetpath)

    monkeypatch.setattr(tarfile.TarFile, "makefile", no_space)


def test_a_full_disk_while_extracting_is_a_recorded_failure(imported, monkeypatch):
    _disk_full(monkeypatch)

    with pytest.raises(verify.ExtractionFailed, match="no space left on device"):
        verify_and_record(imported, actor="charlie")

    event = AuditEvent.objects.get(action="verification.failed")
    assert event.details["failed_check"] == "safe_extraction"
    assert "no space left on device" in event.details["error"]


def test_verify_now_answers_a_full_disk_with_the_reason(imported, charlie_client, monkeypatch):
    _disk_full(monkeypatch)

    html = verify_now(charlie_client)

    assert 'data-result="failed"' in html and "no space left on device" in html
    assert AuditEvent.objects.filter(action="verification.failed").count() == 1


def test_an_unexpected_error_is_recorded_as_a_failed_run(imported, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr("registry.verification.checks.hash_files", broken)
    with pytest.raises(verify.VerificationAborted, match="ValueError: a bug"):
        verify_and_record(imported, actor="charlie")
    event = AuditEvent.objects.get(action="verification.failed")
    assert event.details["failed_check"] == "verification"


def test_a_disk_error_while_hashing_is_a_failure_not_an_oserror(imported, monkeypatch):
    def unreadable(path):
        raise OSError(errno.EIO, "Input/output error", str(path))

    monkeypatch.setattr("registry.verification.checks.sha256_file", unreadable)
    with pytest.raises(verify.VerificationAborted, match="Input/output error"):
        verify_model_artifact(imported)
