from __future__ import annotations

from django.apps import AppConfig


class ServingConfig(AppConfig):
    """The Hugging Face-compatible read endpoint at ``/hf/`` (``HF_ENDPOINT=<aegis>/hf``)."""

    name = "serving"
    default_auto_field = "django.db.models.BigAutoField"
