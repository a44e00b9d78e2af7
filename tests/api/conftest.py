"""Fixtures for the API tests: the users of tests/conftest.py, each with an API token."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from tests.factories import ApiClient, token_for


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
