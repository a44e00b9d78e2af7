"""How to pull a version through the Hugging Face-compatible endpoint (``/hf/``, served by the
``serving`` app), and who pulled it: what the registry pages show."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from registry.models import ModelVersion, Pull

PULLS_SHOWN = 50


def pull_lines(request: HttpRequest, model_name: str, revision: str) -> dict[str, Any]:
    """The endpoint, repo id and revision the pull lines of a page name."""
    return {
        "hf_endpoint": request.build_absolute_uri("/hf").rstrip("/"),
        "hf_repo": f"{settings.AEGIS_HF_NAMESPACE}/{model_name}",
        "hf_revision": revision,
    }


def recent_pulls(version: ModelVersion) -> list[Pull]:
    """Who pulled the version, a row per puller and day, newest first."""
    return list(Pull.objects.filter(version=version).order_by("-day", "-last_at")[:PULLS_SHOWN])
