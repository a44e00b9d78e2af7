from __future__ import annotations

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from registry.models import AuditEvent
        from webhooks.actions import queue_deliveries_of

        post_save.connect(queue_deliveries_of, sender=AuditEvent, dispatch_uid="aegis-webhooks")
