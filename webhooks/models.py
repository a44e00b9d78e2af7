"""Webhooks: URLs that receive events of the audit trail as signed JSON, and each delivery."""

from __future__ import annotations

from django.db import models


class Webhook(models.Model):
    """A receiver of events, added by a registry admin: each event is POSTed as JSON with an
    HMAC-SHA256 signature of the body made with ``secret`` (``webhooks.delivery``)."""

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500)
    # The shared secret: written by the admin, kept to sign with, never shown again.
    secret = models.CharField(max_length=200)
    events = models.JSONField(
        default=list, blank=True, help_text="the events sent (webhooks.events.EVENTS); empty: all"
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.url})"

    def wants(self, event: str) -> bool:
        return self.active and (not self.events or event in self.events)


class Delivery(models.Model):
    """One event for one webhook: attempted by a job, retried with backoff until the receiver
    answers 2xx or the attempts run out."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        DONE = "done", "delivered"
        FAILED = "failed", "failed (no more attempts)"
        REFUSED = "refused", "refused (the URL is not allowed)"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    # The audit event it tells of: its sequence and hash are in the payload.
    audit_sequence = models.BigIntegerField()
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.event} #{self.audit_sequence} to {self.webhook.name}"
