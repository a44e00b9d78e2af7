"""Bad input gets a clear one-line reason and leaves nothing behind."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from imports.models import ImportRequest
from registry.models import ModelVersion, RegisteredModel

pytestmark = pytest.mark.django_db


def hf_import(*args: str) -> None:
    call_command("hf_import", *args, "--no-progress")


def assert_nothing_registered_or_stored(environment) -> None:
    assert not RegisteredModel.objects.exists()
    assert not ModelVersion.objects.exists()
    root = Path(environment.artifact_root)
    assert not root.exists() or not [path for path in root.rglob("*") if path.is_file()]


@pytest.mark.parametrize("repo_id", ["../x", "", "has space/model", "a/b/c", "acme/../etc"])
def test_it_refuses_an_invalid_repo_id_before_creating_anything(aegis, repo_id):
    with pytest.raises(CommandError, match="(?i)model id"):
        hf_import("--repo-id", repo_id, "--model-name", "m", "--version", "1", "--register")
    assert not ImportRequest.objects.exists()
    assert_nothing_registered_or_stored(aegis)


def test_it_refuses_an_invalid_model_name_before_creating_anything(aegis):
    with pytest.raises(CommandError, match="invalid model name"):
        hf_import("--repo-id", "acme/tiny-bert", "--model-name", "../up", "--version", "1")
    assert not ImportRequest.objects.exists()


def test_it_reports_an_unknown_repo(aegis):
    with pytest.raises(CommandError) as error:
        hf_import("--repo-id", "acme/does-not-exist", "--model-name", "m", "--version", "1")
    assert "acme/does-not-exist" in str(error.value)
    assert "has no model" in str(error.value)
    # The revision is pinned when the import is asked for, as the page and the API do.
    assert not ImportRequest.objects.exists()
    assert_nothing_registered_or_stored(aegis)


def test_it_reports_an_unknown_revision(aegis):
    with pytest.raises(CommandError) as error:
        hf_import(
            "--repo-id", "acme/tiny-bert", "--model-name", "m", "--version", "1",
            "--revision", "no-such-branch", "--register",
        )  # fmt: skip
    assert "no-such-branch" in str(error.value)
    assert_nothing_registered_or_stored(aegis)


def test_it_reports_patterns_that_match_no_file(aegis):
    with pytest.raises(CommandError) as error:
        hf_import(
            "--repo-id", "acme/tiny-bert", "--model-name", "m", "--version", "1",
            "--include", "*.gguf", "--register",
        )  # fmt: skip
    assert "*.gguf" in str(error.value)
    assert_nothing_registered_or_stored(aegis)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_it_reports_an_unreachable_vault_and_stores_nothing(aegis):
    aegis.settings.VAULT_ADDR = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(CommandError) as error:
        hf_import(
            "--repo-id", "acme/tiny-bert", "--model-name", "m", "--version", "1", "--register"
        )
    message = str(error.value)
    assert "Vault" in message
    assert aegis.settings.VAULT_ADDR in message
    assert "unreachable" in message
    assert_nothing_registered_or_stored(aegis)


def test_it_names_vault_and_the_key_when_the_token_is_refused(aegis):
    aegis.settings.VAULT_TOKEN = "not-a-valid-token"
    with pytest.raises(CommandError) as error:
        hf_import(
            "--repo-id", "acme/tiny-bert", "--model-name", "m", "--version", "1", "--register"
        )
    message = str(error.value)
    assert aegis.settings.VAULT_ADDR in message
    assert "aegis-model-sign" in message
    assert "permission denied" in message
    assert "not-a-valid-token" not in message
    assert_nothing_registered_or_stored(aegis)


def test_it_reports_a_missing_s3_bucket_and_registers_nothing(aegis_s3):
    with pytest.raises(CommandError) as error:
        hf_import(
            "--repo-id", "acme/tiny-bert", "--model-name", "m", "--version", "1",
            "--upload-s3", "--s3-bucket", "no-such-bucket", "--register",
        )  # fmt: skip
    assert "no-such-bucket" in str(error.value)
    assert "does not exist" in str(error.value)
    assert_nothing_registered_or_stored(aegis_s3)


def test_it_refuses_a_download_whose_sha256_differs_from_the_hubs(aegis, fresh_hub_double):
    weights = b"\x00" * 64 + b"weights"
    fresh_hub_double.add_repo(
        "acme/corrupted",
        {"model.safetensors": weights, "config.json": json.dumps({"a": 1})},
        card_data={"license": "mit"},
    )
    fresh_hub_double.corrupt("acme/corrupted", "model.safetensors")
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    with pytest.raises(CommandError) as error:
        hf_import(
            "--repo-id", "acme/corrupted", "--model-name", "c", "--version", "1", "--register"
        )
    message = str(error.value)
    assert "model.safetensors" in message
    assert "sha256" in message
    request = ImportRequest.objects.get()
    assert request.stage == "stream"  # checked as it arrived
    assert request.error_code == "digest_mismatch"
    assert_nothing_registered_or_stored(aegis)


def test_it_refuses_a_pickle_that_would_run_code(aegis, fresh_hub_double):
    import pickle

    class Exploit:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    fresh_hub_double.add_repo(
        "acme/exploit", {"pytorch_model.bin": pickle.dumps(Exploit()), "config.json": "{}"}
    )
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    with pytest.raises(CommandError, match="pytorch_model.bin"):
        hf_import("--repo-id", "acme/exploit", "--model-name", "x", "--version", "1", "--register")
    request = ImportRequest.objects.get()
    assert request.error_code == "policy:dangerous_pickle"
    assert "posix.system (os.system)" in request.error
    assert_nothing_registered_or_stored(aegis)


def test_it_refuses_a_version_that_already_exists(aegis):
    hf_import("--repo-id", "acme/tiny-bert", "--model-name", "m", "--version", "1", "--register")
    with pytest.raises(CommandError, match="already has a version 1"):
        hf_import(
            "--repo-id", "acme/tiny-bert", "--model-name", "m", "--version", "1", "--register",
            "--include", "*.json",
        )  # fmt: skip
    assert ModelVersion.objects.count() == 1


def test_it_refuses_to_start_without_the_disk_space_the_import_needs(aegis):
    aegis.settings.AEGIS_MIN_FREE_BYTES = 1 << 60
    with pytest.raises(CommandError, match="not enough disk space"):
        hf_import(
            "--repo-id", "acme/tiny-bert", "--model-name", "m", "--version", "1", "--register"
        )
    request = ImportRequest.objects.get()
    assert request.stage == "preflight"
    assert not (Path(aegis.work_dir) / f"import-{request.pk}" / "snapshot").exists()
    assert_nothing_registered_or_stored(aegis)


def test_it_refuses_a_gated_repo_without_a_token(aegis):
    with pytest.raises(CommandError, match="gated"):
        hf_import("--repo-id", "acme/gated-llama", "--model-name", "g", "--version", "1")
    assert_nothing_registered_or_stored(aegis)


def test_it_reports_a_full_disk_during_the_download(aegis, monkeypatch):
    import errno

    from aegis_catalog.lib.hub import feed

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(feed._ChunkSink, "write", disk_full)
    with pytest.raises(CommandError) as error:
        hf_import("--repo-id", "acme/tiny-bert", "--model-name", "m", "--version", "1")
    assert "No space left on the local disk" in str(error.value)
    assert "AEGIS_WORK_DIR" in str(error.value)
    assert ImportRequest.objects.get().stage == "stream"
    assert_nothing_registered_or_stored(aegis)


# A protocol-0 pickle (plain text) and a protocol-3 pickle whose first bytes look like a
# safetensors header that fits the file: both run os.system when loaded (see
# tests/imports/scanners/test_pickles.py).
LOOKALIKE_HEAD = b"\x80\x03B\x02\x00\x00\x00\x00{0"
HIDDEN_PICKLES = {
    "proto0": b"cos\nsystem\n(S'id'\ntR.",
    "lookalike": LOOKALIKE_HEAD
    + b"cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."
    + b"\0" * (int.from_bytes(LOOKALIKE_HEAD[:8], "little") + 8),
}


@pytest.mark.parametrize(
    ("shape", "name"),
    [
        ("proto0", "weights.dat"),
        ("proto0", "classifier.sav"),
        ("proto0", "weights"),
        ("proto0", "model.safetensors"),
        ("lookalike", "model.safetensors"),
        ("lookalike", "weights.data"),
    ],
)
def test_a_pickle_hidden_by_its_name_or_first_bytes_is_blocked(
    aegis, fresh_hub_double, name, shape
):
    fresh_hub_double.add_repo(
        "acme/hidden",
        {name: HIDDEN_PICKLES[shape], "config.json": "{}"},
        card_data={"license": "mit"},
    )
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    with pytest.raises(CommandError, match="system"):
        hf_import("--repo-id", "acme/hidden", "--model-name", "h", "--version", "1", "--register")
    request = ImportRequest.objects.get()
    assert request.error_code == "policy:dangerous_pickle"
    assert name in request.error and "system" in request.error
    assert_nothing_registered_or_stored(aegis)
