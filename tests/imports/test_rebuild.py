"""Issue 17 part 2: ``manage.py rebuild`` rebuilds a version from the Hub at its pinned commit and
compares bytes; two independent installations importing the same commit get the same tarball;
the provenance page offers the rebuild to auditors as a background job recorded on the trail."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path

import django_rq
import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from aegis_catalog import services
from imports.jobs import rebuild_job
from imports.packaging import BLOCK_SIZE, package_snapshot
from registry.audit import Action
from registry.models import AuditEvent, ModelVersion
from tests.factories import make_version, member_bytes, process_env, signed_in

pytestmark = pytest.mark.django_db
BASE_DIR = Path(__file__).resolve().parents[2]


def new_repo(hub, weights_size: int = 300_000) -> str:
    """A repo of this test's own: a small file, a config and an LFS weight file."""
    repo_id = f"acme/rebuild-{uuid.uuid4().hex[:8]}"
    hub.add_repo(
        repo_id,
        {
            "config.json": '{"hidden_size": 8}\n',
            "model.safetensors": os.urandom(weights_size),
            "tokenizer/vocab.txt": "a\nb\nc\n",
        },
        lfs_paths=["model.safetensors"],
    )
    return repo_id


def imported(repo_id: str, name: str = "rebuilt", version: str = "1.0") -> ModelVersion:
    call_command(
        "hf_import", "--repo-id", repo_id, "--model-name", name, "--version", version,
        "--register", "--no-progress",
    )  # fmt: skip
    return ModelVersion.objects.get(model__name=name, version=version)


def rebuild(name: str, version: str) -> str:
    out = io.StringIO()
    call_command("rebuild", name, version, stdout=out)
    return out.getvalue()


def repack(stored: Path, change: Callable[[tarfile.TarInfo, bytes | None], bytes | None]) -> None:
    """Rewrite a stored tarball member by member, passing each through ``change``."""
    with tarfile.open(stored) as original:
        members = [(member, member_bytes(original, member) if member.isfile() else None)
                   for member in original.getmembers()]  # fmt: skip
    with tarfile.open(stored, "w:gz") as repacked:
        for member, content in members:
            content = change(member, content)
            repacked.addfile(member, io.BytesIO(content) if content is not None else None)


def test_a_fresh_import_is_reproduced(aegis):
    version = imported(new_repo(aegis.hub))

    output = rebuild("rebuilt", "1.0")

    assert f"sha256 {version.sha256}" in output
    assert output.rstrip().endswith("reproduced")
    assert not list(Path(aegis.work_dir).glob("aegis-rebuild-*"))  # the scratch dir is gone


def test_a_new_commit_at_the_same_revision_does_not_change_the_rebuild(aegis):
    repo_id = new_repo(aegis.hub)
    version = imported(repo_id)
    aegis.hub.add_commit(repo_id, {"config.json": '{"hidden_size": 16}\n'})
    assert aegis.hub.resolve(repo_id) != version.source_commit

    output = rebuild("rebuilt", "1.0")

    assert f"at commit {version.source_commit}" in output
    assert output.rstrip().endswith("reproduced")


def test_an_artifact_packaged_differently_is_named_by_its_first_difference(aegis):
    version = imported(new_repo(aegis.hub))
    stored = Path(version.model_path.removeprefix("file://"))

    def later_mtime(member: tarfile.TarInfo, content: bytes | None) -> bytes | None:
        # The same files, one with another mtime: what a non-reproducible packager would do.
        if member.name.endswith("/model/config.json"):
            member.mtime += 60
        return content

    repack(stored, later_mtime)
    ModelVersion.objects.filter(pk=version.pk).update(sha256=_sha256(stored))

    with pytest.raises(CommandError) as refused:
        rebuild("rebuilt", "1.0")

    assert refused.value.returncode == 1
    assert "differs: the header of 'rebuilt-1.0/model/config.json': mtime" in str(refused.value)


def test_a_tampered_stored_artifact_is_not_reproduced_though_its_row_is_intact(aegis):
    version = imported(new_repo(aegis.hub))
    stored = Path(version.model_path.removeprefix("file://"))

    def tamper(member: tarfile.TarInfo, content: bytes | None) -> bytes | None:
        if member.name.endswith("/model/config.json"):
            return b'{"hidden_size": 9}\n'  # as long as the original: only the bytes differ
        return content

    repack(stored, tamper)

    with pytest.raises(CommandError) as refused:
        rebuild("rebuilt", "1.0")

    assert refused.value.returncode == 1
    assert "differs: the content of 'rebuilt-1.0/model/config.json'" in str(refused.value)


def restore_in_layout_2(version: ModelVersion, scratch: Path) -> str:
    """Package the stored artifact's files again in layout 2 (every block deflated), put that
    in the store in its place and record layout 2, as an import before layout 3 left it."""
    stored = Path(version.model_path.removeprefix("file://"))
    with tarfile.open(stored) as tar:
        members = [member for member in tar.getmembers() if "/model/" in member.name]
        files = {}
        for member in members:
            if member.isfile():
                relative = member.name.split("/model/", 1)[1]
                files[relative] = scratch / relative
                files[relative].parent.mkdir(parents=True, exist_ok=True)
                files[relative].write_bytes(member_bytes(tar, member))
    layout_2 = package_snapshot(
        stored, root_name="rebuilt-1.0", model_files=files, mtime=int(members[0].mtime), layout=2
    )
    ModelVersion.objects.filter(pk=version.pk).update(
        sha256=layout_2.sha256, import_options={**version.import_options, "layout": 2}
    )
    return layout_2.sha256


def test_a_version_stored_in_layout_2_is_rebuilt_in_layout_2(aegis, tmp_path):
    # A 4 MiB block of nothing but random weights: layout 3 stores it, layout 2 deflated it.
    version = imported(new_repo(aegis.hub, weights_size=2 * BLOCK_SIZE + 1_000_000))
    assert version.import_options["layout"] == 3
    assert rebuild("rebuilt", "1.0").rstrip().endswith("reproduced")

    layout_2_sha256 = restore_in_layout_2(version, tmp_path)

    assert layout_2_sha256 != version.sha256
    output = rebuild("rebuilt", "1.0")
    assert f"sha256 {layout_2_sha256}" in output
    assert output.rstrip().endswith("reproduced")


def test_a_layout_3_artifact_recorded_as_layout_2_is_not_reproduced(aegis):
    version = imported(new_repo(aegis.hub, weights_size=2 * BLOCK_SIZE + 1_000_000))
    options = {**version.import_options, "layout": 2}
    ModelVersion.objects.filter(pk=version.pk).update(import_options=options)

    with pytest.raises(CommandError) as refused:
        rebuild("rebuilt", "1.0")

    assert refused.value.returncode == 1
    assert "differs: the gzip stream (every member is the same)" in str(refused.value)


def test_a_missing_stored_artifact_is_not_reproduced(aegis):
    version = imported(new_repo(aegis.hub))
    Path(version.model_path.removeprefix("file://")).unlink()
    out = io.StringIO()

    with pytest.raises(CommandError) as refused:
        call_command("rebuild", "rebuilt", "1.0", stdout=out)

    assert refused.value.returncode == 1
    assert f"sha256 {version.sha256}" in out.getvalue()  # the rebuild itself matched the row
    assert "the stored artifact could not be read" in str(refused.value)
    assert "does not exist" in str(refused.value)


def test_a_registered_digest_that_is_not_the_stored_artifacts_is_named(aegis):
    version = imported(new_repo(aegis.hub))
    ModelVersion.objects.filter(pk=version.pk).update(sha256="0" * 64)

    with pytest.raises(CommandError) as refused:
        rebuild("rebuilt", "1.0")

    assert refused.value.returncode == 1
    assert (
        f"differs: the registered sha256 {'0' * 64} is not the stored artifact's "
        f"{version.sha256}, which the rebuild reproduced"
    ) in str(refused.value)


def test_a_version_stored_in_s3_is_read_back_from_the_bucket(aegis_s3):
    repo_id = new_repo(aegis_s3.hub)
    call_command(
        "hf_import", "--repo-id", repo_id, "--model-name", "rebuilt", "--version", "1.0",
        "--upload-s3", "--register", "--no-progress",
    )  # fmt: skip
    version = ModelVersion.objects.get()
    assert version.model_path.startswith("s3://")

    assert rebuild("rebuilt", "1.0").rstrip().endswith("reproduced")

    store = services.store_for(version.model_path)
    store.delete(version.model_path)
    with pytest.raises(CommandError) as refused:
        rebuild("rebuilt", "1.0")
    assert refused.value.returncode == 1
    assert "the stored artifact could not be read" in str(refused.value)


def test_a_pinned_commit_gone_from_the_hub_is_refused_with_exit_code_2(aegis):
    version = imported(new_repo(aegis.hub))
    gone = "f" * 40  # as after a force-push that rewrote the history
    ModelVersion.objects.filter(pk=version.pk).update(source_commit=gone)

    with pytest.raises(CommandError) as refused:
        rebuild("rebuilt", "1.0")

    assert refused.value.returncode == 2
    assert f"The pinned commit {gone} of {version.source_repo} is no longer on the Hub" in str(
        refused.value
    )
    assert not list(Path(aegis.work_dir).glob("aegis-rebuild-*"))


def test_files_the_hub_serves_corrupted_are_refused_not_blamed_on_the_artifact(aegis):
    repo_id = new_repo(aegis.hub)
    imported(repo_id)
    aegis.hub.corrupt(repo_id, "model.safetensors")  # same size, other bytes, true digests

    with pytest.raises(CommandError) as refused:
        rebuild("rebuilt", "1.0")

    assert refused.value.returncode == 2
    assert "model.safetensors: sha256" in str(refused.value)
    assert "differs from the Hub's LFS sha256" in str(refused.value)
    assert "the stored artifact was not compared" in str(refused.value)
    assert not list(Path(aegis.work_dir).glob("aegis-rebuild-*"))


def test_an_unreachable_hub_is_refused_with_exit_code_2(aegis):
    imported(new_repo(aegis.hub))
    aegis.settings.HF_ENDPOINT = f"http://127.0.0.1:{closed_port()}"
    aegis.settings.AEGIS_HUB_RETRIES = 0

    with pytest.raises(CommandError) as refused:
        rebuild("rebuilt", "1.0")

    assert refused.value.returncode == 2
    assert "Cannot reach the Hub at http://127.0.0.1:" in str(refused.value)
    assert not list(Path(aegis.work_dir).glob("aegis-rebuild-*"))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_it_refuses_what_it_cannot_rebuild_with_exit_code_2(aegis):
    make_version("old-layout", "1.0")  # a row with no layout recorded: layout 1
    newer = make_version("new-layout", "1.0")
    ModelVersion.objects.filter(pk=newer.pk).update(import_options={"layout": 4})  # newer Aegis

    for name, version, message in (
        ("old-layout", "1.0", "layout 1"),
        ("new-layout", "1.0", "layout 4, which this version of Aegis cannot package"),
        ("nothing", "9.9", "There is no registered version nothing 9.9"),
    ):
        with pytest.raises(CommandError) as refused:
            rebuild(name, version)
        assert refused.value.returncode == 2
        assert message in str(refused.value)


def test_the_rebuild_job_records_its_result_on_the_audit_trail(aegis):
    version = imported(new_repo(aegis.hub))

    assert rebuild_job(version.pk, "charlie") == "reproduced"
    ModelVersion.objects.filter(pk=version.pk).update(sha256="0" * 64)
    assert rebuild_job(version.pk, "charlie") == "differs"

    passed, failed = AuditEvent.objects.filter(action=Action.VERSION_REBUILT).order_by("sequence")
    assert passed.details["reproduced"] is True
    assert passed.details["rebuilt_sha256"] == version.sha256
    assert (failed.actor, failed.object_id) == ("charlie", str(version.pk))
    assert failed.details["reproduced"] is False and failed.details["difference"]


def test_the_rebuild_job_records_a_rebuild_it_could_not_make(aegis):
    version = imported(new_repo(aegis.hub))
    aegis.settings.HF_ENDPOINT = f"http://127.0.0.1:{closed_port()}"
    aegis.settings.AEGIS_HUB_RETRIES = 0

    assert rebuild_job(version.pk, "charlie") == "failed"

    event = AuditEvent.objects.get(action=Action.VERSION_REBUILT)
    assert event.details["reproduced"] is False
    assert "Cannot reach the Hub" in event.details["error"]
    assert "rebuilt_sha256" not in event.details


def test_the_rebuild_job_records_an_unexpected_failure_by_its_type_only(aegis, monkeypatch):
    version = imported(new_repo(aegis.hub))

    def broken_download(*args: object, **kwargs: object) -> None:
        raise RuntimeError("token=hf_secret in an unexpected message")

    monkeypatch.setattr("imports.rebuild.download_files", broken_download)

    with pytest.raises(RuntimeError):  # re-raised: the worker marks the job failed
        rebuild_job(version.pk, "charlie")

    event = AuditEvent.objects.get(action=Action.VERSION_REBUILT)
    assert event.details["reproduced"] is False
    assert event.details["error"] == (
        "the rebuild failed unexpectedly (RuntimeError); see the worker log"
    )


def test_the_rebuild_job_records_a_tampered_stored_artifact(aegis, charlie):
    version = imported(new_repo(aegis.hub))
    stored = Path(version.model_path.removeprefix("file://"))
    repack(stored, lambda member, content: content)  # the same members, other gzip bytes

    assert rebuild_job(version.pk, "charlie") == "differs"

    event = AuditEvent.objects.get(action=Action.VERSION_REBUILT)
    assert event.details["rebuilt_sha256"] == version.sha256
    assert event.details["stored_sha256"] == _sha256(stored) != version.sha256
    assert event.details["difference"] == "the gzip stream (every member is the same)"
    timeline = signed_in(charlie).get("/registry/rebuilt/1.0/").content.decode()
    assert "rebuilt from the Hub" in timeline and event.details["stored_sha256"] in timeline


def test_auditors_queue_a_rebuild_from_the_provenance_page(
    aegis, charlie, bob_client, django_capture_on_commit_callbacks
):
    version = imported(new_repo(aegis.hub))
    url = "/registry/rebuilt/1.0/rebuild/"
    queue = django_rq.get_queue("imports")
    queue.empty()

    assert bob_client.post(url).status_code == 403  # a viewer
    auditor = signed_in(charlie)
    assert 'id="rebuild-button"' in auditor.get("/registry/rebuilt/1.0/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = auditor.post(url, follow=True)

    assert response.redirect_chain[-1][0] == "/registry/rebuilt/1.0/"
    assert "rebuild of rebuilt 1.0 from the Hub is queued" in response.content.decode()
    jobs = queue.get_jobs()
    assert [(job.func_name, job.args[:2]) for job in jobs] == [
        ("imports.jobs.rebuild_job", (version.pk, "charlie"))
    ]
    queue.empty()


def test_only_auditors_and_registry_admins_may_queue_a_rebuild(
    aegis, alice, bob, nobody, rosa, django_capture_on_commit_callbacks
):
    imported(new_repo(aegis.hub))
    url = "/registry/rebuilt/1.0/rebuild/"
    queue = django_rq.get_queue("imports")
    queue.empty()

    anonymous = Client().post(url)
    assert anonymous.status_code == 302 and "/login" in anonymous["Location"]
    for user in (alice, bob, nobody):  # an importer, a viewer, no group
        client = signed_in(user)
        refused = client.post(url)
        assert refused.status_code == 403
        assert "auditor or registry-admin group to rebuild a version" in refused.content.decode()
        if user is not nobody:  # the page itself is for the browsing groups
            page = client.get("/registry/rebuilt/1.0/").content.decode()
            assert 'id="rebuild-button"' not in page
    assert queue.count == 0
    assert signed_in(rosa).get(url).status_code == 405  # a POST only
    with django_capture_on_commit_callbacks(execute=True):
        assert signed_in(rosa).post(url).status_code == 303

    assert [job.args[:2] for job in queue.get_jobs()] == [(ModelVersion.objects.get().pk, "rosa")]
    queue.empty()


def test_a_rebuild_asked_for_with_the_queue_down_says_so(aegis, charlie, monkeypatch):
    imported(new_repo(aegis.hub))
    for queue in aegis.settings.RQ_QUEUES.values():
        monkeypatch.setitem(queue, "URL", f"redis://127.0.0.1:{closed_port()}/0")

    response = signed_in(charlie).post("/registry/rebuilt/1.0/rebuild/", follow=True)

    assert response.redirect_chain[-1] == ("/registry/rebuilt/1.0/", 303)
    page = response.content.decode()
    assert "The import queue is unavailable (Redis does not answer): nothing was started" in page
    assert "is queued" not in page
    assert not AuditEvent.objects.filter(action=Action.VERSION_REBUILT).exists()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- two independent installations ----------------------------------------------------------


def installation(aegis, directory: Path) -> dict[str, str]:
    """An Aegis of its own (database, artifact and work directories); the same Hub and the
    same Vault key as the other."""
    return process_env(
        directory,
        REDIS_URL=aegis.settings.RQ_QUEUES["imports"]["URL"],
        HF_ENDPOINT=aegis.hub.url,
        VAULT_ADDR=aegis.openbao.addr,
        VAULT_TOKEN=aegis.openbao.root_token,
    )


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip


def test_two_independent_installations_build_the_same_tarball_and_each_reproduces_it(
    aegis, tmp_path
):
    repo_id = new_repo(aegis.hub)
    digests = []
    for number in (1, 2):
        env = installation(aegis, tmp_path / f"aegis-{number}")
        assert manage(env, "migrate", "-v0").returncode == 0
        run = manage(
            env, "hf_import", "--repo-id", repo_id, "--model-name", "twin", "--version", "1.0",
            "--register", "--no-progress",
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        tarballs = list((tmp_path / f"aegis-{number}" / "artifacts").rglob("twin-1.0.tar.gz"))
        assert len(tarballs) == 1
        digests.append(_sha256(tarballs[0]))
        check = manage(env, "rebuild", "twin", "1.0")
        assert check.returncode == 0, check.stderr
        assert check.stdout.rstrip().endswith("reproduced")
        assert f"sha256 {digests[-1]}" in check.stdout

    assert digests[0] == digests[1]
    unknown = manage(env, "rebuild", "twin", "9.9")
    assert unknown.returncode == 2
    assert "There is no registered version twin 9.9." in unknown.stderr
    assert "Traceback" not in unknown.stderr
