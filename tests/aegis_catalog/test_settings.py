"""Settings come from the environment; bad values and missing production settings stop start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
PRINT = (
    "import json, aegis_catalog.settings as s; "
    "print(json.dumps({'vault_token': s.VAULT_TOKEN, 'db': s.DATABASES['default']['ENGINE'], "
    "'auth': s.VAULT_AUTH_METHOD, 'bucket': s.AEGIS_S3_BUCKET, 'key': s.AEGIS_SIGN_KEY}))"
)


def load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VAULT_", "AEGIS_", "DJANGO_", "DATABASE_", "REDIS_", "AWS_"))
    }
    clean.update(AEGIS_VAR_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "-c", PRINT], cwd=BASE_DIR, env=clean, capture_output=True, text=True
    )


def test_it_reads_secrets_from_name_file(tmp_path):
    secret = tmp_path / "vault-token"
    secret.write_text("s.from-a-file\n")
    run = load_settings(tmp_path, VAULT_TOKEN_FILE=str(secret))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["vault_token"] == "s.from-a-file"


def test_it_defaults_to_a_working_local_setup(tmp_path):
    run = load_settings(tmp_path)
    assert run.returncode == 0, run.stderr
    values = json.loads(run.stdout)
    assert values["db"] == "django.db.backends.sqlite3"
    assert values["auth"] == "token"
    assert values["key"] == "aegis-model-sign"
    assert values["bucket"] is None


def test_it_refuses_a_bad_auth_method_by_name(tmp_path):
    run = load_settings(tmp_path, VAULT_AUTH_METHOD="password")
    assert run.returncode != 0
    assert "VAULT_AUTH_METHOD must be one of token, approle, jwt, kubernetes" in run.stderr


def test_it_refuses_an_unreadable_secret_file(tmp_path):
    run = load_settings(tmp_path, VAULT_TOKEN_FILE=str(tmp_path / "missing"))
    assert run.returncode != 0
    assert "VAULT_TOKEN_FILE points to" in run.stderr


def test_production_refuses_to_start_without_its_settings(tmp_path):
    run = load_settings(tmp_path, AEGIS_ENV="production")
    assert run.returncode != 0
    assert "AEGIS_ENV=production needs DJANGO_SECRET_KEY, DATABASE_URL, REDIS_URL, VAULT_ADDR" in (
        run.stderr
    )
