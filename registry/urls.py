from __future__ import annotations

from django.urls import path

from registry import views

app_name = "registry"

urlpatterns = [
    path("", views.model_list, name="list"),
    path("<str:name>/", views.model_detail, name="model"),
    path("<str:name>/<str:version>/", views.version_detail, name="version"),
    path("<str:name>/<str:version>/verify/", views.version_verify, name="verify"),
    path(
        "<str:name>/<str:version>/download/<slug:kind>/",
        views.version_download,
        name="download",
    ),
]

# Mounted at /audit/ by aegis_catalog/urls.py, namespace "audit".
audit_urlpatterns = [
    path("", views.audit_list, name="list"),
    path("chain/", views.audit_chain_check, name="chain"),
]
