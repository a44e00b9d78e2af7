"""Policy gates on imports, as people see them: the import page names the rule and the reason,
a registry admin overrides a block once with a reason, and everything lands on the audit trail.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.urls import reverse

from devservers.hub_double import safetensors_bytes
from imports import actions
from imports.actions import ImportOptions, ImportRejected
from imports.jobs import run_import
from imports.models import ImportRequest
from registry.models import AuditEvent, ImportPolicy, ModelVersion, PolicyOverride

pytestmark = pytest.mark.django_db


class RunsCode:
    """Pickles to a call of os.system (never unpickled here)."""

    def __reduce__(self):
        return (os.system, ("echo owned-by-pickle",))


def start(repo_id: str, name: str, version: str = "1", **options) -> ImportRequest:
    return actions.start_import(
        ImportOptions(repo_id, name, version, **options), actor="alice", enqueue=False
    )


def files_downloaded(double, repo_id: str, since: int = 0) -> list[str]:
    """Paths of `repo_id` whose bytes or file metadata the double was asked for."""
    return [
        entry.path
        for entry in list(double.requests)[since:]
        if (entry.served_file and entry.served_file[0] == repo_id)
        or f"/{repo_id}/resolve/" in entry.path
        or entry.listener == "cdn"
    ]


def stored_record(request: ImportRequest) -> dict:
    return json.loads(Path(urlparse(request.result["record_url"]).path).read_bytes())


def statement_of(version: ModelVersion) -> dict:
    return json.loads(base64.b64decode(version.attestation["dsseEnvelope"]["payload"]))


def page(client, request: ImportRequest) -> str:
    response = client.get(reverse("imports:detail", args=[request.pk]))
    assert response.status_code == 200
    return response.content.decode()


# --- must show 1: a pickle that runs code is blocked; the same repo's safetensors import ----


@pytest.fixture
def mixed_repo(aegis, fresh_hub_double):
    fresh_hub_double.add_repo(
        "acme/mixed",
        {
            "config.json": json.dumps({"model_type": "mlp"}),
            "model.safetensors": safetensors_bytes(7),
            "pytorch_model.bin": pickle.dumps({"weights": RunsCode()}, protocol=2),
        },
        card_data={"license": "mit"},
    )
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    return fresh_hub_double


def test_a_pickle_calling_os_system_is_blocked_and_named_on_the_import_page(
    mixed_repo, alice_client
):
    request = start("acme/mixed", "mixed")
    assert run_import(request.pk) == "failed"
    request.refresh_from_db()
    assert request.stage == "stream"  # scanned as the file arrived
    assert request.error_code == "policy:dangerous_pickle"
    html = page(alice_client, request)
    assert "Blocked by policy: dangerous_pickle" in html
    assert "pytorch_model.bin imports posix.system (os.system)" in html
    assert 'id="override-form"' not in html  # importers cannot override
    assert not ModelVersion.objects.exists()


def test_the_same_repo_with_only_safetensors_imports_fine(mixed_repo, alice_client):
    request = start("acme/mixed", "mixed", include=["*.safetensors", "*.json"])
    assert run_import(request.pk) == "succeeded"
    version = ModelVersion.objects.get()
    assert sorted(item["path"] for item in version.manifest) == [
        "config.json",
        "model.safetensors",
    ]
    # no pickle verdict: only the safetensors header check, which proved the weights safe
    assert [(item["path"], item["verdict"]) for item in version.scan_results] == [
        ("model.safetensors", "safe")
    ]
    assert version.scan_results[0]["scanner"].startswith("aegis safetensors ")
    assert "Blocked by policy" not in page(alice_client, request)


def test_a_pickle_named_like_safetensors_is_found_by_its_bytes(aegis, fresh_hub_double):
    fresh_hub_double.add_repo(
        "acme/disguised",
        {"model.safetensors": pickle.dumps({"weights": RunsCode()}, protocol=4)},
        card_data={"license": "mit"},
    )
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    request = start("acme/disguised", "disguised")
    assert run_import(request.pk) == "failed"
    request.refresh_from_db()
    assert request.error_code == "policy:dangerous_pickle"
    assert "model.safetensors imports posix.system" in request.error


def test_verdicts_reach_aegis_json_the_signed_statement_and_the_provenance_page(
    aegis, alice_client
):
    request = start("acme/pickled-net", "pickled-net")
    assert run_import(request.pk) == "succeeded"
    request.refresh_from_db()
    version = ModelVersion.objects.get()
    [verdict] = version.scan_results
    assert (verdict["path"], verdict["verdict"], verdict["globals"]) == (
        "pytorch_model.bin",
        "safe",
        [],
    )
    record = stored_record(request)
    assert record["scan"]["scanner"].startswith("picklescan ")
    assert [(item["path"], item["verdict"]) for item in record["scan"]["files"]] == [
        ("pytorch_model.bin", "safe")
    ]
    assert record["policy"]["rules"]["pickle_policy"] == "block_dangerous"
    statement = statement_of(version)
    byproduct, record = statement["predicate"]["runDetails"]["byproducts"]
    assert record["name"] == "aegis.json"  # the import record beside the tarball, signed too
    assert byproduct["name"] == "pickle-scan/pytorch_model.bin"
    assert byproduct["annotations"]["verdict"] == "safe"
    sha256 = {item["path"]: item["sha256"] for item in version.manifest}["pytorch_model.bin"]
    assert byproduct["digest"] == {"sha256": sha256}
    policy = statement["predicate"]["buildDefinition"]["internalParameters"]["policy"]
    assert policy["rules"]["pickle_policy"] == "block_dangerous"
    html = alice_client.get(version.get_absolute_url()).content.decode()
    assert 'data-path="pytorch_model.bin" data-verdict="safe"' in html
    assert 'id="import-policy"' in html


def test_safetensors_only_stops_pickle_files_before_download(aegis, alice_client):
    policy = ImportPolicy.current()
    policy.pickle_policy = ImportPolicy.PicklePolicy.SAFETENSORS_ONLY
    policy.save()
    logged = len(aegis.hub.requests)
    request = start("acme/pickled-net", "pickled-net")
    assert run_import(request.pk) == "failed"
    request.refresh_from_db()
    assert (request.stage, request.error_code) == ("preflight", "policy:safetensors_only")
    assert files_downloaded(aegis.hub, "acme/pickled-net", since=logged) == []
    assert "pytorch_model.bin" in page(alice_client, request)


# --- must show 2: a license outside the allow-list; an admin's override with a reason -------


@pytest.fixture
def nc_repo(aegis, fresh_hub_double):
    fresh_hub_double.add_repo(
        "acme/non-commercial",
        {"config.json": "{}", "model.safetensors": safetensors_bytes(8)},
        card_data={"license": "cc-by-nc-4.0"},
    )
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    return fresh_hub_double


def set_allow_list(client, licenses: str):
    url = reverse("admin:registry_importpolicy_change", args=[ImportPolicy.current().pk])
    return client.post(
        url,
        {
            "allowed_licenses": licenses,
            "unknown_license": "block",
            "pickle_policy": "block_dangerous",
            "max_import_bytes": "",
            "remote_code": "warn",
            "malformed_weights": "warn",
            "template_injection": "block",
            "keras_code": "block",
            "onnx_external_data": "block",
            "onnx_custom_ops": "warn",
            "_save": "Save",
        },
    )


def test_an_admin_edit_of_the_policy_is_audited_with_before_and_after(rosa):
    from tests.factories import signed_in

    response = set_allow_list(signed_in(rosa), "mit, Apache-2.0")
    assert response.status_code == 302, response.content.decode()[:2000]
    policy = ImportPolicy.current()
    assert policy.allowed_licenses == ["MIT", "Apache-2.0"]
    event = AuditEvent.objects.get(action="policy.edited")
    assert event.actor == "rosa"
    assert event.details["changes"] == {
        "allowed_licenses": {"before": [], "after": ["MIT", "Apache-2.0"]},
        "unknown_license": {"before": "warn", "after": "block"},
    }


def test_the_admin_refuses_a_license_that_is_not_an_spdx_id(rosa):
    from tests.factories import signed_in

    response = set_allow_list(signed_in(rosa), "MIT, totally-free")
    assert response.status_code == 200
    assert "totally-free" in response.content.decode()
    assert ImportPolicy.current().allowed_licenses == []
    assert not AuditEvent.objects.filter(action="policy.edited").exists()


def test_a_license_outside_the_allow_list_stops_before_download_until_an_admin_overrides(
    nc_repo, rosa, alice_client
):
    from tests.factories import signed_in

    rosa_client = signed_in(rosa)
    assert set_allow_list(rosa_client, "MIT, Apache-2.0").status_code == 302
    request = start("acme/non-commercial", "nc-model")
    assert run_import(request.pk) == "failed"
    request.refresh_from_db()
    assert (request.stage, request.error_code) == ("preflight", "policy:license")
    assert files_downloaded(nc_repo, "acme/non-commercial") == []

    html = page(alice_client, request)
    assert "Blocked by policy: license" in html
    assert "CC-BY-NC-4.0 is not on the allow-list (Apache-2.0, MIT)" in html
    assert 'id="override-form"' not in html
    override_url = reverse("imports:override", args=[request.pk])
    assert alice_client.post(override_url, {"reason": "I want it"}).status_code == 403

    assert 'id="override-form"' in page(rosa_client, request)
    refused = rosa_client.post(override_url, {"reason": " "})
    assert refused.status_code == 400
    assert 'id="override-error"' in refused.content.decode()
    assert not PolicyOverride.objects.exists()

    reason = "legal approved internal research use (ticket LEG-42)"
    response = rosa_client.post(override_url, {"reason": reason})
    assert response.status_code == 303
    request.refresh_from_db()
    assert request.status == ImportRequest.Status.QUEUED
    granted = AuditEvent.objects.get(action="policy.override_granted")
    assert (granted.actor, granted.object_id) == ("rosa", str(request.pk))
    assert granted.details["rule"] == "license"
    assert granted.details["reason"] == reason

    assert run_import(request.pk) == "succeeded"
    request.refresh_from_db()
    override = PolicyOverride.objects.get()
    assert override.used_at is not None
    assert request.events.filter(message__contains="policy rule license overridden").exists()
    html = page(alice_client, request)
    assert 'id="policy-overrides"' in html and reason in html

    version = ModelVersion.objects.get()
    [recorded] = version.import_options["policy"]["overrides"]
    assert (recorded["rule"], recorded["granted_by"], recorded["reason"]) == (
        "license",
        "rosa",
        reason,
    )
    assert stored_record(request)["policy"]["overrides"] == [
        {"rule": "license", "reason": reason, "granted_by": "rosa"}
    ]
    internal = statement_of(version)["predicate"]["buildDefinition"]["internalParameters"]
    assert internal["policy"]["overrides"][0]["reason"] == reason
    assert reason in alice_client.get(version.get_absolute_url()).content.decode()
    actions_on_trail = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"policy.edited", "policy.override_granted"} <= actions_on_trail


def test_an_override_covers_only_its_own_import(nc_repo, rosa):
    policy = ImportPolicy.current()
    policy.allowed_licenses = ["MIT"]
    policy.save()
    first = start("acme/non-commercial", "nc-model")
    assert run_import(first.pk) == "failed"
    first.refresh_from_db()
    from registry.actions import grant_policy_override

    grant_policy_override(first, reason="approved once", actor="rosa", user=rosa)
    second = start("acme/non-commercial", "nc-model", version="2")
    assert run_import(second.pk) == "failed"
    second.refresh_from_db()
    assert second.error_code == "policy:license"


def test_a_floating_revision_is_refused_at_once_when_commits_are_required(aegis):
    policy = ImportPolicy.current()
    policy.require_commit = True
    policy.save()
    with pytest.raises(ImportRejected, match="Blocked by policy: require_commit"):
        start("acme/tiny-bert", "tiny-bert", revision="main")
    commit = aegis.hub.demo.latest("acme/tiny-bert")
    request = start("acme/tiny-bert", "tiny-bert", revision=commit)
    assert run_import(request.pk) == "succeeded"


def test_the_hub_model_page_warns_that_the_policy_blocks_the_license(nc_repo, alice_client):
    policy = ImportPolicy.current()
    policy.allowed_licenses = ["MIT"]
    policy.save()
    html = alice_client.get("/hub/acme/non-commercial/").content.decode()
    assert "The import policy blocks this model (license)" in html
    assert "CC-BY-NC-4.0 is not on the allow-list (MIT)" in html


def test_the_audit_page_lists_the_policy_edit_and_the_override(nc_repo, rosa):
    from tests.factories import signed_in

    rosa_client = signed_in(rosa)
    assert set_allow_list(rosa_client, "MIT").status_code == 302
    request = start("acme/non-commercial", "nc-model")
    assert run_import(request.pk) == "failed"
    response = rosa_client.post(
        reverse("imports:override", args=[request.pk]), {"reason": "approved by legal"}
    )
    assert response.status_code == 303
    html = rosa_client.get("/audit/").content.decode()
    assert "import policy edited" in html
    assert "policy override granted" in html
    assert "approved by legal" in html


def test_registry_admins_reach_the_one_policy_page_and_others_do_not(rosa, alice_client):
    from tests.factories import signed_in

    rosa_client = signed_in(rosa)
    response = rosa_client.get("/admin/registry/importpolicy/")
    assert response.status_code == 302
    change = rosa_client.get(response["Location"])
    assert change.status_code == 200
    assert 'name="allowed_licenses"' in change.content.decode()
    assert alice_client.get("/admin/registry/importpolicy/").status_code == 403
