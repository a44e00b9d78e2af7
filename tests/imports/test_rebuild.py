"""Issue 17 part 2: ``manage.py rebuild`` rebuilds a version from the Hub at its pinned commit and
compares bytes; two independent installations importing the same commit get the same tarball;
the provenance page offers the rebuild to auditors as a background job recorded on the trail."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import django_rq
import pytest
from django.core.management import CommandError, call_command

from imports.jobs import rebuild_job
from registry.audit import Action
from registry.models import AuditEvent, ModelVersion
from tests.factories import make_version, member_bytes, process_env, signed_in

pytestmark = pytest.mark.django_db
BASE_DIR = Path(__file__).resolve().parents[2]


def new_repo(hub) -> str:
    """A repo of this test's own: a small file, a config and an LFS weight file."""
    repo_id = f"acme/rebuild-{uuid.uuid4().hex[:8]}"
    hub.add_repo(
        repo_id,
        {
            "config.json": '{"hidden_size": 8}\n',
            "model.safetensors": os.urandom(300_000),
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
    # The same files, one with another mtime: what a non-reproducible packager would do.
    with tarfile.open(stored) as original:
        members = [(member, member_bytes(original, member) if member.isfile() else None)
                   for member in original.getmembers()]  # fmt: skip
    with tarfile.open(stored, "w:gz") as repacked:
        for member, content in members:
            if member.name.endswith("/model/config.json"):
                member.mtime += 60
            repacked.addfile(member, io.BytesIO(content) if content is not None else None)
    ModelVersion.objects.filter(pk=version.pk).update(sha256=_sha256(stored))

    with pytest.raises(CommandError) as refused:
        rebuild("rebuilt", "1.0")

    assert refused.value.returncode == 1
    assert "differs: the header of 'rebuilt-1.0/model/config.json': mtime" in str(refused.value)


def test_it_refuses_what_it_cannot_rebuild_with_exit_code_2(aegis):
    make_version("old-layout", "1.0")  # a row with no layout recorded: layout 1

    for name, version, message in (
        ("old-layout", "1.0", "layout 1"),
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
