"""Logging in to a real OpenBao dev server (token, AppRole, JWT), configuration, CI tokens."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from aegis_catalog.lib.vault import (
    OidcTokenError,
    TransitClient,
    VaultAuthError,
    VaultConfig,
    VaultConfigError,
    github_actions_oidc_token,
)
from tests.lib.vault.support import DEFAULT_KEY_NAME, DIGEST, FakeGitHubTokenService, verify_ecdsa

if TYPE_CHECKING:
    from devservers.openbao import OpenBaoServer


# -- AppRole, JWT --------------------------------------------------------------------------


def test_it_logs_in_with_approle_and_signs(openbao: OpenBaoServer, transit_key: str) -> None:
    role_id, secret_id = openbao.enable_approle("aegis-worker")
    client = TransitClient(
        VaultConfig(addr=openbao.addr, auth_method="approle", role_id=role_id, secret_id=secret_id)
    )

    signature = client.sign_digest(transit_key, DIGEST)

    pem = client.read_public_keys(transit_key).version(1).public_key_pem
    assert verify_ecdsa(pem, signature.der)
    assert client.login_identity() == {}


def test_it_logs_in_again_when_vault_revokes_the_approle_token(
    openbao: OpenBaoServer, transit_key: str
) -> None:
    role_id, secret_id = openbao.enable_approle("aegis-relogin")
    client = TransitClient(
        VaultConfig(addr=openbao.addr, auth_method="approle", role_id=role_id, secret_id=secret_id)
    )
    first_token = client._logged_in_client().token
    openbao.api("POST", "auth/token/revoke", {"token": first_token})

    signature = client.sign_digest(transit_key, DIGEST)

    assert client._logged_in_client().token != first_token
    assert verify_ecdsa(
        client.read_public_keys(transit_key).version(1).public_key_pem, signature.der
    )


def test_it_refuses_a_wrong_approle_secret_id(openbao: OpenBaoServer) -> None:
    role_id, secret_id = openbao.enable_approle("aegis-wrong-secret")
    wrong = secret_id[:-4] + "0000"
    client = TransitClient(
        VaultConfig(addr=openbao.addr, auth_method="approle", role_id=role_id, secret_id=wrong)
    )

    with pytest.raises(VaultAuthError, match="invalid role or secret ID") as raised:
        client.sign_digest(DEFAULT_KEY_NAME, DIGEST)
    assert wrong not in str(raised.value)
    assert role_id not in str(raised.value)


def test_it_logs_in_with_a_github_actions_jwt_and_records_the_identity(
    openbao: OpenBaoServer, ci_signing_key: Any, transit_key: str
) -> None:
    token = openbao.mint_jwt(
        openbao.github_actions_claims(
            repository="acme/models", actor="octocat", ref="refs/tags/v1"
        ),
        ci_signing_key,
    )
    client = TransitClient(
        VaultConfig(addr=openbao.addr, auth_method="jwt", jwt_role="ci", jwt=token)
    )

    signature = client.sign_digest(transit_key, DIGEST)

    assert verify_ecdsa(
        client.read_public_keys(transit_key).version(1).public_key_pem, signature.der
    )
    identity = client.login_identity()
    assert identity["repository"] == "acme/models"
    assert identity["actor"] == "octocat"
    assert identity["ref"] == "refs/tags/v1"
    assert identity["sub"] == "repo:acme/models:ref:refs/tags/v1"
    assert "exp" not in identity


def test_it_refuses_a_jwt_signed_by_another_key(
    openbao: OpenBaoServer, ci_signing_key: Any
) -> None:
    intruder_key, _ = openbao.generate_rsa_key()
    token = openbao.mint_jwt(openbao.github_actions_claims(repository="acme/models"), intruder_key)
    client = TransitClient(
        VaultConfig(addr=openbao.addr, auth_method="jwt", jwt_role="ci", jwt=token)
    )

    with pytest.raises(VaultAuthError, match="signature") as raised:
        client.sign_digest(DEFAULT_KEY_NAME, DIGEST)
    assert openbao.addr in str(raised.value)
    assert token not in str(raised.value)


def test_it_refuses_a_jwt_from_another_repository(
    openbao: OpenBaoServer, ci_signing_key: Any
) -> None:
    token = openbao.mint_jwt(openbao.github_actions_claims(repository="evil/fork"), ci_signing_key)
    client = TransitClient(
        VaultConfig(addr=openbao.addr, auth_method="jwt", jwt_role="ci", jwt=token)
    )

    with pytest.raises(VaultAuthError, match="repository"):
        client.read_public_keys(DEFAULT_KEY_NAME)


# -- token and configuration ---------------------------------------------------------------


def test_it_never_falls_back_to_the_vault_token_file(
    openbao: OpenBaoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".vault-token").write_text(openbao.root_token)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    client = TransitClient(VaultConfig(addr=openbao.addr))

    with pytest.raises(VaultAuthError, match="no Vault token is configured"):
        client.sign_digest(DEFAULT_KEY_NAME, DIGEST)


def test_it_never_shows_secrets_in_its_repr() -> None:
    config = VaultConfig(
        addr="https://vault.example:8200",
        auth_method="approle",
        token="s.token-value",
        role_id="role-id-value",
        secret_id="secret-id-value",
        jwt="header.payload.signature",
        namespace="team-a",
    )

    shown = repr(config) + str(config) + repr(TransitClient(config))

    for secret in ("s.token-value", "role-id-value", "secret-id-value", "header.payload"):
        assert secret not in shown
    assert "https://vault.example:8200" in shown
    assert "namespace='team-a'" in shown


def test_it_rejects_a_malformed_configuration() -> None:
    with pytest.raises(VaultConfigError, match="must start with http:// or https://"):
        VaultConfig(addr="vault.example:8200")
    with pytest.raises(VaultConfigError, match="auth method 'ldap'"):
        VaultConfig(addr="http://127.0.0.1:8200", auth_method="ldap")  # type: ignore[arg-type]


# -- GitHub Actions OIDC token ------------------------------------------------------------


def test_it_fetches_a_github_actions_oidc_token(
    github_token_service: FakeGitHubTokenService,
) -> None:
    environ = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": f"{github_token_service.url}/token?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token-value",
    }

    token = github_actions_oidc_token("aegis", environ=environ)

    assert token.count(".") == 2
    path, headers = github_token_service.requests[0]
    query = parse_qs(urlsplit(path).query)
    assert urlsplit(path).path == "/token"
    assert query == {"api-version": ["2.0"], "audience": ["aegis"]}
    assert headers["Authorization"] == "bearer request-token-value"


def test_it_explains_how_to_get_a_github_actions_oidc_token_outside_actions() -> None:
    with pytest.raises(OidcTokenError, match="id-token: write"):
        github_actions_oidc_token("aegis", environ={})


def test_it_reports_a_github_token_service_that_refuses() -> None:
    service = FakeGitHubTokenService({"message": "forbidden"}, status=403)
    try:
        environ = {
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{service.url}/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token-value",
        }
        with pytest.raises(OidcTokenError, match="answered HTTP 403") as raised:
            github_actions_oidc_token("aegis", environ=environ)
    finally:
        service.close()
    assert "request-token-value" not in str(raised.value)


def test_it_signs_in_ci_with_the_token_fetched_from_github(
    openbao: OpenBaoServer, ci_signing_key: Any, transit_key: str
) -> None:
    service = FakeGitHubTokenService(
        {
            "value": openbao.mint_jwt(
                openbao.github_actions_claims(repository="acme/models"), ci_signing_key
            )
        }
    )
    try:
        token = github_actions_oidc_token(
            "aegis",
            environ={
                "ACTIONS_ID_TOKEN_REQUEST_URL": f"{service.url}/token?api-version=2.0",
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token-value",
            },
        )
    finally:
        service.close()
    client = TransitClient(
        VaultConfig(addr=openbao.addr, auth_method="jwt", jwt_role="ci", jwt=token)
    )

    signature = client.sign_digest(transit_key, DIGEST)

    assert signature.key_version == 1
    assert client.login_identity()["repository"] == "acme/models"
