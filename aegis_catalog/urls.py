from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from aegis_catalog import views
from api.urls import api_urlpatterns, token_urlpatterns
from registry.urls import audit_urlpatterns

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("rq/", include("django_rq.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("registry/", include("registry.urls")),
    path("audit/", include((audit_urlpatterns, "audit"))),
    path("api/v1/", include(api_urlpatterns)),
    path("account/tokens/", include((token_urlpatterns, "api_tokens"))),
    path("hf/", include("serving.urls")),
    path("", include("imports.urls")),
]
