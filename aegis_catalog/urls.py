from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from aegis_catalog import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("rq/", include("django_rq.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("registry/", include("registry.urls")),
    path("", include("imports.urls")),
]
