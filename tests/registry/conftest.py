"""Fixtures of the registry tests."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from registry.models import ModelVersion


@pytest.fixture
def imported(aegis, transit_key) -> ModelVersion:
    """tiny-bert imported into the local store, signed with a key of this test's own."""
    call_command(
        "hf_import",
        "--repo-id", "acme/tiny-bert", "--model-name", "tiny-bert", "--version", "1.0",
        "--sign-key", transit_key, "--register", "--no-progress",
    )  # fmt: skip
    return ModelVersion.objects.select_related("signing_key", "model").get()
