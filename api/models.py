"""Per-user API tokens: the secret is shown once and only its sha256 is kept."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    """A bearer token for ``/api/v1/``, acting as its user with the user's groups.

    ``token_hash`` is the sha256 of the secret (the secret has 256 random bits, so a plain hash
    is enough); ``prefix`` is the start of the secret, shown so a person can tell tokens apart.
    A token may expire (``expires_at``) and may be read-only (``scope``): then it can read
    everything its user may read and change nothing, whatever its user's groups.
    """

    class Scope(models.TextChoices):
        READ_WRITE = "read-write", "read and write (as its user)"
        READ_ONLY = "read-only", "read only"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.READ_WRITE)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["user", "-created_at"], name="api_token_user_idx")]

    def __str__(self) -> str:
        return f"API token {self.prefix}… ({self.name}) of {self.user_id}"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def read_only(self) -> bool:
        return self.scope == self.Scope.READ_ONLY
