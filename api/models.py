"""Per-user API tokens: the secret is shown once and only its sha256 is kept."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A bearer token for ``/api/v1/``, acting as its user with the user's groups.

    ``token_hash`` is the sha256 of the secret (the secret has 256 random bits, so a plain hash
    is enough); ``prefix`` is the start of the secret, shown so a person can tell tokens apart.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["user", "-created_at"], name="api_token_user_idx")]

    def __str__(self) -> str:
        return f"API token {self.prefix}… ({self.name}) of {self.user_id}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
