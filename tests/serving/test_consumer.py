"""Must-show 3 and item 6: a consumer verifies what it pulled with model_signing and the
downloaded model.sig and key alone; clients/aegis_pull.py does it without Django."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import snapshot_download

from tests.serving.conftest import hf_import

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / "clients" / "aegis_pull.py"
MODEL_SIGNING = Path(sys.executable).with_name("model_signing")
# Runs the helper with Django made unimportable: it must need only huggingface_hub and
# model-signing.
NO_DJANGO = (
    "import runpy, sys; sys.modules['django'] = None; "
    "sys.argv = ['aegis_pull.py', *sys.argv[1:]]; "
    f"runpy.run_path({str(HELPER)!r}, run_name='__main__')"
)


def fetch(url: str, token: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return bytes(answer.read())


def load_helper() -> Any:
    spec = importlib.util.spec_from_file_location("aegis_pull", HELPER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def version(aegis: Any, transit_key: str):
    return hf_import(transit_key, "1.0", "v1.0")


def test_model_signing_verifies_a_pulled_snapshot_with_the_served_signature_and_key(
    version, live_server, viewer_token, tmp_path
):
    endpoint = f"{live_server.url}/hf"
    folder = Path(
        snapshot_download(
            "aegis/tiny-bert", revision="1.0", endpoint=endpoint, token=viewer_token,
            cache_dir=tmp_path / "cache",
        )
    )  # fmt: skip
    for name in ("model.sig", "key.pem"):
        url = f"{endpoint}/api/models/aegis/tiny-bert/aegis/1.0/{name}"
        (tmp_path / name).write_bytes(fetch(url, viewer_token))
    assert (tmp_path / "key.pem").read_text() == version.signing_key.public_key_pem
    command = [
        str(MODEL_SIGNING), "verify", "key", str(folder),
        "--signature", str(tmp_path / "model.sig"),
        "--public_key", str(tmp_path / "key.pem"), "--allow_symlinks",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # The same check fails once one pulled byte differs.
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy, symlinks=False)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    command[3] = str(copy)
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0


def test_the_helper_pulls_and_verifies_without_django(version, hf_env, viewer_token, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", NO_DJANGO, "aegis/tiny-bert", "1.0"],
        env={**hf_env, "HF_TOKEN": viewer_token},
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert (folder / "model.safetensors").is_file() and folder.name == version.sha256[:40]
    local = tmp_path / "local"
    done = subprocess.run(
        [sys.executable, "-c", NO_DJANGO, "acme/tiny-bert", version.source_commit,
         "--local-dir", str(local)],
        env={**hf_env, "HF_TOKEN": viewer_token},
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (local / "config.json").is_file()


def test_the_helper_refuses_files_that_do_not_match_the_signature(
    version, live_server, viewer_token, tmp_path
):
    helper = load_helper()
    endpoint = f"{live_server.url}/hf"
    folder = helper.pull_verified(
        "aegis/tiny-bert", "1.0", endpoint=endpoint, token=viewer_token, cache_dir=tmp_path / "c"
    )
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy, symlinks=False)
    (copy / "config.json").write_text("{}")
    for name in ("model.sig", "key.pem"):
        url = f"{endpoint}/api/models/aegis/tiny-bert/aegis/1.0/{name}"
        (tmp_path / name).write_bytes(fetch(url, viewer_token))
    with pytest.raises(helper.VerificationFailed, match="does not verify"):
        helper.verify_snapshot(copy, tmp_path / "model.sig", tmp_path / "key.pem")
