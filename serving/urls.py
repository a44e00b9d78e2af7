"""Mounted at ``/hf/``: ``HF_ENDPOINT=<aegis>/hf``. Repo ids are ``<org>/<name>``."""

from __future__ import annotations

from django.urls import path

from serving import views

app_name = "serving"

REPO = "<str:org>/<str:name>"
urlpatterns = [
    path(f"api/models/{REPO}", views.model_info, name="model_info"),
    path(f"api/models/{REPO}/revision/<str:revision>", views.model_info, name="model_info_at"),
    path(f"api/models/{REPO}/tree/<str:revision>", views.tree, name="tree"),
    path(f"api/models/{REPO}/tree/<str:revision>/<path:prefix>", views.tree, name="tree_under"),
    path(f"api/models/{REPO}/paths-info/<str:revision>", views.paths_info, name="paths_info"),
    path(f"api/models/{REPO}/aegis/<str:revision>/model.sig", views.model_signature, name="sig"),
    path(f"api/models/{REPO}/aegis/<str:revision>/key.pem", views.public_key, name="key"),
    path(f"{REPO}/resolve/<str:revision>/<path:path>", views.resolve, name="resolve"),
]
