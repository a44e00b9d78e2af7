from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from aegis_catalog import views
from registry.urls import audit_urlpatterns

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("rq/", include("django_rq.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("registry/", include("registry.urls")),
    path("audit/", include((audit_urlpatterns, "audit"))),
    path("", include("imports.urls")),
]
