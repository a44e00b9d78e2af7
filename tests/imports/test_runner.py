"""The runner: orphans removed when registration fails, resumed stages, cancellation."""

from __future__ import annotations

import tarfile
from pathlib import Path
from unittest import mock

import pytest

from aegis_catalog.lib.vault import VaultUnreachable
from imports import actions, pipeline
from imports.actions import ImportOptions
from imports.jobs import run_import
from imports.models import ImportRequest
from imports.packaging import ARTIFACT_LAYOUT
from registry.models import ModelVersion

pytestmark = pytest.mark.django_db


def stored_tarballs(environment) -> list[Path]:
    return sorted(Path(environment.artifact_root).rglob("*.tar.gz"))


def test_a_registration_that_loses_a_race_leaves_no_artifact_behind(aegis):
    first = actions.start_import(
        ImportOptions("acme/tiny-bert", "tiny-bert", "1.0", revision="main"),
        actor="alice",
        enqueue=False,
    )
    second = actions.start_import(
        ImportOptions("acme/tiny-bert", "tiny-bert", "1.0", revision="v1.0"),
        actor="bob",
        enqueue=False,
    )
    assert run_import(first.pk) == "succeeded"
    assert run_import(second.pk) == "failed"
    second.refresh_from_db()
    assert second.stage == "register"
    assert "already has a version 1.0" in second.error
    assert ModelVersion.objects.count() == 1
    tarballs = stored_tarballs(aegis)
    assert [path.parent.name for path in tarballs] == [f"import-{first.pk}"]
    assert not any(Path(aegis.artifact_root).rglob(f"import-{second.pk}/*"))


def test_a_retry_skips_the_stages_whose_output_is_still_valid(aegis, transit_key):
    aegis.settings.AEGIS_ONE_PASS_IMPORT = False  # the stages one after the other
    request = actions.start_import(
        ImportOptions("acme/tiny-bert", "tiny-bert", "1.0", sign_key=transit_key),
        actor="alice",
        enqueue=False,
    )
    # Vault refuses the token once: the import fails at signing, after check and scan.
    aegis.settings.VAULT_TOKEN = "wrong"
    assert run_import(request.pk) == "failed"
    request.refresh_from_db()
    assert request.stage == "sign_model"
    assert "permission denied" in request.error
    aegis.settings.VAULT_TOKEN = aegis.openbao.root_token
    actions.retry_import(request, actor="alice", enqueue=False)
    assert run_import(request.pk) == "succeeded"
    skipped = set(request.events.filter(kind="stage_skipped").values_list("stage", flat=True))
    assert {"resolve", "check", "scan"} <= skipped
    assert "download" not in skipped  # always rerun; finished files are kept
    assert ModelVersion.objects.get().signing_key.name == transit_key


def test_a_one_pass_import_failing_after_the_pass_leaves_no_tarball_and_its_retry_redoes_it(
    aegis, transit_key, hub, monkeypatch
):
    request = actions.start_import(
        ImportOptions("acme/tiny-bert", "tiny-bert", "1.0", sign_key=transit_key),
        actor="alice",
        enqueue=False,
    )
    real_attest = pipeline.attest_artifact
    monkeypatch.setattr(
        pipeline, "attest_artifact", mock.Mock(side_effect=VaultUnreachable("down"))
    )
    assert run_import(request.pk) == "failed"
    request.refresh_from_db()
    assert request.stage == "attest"
    assert not stored_tarballs(aegis)  # the pass's tarball went with the failure
    assert "stream" not in request.state

    monkeypatch.setattr(pipeline, "attest_artifact", real_attest)
    fetched = len(hub.requests)
    actions.retry_import(request, actor="alice", enqueue=False)
    assert run_import(request.pk) == "succeeded"
    request.refresh_from_db()
    skipped = set(request.events.filter(kind="stage_skipped").values_list("stage", flat=True))
    assert "resolve" in skipped and "stream" not in skipped
    # Packaged again from the work directory, but for the safetensors shard, which the pass
    # kept in memory only (its header proved it): fetched again, and nothing else.
    again = {entry.served_file for entry in list(hub.requests)[fetched:] if entry.served_file}
    assert again == {("acme/tiny-bert", "model.safetensors")}
    assert ModelVersion.objects.get().sha256 == request.result["sha256"]


def test_a_cancelled_queued_import_never_runs(aegis):
    request = actions.start_import(
        ImportOptions("acme/tiny-bert", "tiny-bert", "1.0"), actor="alice", enqueue=False
    )
    actions.cancel_import(request, actor="alice")
    assert run_import(request.pk) == "skipped"
    request.refresh_from_db()
    assert request.status == ImportRequest.Status.CANCELLED
    assert not stored_tarballs(aegis)


def test_a_retry_scans_again_when_the_policy_became_stricter(aegis, fresh_hub_double):
    from registry import actions as registry_actions
    from registry.models import ImportPolicy

    fresh_hub_double.add_repo(
        "acme/risky",
        {"pytorch_model.bin": b"cos\nsystem\n(S'id'\ntR.", "config.json": "{}"},
        card_data={"license": "mit"},
    )
    aegis.settings.HF_ENDPOINT = fresh_hub_double.url
    registry_actions.edit_import_policy(
        ImportPolicy.current(), {"pickle_policy": "warn_only"}, actor="root"
    )
    request = actions.start_import(
        ImportOptions("acme/risky", "risky", "1.0"), actor="alice", enqueue=False
    )
    aegis.settings.VAULT_TOKEN = "wrong"  # fails at signing, after the scan only warned
    assert run_import(request.pk) == "failed"
    request.refresh_from_db()
    assert request.stage == "sign_model"
    aegis.settings.VAULT_TOKEN = aegis.openbao.root_token
    registry_actions.edit_import_policy(
        ImportPolicy.current(), {"pickle_policy": "block_dangerous"}, actor="root"
    )
    actions.retry_import(request, actor="alice", enqueue=False)
    assert run_import(request.pk) == "failed"
    request.refresh_from_db()
    assert request.error_code == "policy:dangerous_pickle"
    assert "pytorch_model.bin" in request.error
    assert not ModelVersion.objects.exists()


def test_a_retry_repackages_a_tarball_that_older_code_packaged_with_model_sig_inside(
    aegis, monkeypatch
):
    """An import in progress across an upgrade: its saved package stage (layout 1) is not
    reused; the retry packages the new layout and stores model.sig beside the tarball."""
    aegis.settings.AEGIS_ONE_PASS_IMPORT = False
    aegis.settings.AEGIS_STREAM_UPLOADS = False
    request = actions.start_import(
        ImportOptions("acme/tiny-bert", "tiny-bert", "1.0"), actor="alice", enqueue=False
    )
    real_attest = pipeline.attest_artifact
    monkeypatch.setattr(pipeline, "attest_artifact", mock.Mock(side_effect=RuntimeError("down")))
    assert run_import(request.pk) == "failed"
    request.refresh_from_db()
    assert request.stage == "attest"
    # What the code before layout 2 saved for its package stage.
    old = {key: value for key, value in request.state["package"].items() if key != "layout"}
    old["model_sig"] = '{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}\n'
    ImportRequest.objects.filter(pk=request.pk).update(state={**request.state, "package": old})

    monkeypatch.setattr(pipeline, "attest_artifact", real_attest)
    packaged = mock.Mock(wraps=pipeline.package_artifact)
    monkeypatch.setattr(pipeline, "package_artifact", packaged)
    request.refresh_from_db()
    actions.retry_import(request, actor="alice", enqueue=False)
    assert run_import(request.pk) == "succeeded"

    assert packaged.called
    request.refresh_from_db()
    assert request.state["package"]["layout"] == ARTIFACT_LAYOUT
    tarball = Path(request.result["artifact_url"].removeprefix("file://"))
    assert Path(f"{tarball}.model.sig").is_file()
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "tiny-bert-1.0/MANIFEST.sha256" in names
    assert "tiny-bert-1.0/model.sig" not in names
