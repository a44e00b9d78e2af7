from __future__ import annotations

from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from registry.signals import record_staff_sign_in

        user_logged_in.connect(record_staff_sign_in, dispatch_uid="aegis-staff-sign-in")
