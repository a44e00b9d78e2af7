from __future__ import annotations

from django.urls import path

from registry.views import approvals, audit, browse, provenance, upstream

app_name = "registry"

urlpatterns = [
    path("", browse.model_list, name="list"),
    # Before "<name>/<version>/": a model named "-" cannot exist.
    path("-/approvals/", approvals.approval_queue, name="approvals"),
    path("<str:name>/", browse.model_detail, name="model"),
    # "-" can start no version name: these never shadow a version's page.
    path("<str:name>/-/upstream/", upstream.upstream_panel, name="upstream"),
    path("<str:name>/-/upstream/check/", upstream.upstream_check, name="upstream_check"),
    path("<str:name>/<str:version>/", provenance.version_detail, name="version"),
    path("<str:name>/<str:version>/verify/", provenance.version_verify, name="verify"),
    path("<str:name>/<str:version>/approval/", approvals.decide, name="decide"),
    path(
        "<str:name>/<str:version>/verify/<int:run>/",
        provenance.version_verification,
        name="verification",
    ),
    path(
        "<str:name>/<str:version>/download/<slug:kind>/",
        provenance.version_download,
        name="download",
    ),
]

# Mounted at /audit/ by aegis_catalog/urls.py, namespace "audit".
audit_urlpatterns = [
    path("", audit.audit_list, name="list"),
    path("chain/", audit.audit_chain_check, name="chain"),
]
