"""A model imported for real from the Hub double, for the upstream watch's tests to change
upstream afterwards."""

from __future__ import annotations

from typing import Any

from devservers.hub_double import HubDouble, safetensors_bytes
from imports.models import ImportRequest
from registry.actions import edit_import_policy
from registry.models import ImportPolicy
from tests.factories import imported

REPO = "acme/watched"
WEIGHTS = safetensors_bytes(1)
NEW_WEIGHTS = safetensors_bytes(2, (8, 8))


def import_watched_repo(aegis: Any, double: HubDouble) -> None:
    """acme/watched (MIT; config, weights, notes) imported as watched 1, the Hub double as
    HF_ENDPOINT; the import policy allows MIT and Apache-2.0 only."""
    double.add_repo(
        REPO,
        {"config.json": '{"model_type": "bert"}', "model.safetensors": WEIGHTS, "notes.txt": "v1"},
        card_data={"license": "mit", "tags": ["bert"], "language": ["en"]},
        message="Initial commit",
    )
    aegis.settings.HF_ENDPOINT = double.url
    edit_import_policy(
        ImportPolicy.current(), {"allowed_licenses": ["MIT", "Apache-2.0"]}, actor="rosa"
    )
    request = imported(REPO)
    assert request.status == ImportRequest.Status.SUCCEEDED, request.error


def relicense_and_retrain(double: HubDouble, license: str = "cc-by-nc-4.0") -> str:
    """A new commit upstream: another license, new weights, a file added and one removed."""
    return double.add_commit(
        REPO,
        {
            "README.md": f"---\nlicense: {license}\ntags:\n- bert\nlanguage:\n- en\n---\n",
            "model.safetensors": NEW_WEIGHTS,
            "extra.json": "{}",
            "notes.txt": None,
        },
        message="Relicense and retrain",
    )
