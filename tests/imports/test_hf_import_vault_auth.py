"""The CLI logs in to Vault as CI does: AppRole, or JWT with the job's OIDC token."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from registry.models import ModelVersion

pytestmark = pytest.mark.django_db


def hf_import(*args: str) -> None:
    call_command(
        "hf_import",
        "--repo-id", "acme/tiny-bert", "--model-name", "tiny-bert", "--version", "1",
        "--register", "--no-progress", *args,
    )  # fmt: skip


def test_it_signs_after_an_approle_login(aegis):
    role_id, secret_id = aegis.openbao.enable_approle("aegis-ci")
    settings = aegis.settings
    settings.VAULT_AUTH_METHOD = "approle"
    settings.VAULT_TOKEN = None
    settings.VAULT_ROLE_ID = role_id
    settings.VAULT_SECRET_ID = secret_id
    hf_import()
    assert ModelVersion.objects.get().signing_key.name == "aegis-model-sign"


def test_it_records_the_ci_identity_from_the_jwt_claims(aegis):
    openbao = aegis.openbao
    private_key, public_pem = openbao.generate_rsa_key()
    openbao.enable_jwt("github-ci", public_key_pem=public_pem, mount="jwt-github")
    token = openbao.mint_jwt(
        openbao.github_actions_claims(
            repository="acme/models", ref="refs/heads/main", actor="octocat"
        ),
        private_key,
    )
    settings = aegis.settings
    settings.VAULT_AUTH_METHOD = "jwt"
    settings.VAULT_TOKEN = None
    settings.VAULT_JWT_ROLE = "github-ci"
    settings.VAULT_JWT_MOUNT = "jwt-github"
    settings.VAULT_JWT = token
    hf_import()
    version = ModelVersion.objects.get()
    assert version.imported_by == "ci:acme/models@refs/heads/main by octocat"


def test_it_refuses_a_jwt_signed_by_another_key(aegis):
    openbao = aegis.openbao
    _, trusted_pem = openbao.generate_rsa_key()
    intruder_key, _ = openbao.generate_rsa_key()
    openbao.enable_jwt("github-ci-2", public_key_pem=trusted_pem, mount="jwt-other")
    settings = aegis.settings
    settings.VAULT_AUTH_METHOD = "jwt"
    settings.VAULT_TOKEN = None
    settings.VAULT_JWT_ROLE = "github-ci-2"
    settings.VAULT_JWT_MOUNT = "jwt-other"
    settings.VAULT_JWT = openbao.mint_jwt(openbao.github_actions_claims(), intruder_key)
    with pytest.raises(CommandError) as error:
        hf_import("--actor", "someone")
    assert "Vault" in str(error.value)
    assert settings.VAULT_ADDR in str(error.value)
    assert not ModelVersion.objects.exists()
