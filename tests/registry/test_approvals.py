"""Imports that need approval: the version awaits a registry admin who is not its requester;
awaiting it is not served, downloadable or verifiable as active; rejected, its objects are gone
from the store."""

from __future__ import annotations

import pytest
from django.test import Client

from imports import actions
from imports.actions import ImportOptions, ImportRejected
from imports.jobs import run_import
from imports.models import ImportRequest
from registry import approvals
from registry.models import AuditEvent, ImportPolicy, ModelVersion, VersionApproval
from registry.verify import VerificationError, verify_model_artifact
from tests.factories import make_registry_admin, make_user, signed_in, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def approval_needed(aegis_s3, seaweedfs, s3_bucket):
    policy = ImportPolicy.current()
    policy.require_approval = True
    policy.save()
    return aegis_s3


@pytest.fixture
def ivy():
    """An importer who is also a registry admin."""
    user = make_registry_admin("ivy")
    user.groups.add(*make_user("ivy-groups", "importer").groups.all())
    return user


def import_as(user, version: str = "1") -> ImportRequest:
    request = actions.start_import(
        ImportOptions("acme/tiny-bert", "tiny-bert", version, upload_s3=True, register=True),
        actor=user.get_username(),
        user=user,
        enqueue=False,
    )
    run_import(request.pk)
    request.refresh_from_db()
    return request


def bucket_keys(seaweedfs, bucket: str) -> list[str]:
    listing = seaweedfs.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_an_import_ends_awaiting_approval_signed_and_stored_but_not_active(
    approval_needed, ivy, seaweedfs, s3_bucket
):
    request = import_as(ivy)

    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    version = ModelVersion.objects.get()
    assert version.status == ModelVersion.Status.AWAITING
    approval = VersionApproval.objects.get(version=version)
    assert (approval.requested_by, approval.decision) == ("ivy", "pending")
    assert AuditEvent.objects.filter(action="approval.requested", object_id=version.pk).exists()
    assert len(bucket_keys(seaweedfs, s3_bucket)) == 4  # tarball, .model.sig, attestation, json
    page = signed_in(ivy).get(f"/imports/{request.pk}/").content.decode()
    assert 'id="awaiting-approval"' in page


def test_the_requester_cannot_approve_even_as_a_registry_admin_another_admin_can(
    approval_needed, ivy, rosa
):
    import_as(ivy)
    version = ModelVersion.objects.get()
    ivy_client = signed_in(ivy)

    page = ivy_client.get(version.get_absolute_url()).content.decode()
    assert 'id="approval-form"' not in page and "another registry admin decides" in page
    refused = ivy_client.post(
        f"/registry/tiny-bert/{version.version}/approval/",
        {"decision": "approve", "reason": "looks fine to me"},
    )
    assert refused.status_code == 409 and "ivy requested this import" in refused.content.decode()
    with pytest.raises(approvals.ApprovalError, match="another registry admin decides"):
        approvals.approve(version, user=ivy, reason="mine")
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.AWAITING

    rosa_client = signed_in(rosa)
    assert 'id="approval-form"' in rosa_client.get(version.get_absolute_url()).content.decode()
    response = rosa_client.post(
        f"/registry/tiny-bert/{version.version}/approval/",
        {"decision": "approve", "reason": "scans clean, license on the list"},
    )
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.ACTIVE
    approval = VersionApproval.objects.get(version=version)
    assert (approval.decision, approval.decided_by) == ("approved", "rosa")
    event = AuditEvent.objects.get(action="approval.approved")
    assert event.actor == "rosa" and event.details["requested_by"] == "ivy"
    page = rosa_client.get(version.get_absolute_url()).content.decode()
    assert "approved by rosa" in page and "scans clean, license on the list" in page


def test_an_importer_who_is_no_registry_admin_cannot_decide(approval_needed, ivy, alice):
    import_as(ivy)
    version = ModelVersion.objects.get()
    response = signed_in(alice).post(
        f"/registry/tiny-bert/{version.version}/approval/",
        {"decision": "approve", "reason": "please"},
    )
    assert response.status_code == 403
    assert signed_in(alice).get("/registry/-/approvals/").status_code == 403


def test_an_awaiting_version_is_not_downloadable_served_or_verifiable_as_active(
    approval_needed, ivy, rosa
):
    import_as(ivy)
    version = ModelVersion.objects.get()
    client = signed_in(rosa)

    download = client.get(f"/registry/tiny-bert/{version.version}/download/artifact/")
    assert download.status_code == 409 and "awaits approval" in download.content.decode()
    assert download["X-Aegis-Version-Status"] == "awaiting"
    token = token_for(make_user("vera", "viewer"), "pulls")
    served = Client().get(
        f"/hf/api/models/aegis/tiny-bert/revision/{version.version}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert served.status_code == 403 and "awaits approval" in served.content.decode()
    main = Client().get(
        "/hf/api/models/aegis/tiny-bert/revision/main",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert main.status_code == 404  # no active version to serve as main
    with pytest.raises(VerificationError, match="awaiting"):
        verify_model_artifact(version, extract=False)
    queue = client.get("/registry/-/approvals/").content.decode()
    assert f'data-version="tiny-bert {version.version}"' in queue


def test_a_rejected_version_loses_its_objects_and_is_never_imported_again(
    approval_needed, ivy, rosa, seaweedfs, s3_bucket
):
    import_as(ivy)
    version = ModelVersion.objects.get()
    assert bucket_keys(seaweedfs, s3_bucket)

    response = signed_in(rosa).post(
        f"/registry/tiny-bert/{version.version}/approval/",
        {"decision": "reject", "reason": "license not cleared"},
    )

    assert response.status_code == 302
    assert bucket_keys(seaweedfs, s3_bucket) == []
    version.refresh_from_db()
    assert (version.status, version.status_reason) == ("rejected", "license not cleared")
    event = AuditEvent.objects.get(action="approval.rejected")
    assert event.actor == "rosa" and len(event.details["removed"]) == 4
    record = signed_in(rosa).get(f"/registry/tiny-bert/{version.version}/download/record/")
    assert record.status_code == 410
    with pytest.raises(ImportRejected, match="rejected"):
        actions.request_import(
            ImportOptions("acme/tiny-bert", "tiny-bert", "2", upload_s3=True, register=True),
            actor="ivy",
            enqueue=False,
        )
    with pytest.raises(approvals.ApprovalError, match="awaits no approval"):
        approvals.approve(version, user=rosa, reason="changed my mind")
