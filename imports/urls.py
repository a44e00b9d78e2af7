from __future__ import annotations

from django.urls import path

from imports import views

app_name = "imports"

urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("hub/<str:org>/<str:name>/", views.hub_model, name="hub_model"),
    path("hub/<str:org>/<str:name>/import/", views.start, name="start"),
    path("imports/", views.import_list, name="list"),
    path("imports/<int:pk>/", views.import_detail, name="detail"),
    path("imports/<int:pk>/progress/", views.import_progress, name="progress"),
    path("imports/<int:pk>/retry/", views.retry, name="retry"),
    path("imports/<int:pk>/cancel/", views.cancel, name="cancel"),
    path("imports/<int:pk>/override/", views.override_policy, name="override"),
    # On the version's provenance page, for auditors: a background job of this app.
    path("registry/<str:name>/<str:version>/rebuild/", views.rebuild, name="rebuild"),
]
