from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class AegisAdminConfig(AdminConfig):
    """The Django admin, as ``registry.admin_site.AegisAdminSite`` (registry-admin group only)."""

    default_site = "registry.admin_site.AegisAdminSite"
