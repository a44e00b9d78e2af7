"""What the ``/hf/`` endpoint keeps: which versions passed verification for serving (and the
verified copies of their files), and which model answers for a Hub repo id. (Who pulled what is
the registry's: ``registry.models.Pull``.)"""

from __future__ import annotations

from typing import Any

from django.db import models

from registry.models import ModelVersion, RegisteredModel


class ServedVersion(models.Model):
    """A version's artifact as checked before its bytes were first served.

    ``ready``: it passed ``verify_model_artifact`` and every file of ``model/`` was copied,
    content-addressed, beside it in the store (``files``: path -> sha256, size, url), each copy's
    sha256 the one the signed ``model.sig`` names. ``refused``: the check failed (``error``
    says which); it is tried again after ``AEGIS_HF_RECHECK_SECONDS``.
    """

    class State(models.TextChoices):
        READY = "ready", "verified and served"
        REFUSED = "refused", "failed verification: not served"

    version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="served")
    state = models.CharField(max_length=8, choices=State.choices)
    checked_at = models.DateTimeField()
    error = models.TextField(blank=True)
    failed_check = models.CharField(max_length=40, blank=True)
    files = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.version} ({self.state})"

    def file(self, path: str) -> dict[str, Any] | None:
        entry = self.files.get(path) if isinstance(self.files, dict) else None
        return entry if isinstance(entry, dict) else None


class HubRepoChoice(models.Model):
    """The registered model that answers for a Hub repo id several models were imported from
    (chosen by a registry admin, audited). Without one, the first registered answers."""

    repo_id = models.CharField(max_length=200, unique=True)
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="+")
    chosen_by = models.CharField(max_length=300)
    chosen_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["repo_id"]
        verbose_name = "Hub repo id answered by"
        verbose_name_plural = "Hub repo ids answered by"

    def __str__(self) -> str:
        return f"{self.repo_id} -> {self.model.name}"
