"""The provenance page `/registry/<name>/<version>/`: what it shows, its downloads, "Verify now"."""

from __future__ import annotations

import base64
import hashlib
import html as html_lib
import json
import os
import re
import subprocess
from datetime import timedelta
from pathlib import Path
from unittest import mock

import django_rq
import pytest
from django.conf import settings
from redis.exceptions import ConnectionError as RedisDown

from aegis_catalog.lib.storage import S3Store, parse_url
from devservers.tools import VENV_BIN, model_signing
from imports.actions import ImportOptions, start_import
from imports.jobs import run_import
from imports.models import ImportRequest
from registry.actions import revoke_signing_key, set_version_status
from registry.jobs import verification_job
from registry.models import AuditEvent, ModelVersion, VerificationRun
from tests.factories import HTMX, make_version, verify_now

pytestmark = pytest.mark.django_db


def import_version(repo_id: str, name: str, alice, **options) -> ModelVersion:
    request = start_import(
        ImportOptions(repo_id=repo_id, model_name=name, version="1.0", **options),
        actor="alice",
        user=alice,
        enqueue=False,
    )
    assert run_import(request.pk) == "succeeded"
    return ModelVersion.objects.select_related("model", "signing_key").get(model__name=name)


@pytest.fixture
def tiny_bert(aegis, alice) -> ModelVersion:
    return import_version("acme/tiny-bert", "tiny-bert", alice)


def found(pattern: str, html: str) -> re.Match[str]:
    """The first match of ``pattern`` (``.`` matching newlines too): it must be on the page."""
    match = re.search(pattern, html, re.S)
    assert match is not None, pattern
    return match


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def download(client, version: ModelVersion, kind: str, directory: Path) -> Path:
    """GET a download the way a browser would, and save it under the offered file name."""
    response = client.get(f"/registry/{version.model.name}/{version.version}/download/{kind}/")
    assert response.status_code == 200, response.content[:500]
    match = re.fullmatch(r'attachment; filename="([^"/]+)"', response["Content-Disposition"])
    assert match, response["Content-Disposition"]
    path = directory / match.group(1)
    path.write_bytes(body(response))
    return path


# --- what the page shows ----------------------------------------------------------------------


def test_it_shows_everything_an_auditor_checks(aegis, alice, charlie_client):
    version = import_version("acme/pickled-net", "pickled-net", alice, exclude=["*.md"])
    import_request = ImportRequest.objects.get()
    commit = aegis.hub.resolve("acme/pickled-net")

    html = charlie_client.get("/registry/pickled-net/1.0/").content.decode()

    assert f'href="{aegis.hub.url}/acme/pickled-net/tree/{commit}"' in html
    assert f'<code id="source-commit">{commit}</code>' in html
    assert re.search(r'<dd id="imported">by alice, <time datetime="[^"]+">', html)
    assert f'href="/imports/{import_request.pk}/">import #{import_request.pk}</a>' in html
    assert "include everything; exclude *.md" in html
    assert "<dt>upload_s3</dt><dd>no</dd>" in html
    files = {item["path"]: item for item in version.manifest}
    weights = files["pytorch_model.bin"]
    assert weights["hub_digest_kind"] == "lfs-sha256"
    row = found(r'<tr data-path="pytorch_model.bin">.*?</tr>', html).group(0)
    assert f'<td class="num">{weights["size"]}</td>' in row
    assert f'<code class="digest">{weights["sha256"]}</code>' in row
    assert "hub-matched" in row and "matches the Hub&#x27;s LFS sha256" in row
    config = files["config.json"]
    assert config["hub_digest_kind"] == "git-blob-sha1"
    assert f"matched the Hub&#x27;s git blob id {config['hub_digest']} at import" in html
    assert "verdict-safe" in html
    assert f'<code id="tarball-sha256">{version.sha256}</code>' in html
    assert f"{version.size} bytes" in html
    assert f'<code id="model-path">{version.model_path}</code>' in html
    key = version.signing_key
    assert f"{key.name} version {key.version} ({key.algorithm})" in html
    assert f'<code id="key-fingerprint">{key.fingerprint}</code>' in html
    assert "REVOKED" not in html

    statement = json.loads(
        html_lib.unescape(
            found(r'<pre class="statement" id="provenance-statement">(.*?)</pre>', html).group(1)
        )
    )
    assert statement["subject"] == [
        {"name": "pickled-net-1.0.tar.gz", "digest": {"sha256": version.sha256}}
    ]
    dependencies = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert dependencies[0]["digest"] == {"gitCommit": commit}

    timeline = re.findall(r'<li class="event" data-sequence="\d+" data-action="([^"]+)"', html)
    assert timeline[0] == "import.requested"
    assert {"import.started", "import.succeeded", "registry.version_created"} <= set(timeline)
    assert "registry.model_created" in timeline
    assert timeline.index("registry.version_created") < timeline.index("import.succeeded")
    assert '<a href="/audit/?model=pickled-net" id="audit-link">' in html


def test_it_flags_a_file_whose_sha256_differs_from_the_hubs_lfs_digest(bob_client):
    version = make_version("tiny-bert", "1.0")
    ModelVersion.objects.filter(pk=version.pk).update(
        manifest=[
            {"path": "a.safetensors", "size": 5, "sha256": "aa" * 32,
             "hub_digest": "aa" * 32, "hub_digest_kind": "lfs-sha256"},
            {"path": "b.safetensors", "size": 5, "sha256": "bb" * 32,
             "hub_digest": "cc" * 32, "hub_digest_kind": "lfs-sha256"},
            {"path": "c.txt", "size": 5, "sha256": "dd" * 32},
        ]
    )  # fmt: skip

    html = bob_client.get("/registry/tiny-bert/1.0/").content.decode()

    rows = dict(re.findall(r'<tr data-path="([^"]+)">.*?<td class="hub-(\w+)">', html, re.S))
    assert rows == {"a.safetensors": "matched", "b.safetensors": "differs", "c.txt": "unknown"}
    assert f"DIFFERS from the Hub&#x27;s LFS sha256 {'cc' * 32}" in html
    assert "no Hub digest was recorded" in html


def test_it_shows_a_yanked_version_and_a_revoked_key_plainly(charlie_client):
    version = make_version("tiny-bert", "1.0")
    set_version_status(version, "yanked", actor="rosa", reason="weights withdrawn upstream")
    revoke_signing_key(version.signing_key, actor="rosa", reason="key leaked")

    html = charlie_client.get("/registry/tiny-bert/1.0/").content.decode()

    assert re.search(
        r'id="status-notice"><strong>YANKED\.</strong>.*weights withdrawn upstream', html
    )
    assert (
        '<div class="notice error" role="alert" id="key-notice"><strong>Signing key REVOKED.'
        in html
    )
    assert '<span class="status status-failed">REVOKED</span>' in html
    actions = re.findall(r'data-action="([^"]+)"', html)
    assert "registry.version_yanked" in actions and "key.revoked" in actions
    assert "weights withdrawn upstream" in html and "key leaked" in html


def test_it_shows_a_deprecated_version_with_its_reason(bob_client):
    version = make_version("tiny-bert", "1.0")
    set_version_status(version, "deprecated", actor="rosa", reason="use 2.0")

    html = bob_client.get("/registry/tiny-bert/1.0/").content.decode()

    assert "<strong>DEPRECATED.</strong> Reason: use 2.0" in html


def test_it_says_when_the_stored_attestation_cannot_be_decoded(bob_client):
    make_version("tiny-bert", "1.0")  # no attestation stored

    html = bob_client.get("/registry/tiny-bert/1.0/").content.decode()

    assert 'id="provenance-statement-error">The stored attestation cannot be decoded' in html


def test_it_offers_verify_now_only_to_those_who_may_verify(charlie_client, bob_client):
    make_version("tiny-bert", "1.0")
    assert 'id="verify-button"' in charlie_client.get("/registry/tiny-bert/1.0/").content.decode()
    viewer_page = bob_client.get("/registry/tiny-bert/1.0/").content.decode()
    assert 'id="verify-button"' not in viewer_page
    assert 'id="audit-link"' not in viewer_page


# --- Must-show 3: downloads verified with tools that are not ours ------------------------------


def openssl_checks_the_attestation(
    bundle_path: Path, key_path: Path, tmp_path: Path, sha256: str
) -> bytes:
    """The DSSE pre-authentication encoding, rebuilt with the standard library only, verified
    by openssl; a forged one is refused. Returns the statement's payload."""
    envelope = json.loads(bundle_path.read_bytes())["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"])
    payload_type = envelope["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type, len(payload), payload)
    (tmp_path / "pae.bin").write_bytes(pae)
    (tmp_path / "sig.der").write_bytes(base64.b64decode(envelope["signatures"][0]["sig"]))

    def openssl_verify(message: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["openssl", "dgst", "-sha256", "-verify", str(key_path),
             "-signature", str(tmp_path / "sig.der"), str(message)],
            capture_output=True, text=True,
        )  # fmt: skip

    verified = openssl_verify(tmp_path / "pae.bin")
    assert verified.returncode == 0 and "Verified OK" in verified.stdout, verified.stderr
    forged = tmp_path / "forged.bin"
    forged.write_bytes(pae.replace(sha256.encode(), b"0" * 64))
    assert openssl_verify(forged).returncode != 0
    return payload


def model_signing_verify(
    model_dir: Path, signature: Path, key_path: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [model_signing(), "verify", "key", str(model_dir),
         "--signature", str(signature), "--public_key", str(key_path)],
        capture_output=True, text=True,
    )  # fmt: skip


def test_an_auditor_verifies_the_downloads_with_openssl_and_model_signing(
    tiny_bert, charlie_client, tmp_path
):
    page = charlie_client.get("/registry/tiny-bert/1.0/").content.decode()
    for kind in ("artifact", "attestation", "model-sig", "record", "public-key"):
        assert f'href="/registry/tiny-bert/1.0/download/{kind}/"' in page
    out = tmp_path / "downloads"
    out.mkdir()
    bundle_path = download(charlie_client, tiny_bert, "attestation", out)
    key_path = download(charlie_client, tiny_bert, "public-key", out)
    assert bundle_path.name == "tiny-bert-1.0.tar.gz.sigstore.json"
    assert key_path.name == "aegis-model-sign-v1.pub.pem"
    assert key_path.read_text() == tiny_bert.signing_key.public_key_pem

    payload = openssl_checks_the_attestation(bundle_path, key_path, tmp_path, tiny_bert.sha256)

    artifact = download(charlie_client, tiny_bert, "artifact", out)
    signature = download(charlie_client, tiny_bert, "model-sig", out)
    record = download(charlie_client, tiny_bert, "record", out)
    assert artifact.name == "tiny-bert-1.0.tar.gz"
    assert (signature.name, record.name) == (
        "tiny-bert-1.0.tar.gz.model.sig",
        "tiny-bert-1.0.aegis.json",
    )
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert digest == tiny_bert.sha256
    assert json.loads(payload)["subject"][0]["digest"]["sha256"] == digest

    extracted = tmp_path / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "-xzf", str(artifact), "-C", str(extracted)], check=True)
    inner = extracted / "tiny-bert-1.0"
    assert sorted(path.name for path in inner.iterdir()) == ["MANIFEST.sha256", "model"]
    stored = parse_url(tiny_bert.model_path).path
    assert stored is not None
    # The downloads are the files stored beside the tarball, byte for byte.
    assert Path(f"{stored}.model.sig").read_bytes() == signature.read_bytes()
    assert stored.with_name("aegis.json").read_bytes() == record.read_bytes()
    check = model_signing_verify(inner / "model", signature, key_path)
    assert check.returncode == 0, check.stdout + check.stderr
    (inner / "model" / "config.json").write_text("{}")
    assert model_signing_verify(inner / "model", signature, key_path).returncode != 0


def test_the_commands_the_page_prints_verify_the_downloads(tiny_bert, charlie_client, tmp_path):
    page = charlie_client.get("/registry/tiny-bert/1.0/").content.decode()
    script = html_lib.unescape(found(r'<pre class="commands">(.*?)</pre>', page).group(1))
    for kind in ("artifact", "attestation", "model-sig", "public-key"):
        download(charlie_client, tiny_bert, kind, tmp_path)

    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"},
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "tiny-bert-1.0.tar.gz: OK" in run.stdout
    assert "model/config.json: OK" in run.stdout  # sha256sum -c MANIFEST.sha256
    assert run.stdout.rstrip().endswith("Verified OK")


def test_the_artifact_download_streams_the_stored_bytes_with_their_digest(tiny_bert, bob_client):
    response = bob_client.get("/registry/tiny-bert/1.0/download/artifact/")

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/gzip"
    assert response["Content-Length"] == str(tiny_bert.size)
    expected = base64.b64encode(bytes.fromhex(tiny_bert.sha256)).decode()
    assert response["Repr-Digest"] == f"sha-256=:{expected}:"
    assert hashlib.sha256(body(response)).hexdigest() == tiny_bert.sha256


def test_it_downloads_an_artifact_stored_in_s3(aegis_s3, alice, bob_client, tmp_path, monkeypatch):
    version = import_version("acme/tiny-bert", "tiny-bert", alice, upload_s3=True)
    assert version.model_path.startswith("s3://")
    with monkeypatch.context() as patched:
        # Streamed from its GET: never fetched into a file first.
        patched.setattr(S3Store, "download", mock.Mock(side_effect=AssertionError("copied")))
        response = bob_client.get("/registry/tiny-bert/1.0/download/artifact/")
        assert response.streaming and response["Content-Length"] == str(version.size)
        assert hashlib.sha256(body(response)).hexdigest() == version.sha256

    artifact = download(bob_client, version, "artifact", tmp_path)
    record = download(bob_client, version, "record", tmp_path)

    assert hashlib.sha256(artifact.read_bytes()).hexdigest() == version.sha256
    assert json.loads(record.read_bytes())["artifact"]["sha256"] == version.sha256
    leftovers = list(Path(aegis_s3.work_dir).rglob("aegis-download-*"))
    assert leftovers == []


def test_it_answers_404_when_an_s3_artifact_is_missing(aegis_s3, alice, bob_client, seaweedfs):
    version = import_version("acme/tiny-bert", "tiny-bert", alice, upload_s3=True)
    bucket, key = version.model_path.removeprefix("s3://").split("/", 1)
    seaweedfs.client().delete_object(Bucket=bucket, Key=key)

    response = bob_client.get("/registry/tiny-bert/1.0/download/artifact/")

    assert response.status_code == 404
    assert "does not exist" in response.content.decode()


def test_it_answers_404_when_the_artifact_is_missing_from_storage(bob_client, settings, tmp_path):
    settings.AEGIS_ARTIFACT_ROOT = tmp_path
    version = make_version("tiny-bert", "1.0")
    ModelVersion.objects.filter(pk=version.pk).update(
        model_path=(tmp_path / "gone.tar.gz").as_uri()
    )

    response = bob_client.get("/registry/tiny-bert/1.0/download/artifact/")

    assert response.status_code == 404
    assert "gone.tar.gz does not exist" in response.content.decode()


@pytest.mark.parametrize(
    "url",
    [
        "/registry/tiny-bert/1.0/download/private-key/",
        "/registry/tiny-bert/9.9/download/artifact/",
        "/registry/nope/1.0/download/public-key/",
    ],
)
def test_it_answers_404_to_unknown_downloads(bob_client, url):
    make_version("tiny-bert", "1.0")
    assert bob_client.get(url).status_code == 404


def test_downloads_need_a_role(nobody, client):
    make_version("tiny-bert", "1.0")
    client.force_login(nobody)
    assert client.get("/registry/tiny-bert/1.0/download/public-key/").status_code == 403
    client.logout()
    response = client.get("/registry/tiny-bert/1.0/download/public-key/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_downloads_take_no_parameters_and_only_get(bob_client, charlie_client):
    make_version("tiny-bert", "1.0")
    url = "/registry/tiny-bert/1.0/download/public-key/"
    assert bob_client.get(url + "?x=1").status_code == 400
    assert charlie_client.post(url).status_code == 405


# --- Verify now -------------------------------------------------------------------------------


def test_verify_now_records_a_pass_and_shows_each_check(tiny_bert, charlie_client, charlie):
    html = verify_now(charlie_client)

    assert 'data-result="passed"' in html
    checks = re.findall(r'<li class="check-passed" data-check="([^"]+)">', html)
    assert checks == [
        "fetch", "attestation_signature", "key_not_revoked", "digest", "not_yanked",
        "safe_extraction", "manifest", "model_signature",
    ]  # fmt: skip
    assert "model.sig verifies over every file of model/" in html
    event = AuditEvent.objects.get(action="verification.passed")
    assert (event.actor, event.actor_user_id) == ("charlie", charlie.pk)
    assert event.object_type == "version" and event.object_id == str(tiny_bert.pk)
    assert event.details["checks"] == checks
    assert f'data-sequence="{event.sequence}" data-action="verification.passed"' in html


def test_verify_now_records_a_failure_for_a_yanked_version_and_names_the_check(
    tiny_bert, charlie_client
):
    set_version_status(tiny_bert, "yanked", actor="rosa", reason="license problem")

    html = verify_now(charlie_client)

    assert 'data-result="failed"' in html
    assert 'id="verification-result" data-check="not_yanked">' in html
    assert (
        "<strong>Verification failed</strong> at the check “The version is not yanked”: "
        "tiny-bert 1.0 is yanked: license problem</div>"
    ) in html
    event = AuditEvent.objects.get(action="verification.failed")
    assert event.actor == "charlie"
    assert event.details["failed_check"] == "not_yanked"
    assert "license problem" in event.details["error"]


def test_verify_now_names_the_digest_check_when_the_stored_artifact_changed(
    tiny_bert, alice_client
):
    stored = parse_url(tiny_bert.model_path).path
    assert stored is not None
    data = bytearray(stored.read_bytes())
    data[-10] ^= 0xFF
    stored.write_bytes(bytes(data))

    html = verify_now(alice_client)

    assert 'data-check="digest"' in html
    assert "The tarball&#x27;s sha256 is the one signed and registered" in html
    event = AuditEvent.objects.get(action="verification.failed")
    assert (event.actor, event.details["failed_check"]) == ("alice", "digest")


def test_verify_now_records_an_unreadable_storage_url_instead_of_failing(charlie_client):
    version = make_version("tiny-bert", "1.0")
    ModelVersion.objects.filter(pk=version.pk).update(model_path="file://storage.example/x.tar.gz")

    html = verify_now(charlie_client)

    assert 'data-check="fetch"' in html
    assert "names a remote host; only local file:// URLs work" in html
    event = AuditEvent.objects.get(action="verification.failed")
    assert event.details["failed_check"] == "fetch"


def test_verify_now_answers_htmx_with_the_result_and_the_new_timeline(tiny_bert, charlie_client):
    html = verify_now(charlie_client)

    assert html.lstrip().startswith('<section class="panel" aria-labelledby="verify-heading"')
    assert 'data-result="passed"' in html and "hx-trigger" not in html  # done: no more polling
    assert (
        '<section id="timeline-section" aria-labelledby="timeline-heading" hx-swap-oob="true">'
        in html
    )
    assert "<html" not in html
    assert 'data-action="verification.passed"' in html


def test_verify_now_runs_in_the_background_and_the_page_shows_the_latest_run(
    tiny_bert, charlie_client, django_capture_on_commit_callbacks
):
    queue = django_rq.get_queue("default")
    queue.empty()
    with django_capture_on_commit_callbacks(execute=True):
        response = charlie_client.post("/registry/tiny-bert/1.0/verify/")
    assert response.status_code == 302 and response["Location"].endswith("/1.0/#verification")
    page = charlie_client.get("/registry/tiny-bert/1.0/").content.decode()
    assert 'data-state="queued"' in page and "Verification queued" in page
    assert 'id="verify-button"' not in page  # one run at a time from the page
    # ... unless its job was lost: long after any job would have been stopped, ask again.
    stale = VerificationRun.objects.get()
    VerificationRun.objects.filter(pk=stale.pk).update(
        requested_at=stale.requested_at - timedelta(seconds=settings.AEGIS_VERIFY_TIMEOUT + 61)
    )
    assert 'id="verify-button"' in charlie_client.get("/registry/tiny-bert/1.0/").content.decode()
    VerificationRun.objects.filter(pk=stale.pk).update(requested_at=stale.requested_at)
    assert not AuditEvent.objects.filter(action__startswith="verification.").exists()
    run = VerificationRun.objects.get()
    assert verification_job(run.pk) == "passed"
    assert verification_job(run.pk) == "skipped"  # a job run twice verifies once
    queue.empty()
    page = charlie_client.get("/registry/tiny-bert/1.0/").content.decode()
    assert 'data-result="passed"' in page and 'id="verify-button"' in page
    assert AuditEvent.objects.filter(action="verification.passed").count() == 1
    # The poll of a run belongs to its version; a plain GET goes back to the page.
    assert (
        charlie_client.get(
            f"/registry/tiny-bert/1.0/verify/{run.pk + 1}/", headers=HTMX
        ).status_code
        == 404
    )
    assert charlie_client.get(f"/registry/tiny-bert/1.0/verify/{run.pk}/").status_code == 302


def test_verify_now_says_so_when_the_queue_is_down(tiny_bert, charlie_client, settings):
    with mock.patch("django_rq.get_connection") as connection:
        connection.return_value.ping.side_effect = RedisDown("down")
        response = charlie_client.post("/registry/tiny-bert/1.0/verify/", headers=HTMX)
    assert response.status_code == 503
    assert (
        "Not queued: the job queue is unavailable (Redis does not answer)"
        in response.content.decode()
    )
    assert not VerificationRun.objects.exists()


def test_verify_now_is_refused_to_a_viewer_and_records_nothing(bob_client):
    make_version("tiny-bert", "1.0")

    response = bob_client.post("/registry/tiny-bert/1.0/verify/")

    assert response.status_code == 403
    assert "auditor or registry-admin or importer group" in response.content.decode()
    assert not AuditEvent.objects.filter(action__startswith="verification.").exists()


def test_verify_now_only_answers_post(charlie_client):
    make_version("tiny-bert", "1.0")
    assert charlie_client.get("/registry/tiny-bert/1.0/verify/").status_code == 405


def test_the_page_reads_the_timeline_with_a_fixed_number_of_queries(
    charlie_client, django_assert_num_queries
):
    version = make_version("tiny-bert", "1.0")
    charlie_client.get("/registry/tiny-bert/1.0/")

    for events in (1, 25):
        while AuditEvent.objects.count() < events:
            set_version_status(version, "deprecated", actor="rosa", reason="again")
        # session, user, groups, the version with its model, key and importer, the timeline,
        # the latest "Verify now" run, and (for an auditor) the version's pulls
        with django_assert_num_queries(7) as captured:
            html = charlie_client.get("/registry/tiny-bert/1.0/").content.decode()
        assert html.count('data-action="registry.version_deprecated"') == events
    timeline_sql = next(q["sql"] for q in captured if "registry_auditevent" in q["sql"])
    assert "LIMIT 200" in timeline_sql
