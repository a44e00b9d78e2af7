"""Fixtures for the API tests: the users of tests/conftest.py, each with an API token."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from api.actions import create_token


def token_for(user: User, name: str = "tests") -> str:
    return create_token(user, name).secret


class ApiClient:
    """Django's test client with a bearer token on every request."""

    def __init__(self, token: str | None) -> None:
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params, headers=self.headers)

    def post(self, path: str, body: Any) -> Any:
        return self.client.post(path, body, content_type="application/json", headers=self.headers)


@pytest.fixture
def alice_api(alice: User) -> ApiClient:
    """An importer's token."""
    return ApiClient(token_for(alice))


@pytest.fixture
def bob_api(bob: User) -> ApiClient:
    """A viewer's token."""
    return ApiClient(token_for(bob))


@pytest.fixture
def charlie_api(charlie: User) -> ApiClient:
    """An auditor's token."""
    return ApiClient(token_for(charlie))
