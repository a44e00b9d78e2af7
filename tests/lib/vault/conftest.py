"""Fixtures of the Vault tests: a CI signing key trusted by Vault's JWT auth, a fake GitHub.

The servers (openbao, fresh_openbao, openbao_tls) and transit_key come from
tests.fixtures.openbao, loaded by the top-level conftest.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import jwt
import pytest

from tests.lib.vault.support import FakeGitHubTokenService

if TYPE_CHECKING:
    from devservers.openbao import OpenBaoServer


@pytest.fixture(scope="module")
def ci_signing_key(openbao: OpenBaoServer) -> Any:
    private_key, public_pem = openbao.generate_rsa_key()
    openbao.enable_jwt("ci", public_key_pem=public_pem, bound_claims={"repository": "acme/models"})
    return private_key


@pytest.fixture
def github_token_service() -> Iterator[FakeGitHubTokenService]:
    token = jwt.encode({"sub": "repo:acme/models:ref:refs/heads/main"}, "k" * 32, "HS256")
    service = FakeGitHubTokenService({"value": token})
    yield service
    service.close()
