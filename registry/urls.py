from __future__ import annotations

from django.urls import path

from registry import views

app_name = "registry"

urlpatterns = [
    path("", views.model_list, name="list"),
    path("<str:name>/", views.model_detail, name="model"),
    path("<str:name>/<str:version>/", views.version_detail, name="version"),
]
