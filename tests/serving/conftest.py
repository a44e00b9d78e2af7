"""Fixtures of the /hf/ endpoint's tests: tiny-bert imported twice, a viewer's token, and a
client environment with ``HF_ENDPOINT`` at the live server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from registry.models import ModelVersion
from tests.factories import make_user, token_for


def hf_import(
    transit_key: str, version: str, revision: str, name: str = "tiny-bert"
) -> ModelVersion:
    call_command(
        "hf_import",
        "--repo-id", "acme/tiny-bert", "--revision", revision, "--model-name", name,
        "--version", version, "--sign-key", transit_key, "--register", "--no-progress",
    )  # fmt: skip
    return ModelVersion.objects.select_related("signing_key", "model").get(
        model__name=name, version=version
    )


@pytest.fixture
def tiny_bert(aegis: Any, transit_key: str) -> dict[str, ModelVersion]:
    """tiny-bert 1.0 from the v1.0 tag and 2.0 from main, in the local store."""
    return {
        "1.0": hf_import(transit_key, "1.0", "v1.0"),
        "2.0": hf_import(transit_key, "2.0", "main"),
    }


@pytest.fixture
def viewer_token(db: None) -> str:
    return token_for(make_user("vera", "viewer"), "pulls")


@pytest.fixture
def hf_env(live_server: Any, tmp_path: Path) -> dict[str, str]:
    """The environment of a client process pointed at the live server's /hf/."""
    return {
        **os.environ,
        "HF_ENDPOINT": f"{live_server.url}/hf",
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
