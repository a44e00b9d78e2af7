"""Property tests: random repo ids, revisions, patterns, names, versions, keys and job ids
thrown at every place input enters (the import form and view, the hf_import command, the
import action, the job entry point, the storage key builder). Nothing escapes as an unhandled
exception, and every accepted name or key resolves inside its root and is a valid S3 key."""

from __future__ import annotations

import contextlib
import re
import socket
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from aegis_catalog.lib.hub import HubError, validate_repo_id, validate_revision
from aegis_catalog.lib.storage import InvalidStorageKey, LocalStore, S3Config, S3Store, validate_key
from imports import pipeline
from imports.actions import ImportOptions, ImportRejected, start_import
from imports.forms import ImportForm
from imports.jobs import run_import
from imports.models import ImportRequest
from registry.models import NAME_PATTERN, VERSION_PATTERN

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text that looks like the real thing often enough to get past the first checks.
TOKENS = st.sampled_from(
    [
        *"abcXYZ019._-/\\ :*?[]~^@{}$%&'\"`\n\t\x00\x7f",
        *["..", "é", "😀", "\u202e", "%2e", "%2F", "\\..\\", "/."],
    ]
)


def tokens(max_size: int) -> st.SearchStrategy[str]:
    return st.lists(TOKENS, max_size=max_size).map("".join)


valid_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
name_like = st.one_of(
    tokens(20),
    st.text(max_size=40),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True),
    st.sampled_from(["..", ".", "a/../b", "/etc/passwd", "a" * 101, "con", "a..b", "-x"]),
)
repo_like = st.one_of(
    st.builds(lambda org, name: f"{org}/{name}", name_like, name_like),
    name_like,
    st.sampled_from(["acme/../x", "acme//x", "a/b/c", "acme/x.git", "acme/--x", "acme/x--"]),
)
patterns = st.lists(st.one_of(tokens(12), st.text(max_size=30)), max_size=4)
S3_KEY_MAX_BYTES = 1024


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def offline(settings, tmp_path):
    """Settings under which an accepted import fails fast at the resolve stage: no Hub."""
    settings.HF_ENDPOINT = f"http://127.0.0.1:{closed_port()}"
    settings.AEGIS_HUB_RETRIES = 0
    settings.AEGIS_ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.AEGIS_WORK_DIR = tmp_path / "work"
    settings.AEGIS_S3_BUCKET = None
    return settings


@pytest.fixture
def alice_client(db):
    from django.test import Client

    from tests.factories import make_user

    client = Client()
    client.force_login(make_user("alice", "importer"))
    return client


def assert_inside(root: Path, key: str) -> None:
    validate_key(key)
    assert len(key.encode()) <= S3_KEY_MAX_BYTES
    path = LocalStore(root).path_for(key)
    assert path.resolve().is_relative_to(root.resolve())
    s3_key = S3Store(S3Config(bucket="aegis-artifacts", prefix="models")).object_key(key)
    assert s3_key.startswith("models/")
    assert not any(segment in ("", ".", "..") for segment in s3_key.split("/"))


@FUZZ
@given(
    model_name=st.one_of(valid_name, name_like),
    version=st.one_of(valid_name, name_like),
    revision=st.one_of(valid_name, name_like),
    include=st.one_of(tokens(30), st.text(max_size=80)),
    exclude=st.one_of(tokens(30), st.text(max_size=80)),
)
def test_the_import_form_validates_anything_without_raising(
    offline, model_name, version, revision, include, exclude
):
    form = ImportForm(
        {
            "model_name": model_name,
            "version": version,
            "revision": revision,
            "include": include,
            "exclude": exclude,
            "register": "on",
        }
    )
    event(f"valid: {form.is_valid()}")
    if form.is_valid():
        data = form.cleaned_data
        assert re.fullmatch(NAME_PATTERN.strip("^$"), data["model_name"])
        assert re.fullmatch(VERSION_PATTERN.strip("^$"), data["version"])
        assert validate_revision(data["revision"]) == data["revision"]
        for pattern in data["include"] + data["exclude"]:
            assert "\x00" not in pattern and pattern.strip() == pattern and pattern


@FUZZ
@given(org=name_like, name=name_like, model_name=name_like, version=name_like, revision=name_like)
def test_the_import_view_answers_anything_without_a_server_error(
    offline, alice_client, org, name, model_name, version, revision
):
    from urllib.parse import quote

    url = f"/hub/{quote(org, safe='')}/{quote(name, safe='')}/import/"
    response = alice_client.post(
        url, {"model_name": model_name, "version": version, "revision": revision}
    )
    assert response.status_code < 500 or response.status_code == 503, response.status_code


VALID_FIELDS = {
    "repo_id": st.builds(lambda org, name: f"{org}/{name}", valid_name, valid_name),
    "model_name": valid_name,
    "version": valid_name,
    "revision": valid_name,
    "include": st.lists(valid_name, max_size=3),
    "exclude": st.lists(valid_name, max_size=3),
    "sign_key": st.one_of(st.just(""), valid_name),
    "s3_bucket": st.from_regex(r"[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]", fullmatch=True),
}
RANDOM_FIELDS = {
    "repo_id": repo_like,
    "model_name": name_like,
    "version": name_like,
    "revision": name_like,
    "include": patterns,
    "exclude": patterns,
    "sign_key": name_like,
    "s3_bucket": name_like,
}


@settings(FUZZ, max_examples=300)
@given(data=st.data(), fuzzed=st.sampled_from([*RANDOM_FIELDS, None]), upload_s3=st.booleans())
def test_the_import_action_accepts_only_safe_names(offline, tmp_path, data, fuzzed, upload_s3):
    """Every field valid but one (or none) random: each check gets reached and tried."""
    values = {
        name: data.draw(RANDOM_FIELDS[name] if name == fuzzed else VALID_FIELDS[name], label=name)
        for name in VALID_FIELDS
    }
    try:
        request = start_import(
            ImportOptions(**values, upload_s3=upload_s3), actor="fuzz", enqueue=False
        )
    except ImportRejected as error:
        assert str(error)
        event("refused")
        return
    event("accepted")
    # Accepted: the Hub library agrees with the repo id, and the storage keys stay inside.
    from huggingface_hub.utils import validate_repo_id as hub_validate_repo_id

    hub_validate_repo_id(request.repo_id)
    assert request.repo_id.count("/") == 1
    prefix = pipeline.storage_prefix(request.model_name, request.version, request.pk)
    basename = pipeline.artifact_basename(request.model_name, request.version)
    for suffix in (".tar.gz", ".tar.gz.intoto.jsonl", ".aegis.json"):
        assert_inside(tmp_path, f"{prefix}/{basename}{suffix}")
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", request.sign_key)
    if request.upload_s3:
        assert re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", request.s3_bucket)


@FUZZ
@given(
    model_name=name_like,
    version=name_like,
    import_id=st.integers(min_value=-(2**63), max_value=2**63),
    key=st.one_of(tokens(20), st.text(max_size=60)),
)
def test_the_storage_key_builder_never_leaves_its_root(
    tmp_path, model_name, version, import_id, key
):
    from registry.models import name_validator, version_validator

    try:
        name_validator(model_name)
        version_validator(version)
    except Exception:
        pass
    else:
        prefix = pipeline.storage_prefix(model_name, version, import_id)
        assert_inside(
            tmp_path, f"{prefix}/{pipeline.artifact_basename(model_name, version)}.tar.gz"
        )
    with contextlib.suppress(InvalidStorageKey):  # refusing a key is fine; escaping is not
        assert_inside(tmp_path, key)


@FUZZ
@given(value=st.one_of(repo_like, name_like))
def test_repo_ids_and_revisions_are_accepted_or_refused_with_a_hub_error(value):
    for validate in (validate_repo_id, validate_revision):
        try:
            accepted = validate(value)
        except HubError as error:
            assert str(error)
        else:
            assert accepted == value


ARGUMENTS = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "--repo-id", "--model-name", "--version", "--revision", "--include", "--exclude",
                "--sign-key", "--upload-s3", "--s3-bucket", "--register", "--actor", "--unknown",
                "-v", "--help-me", "--",
            ]
        ),
        name_like,
        repo_like,
    ),
    max_size=14,
)  # fmt: skip


@FUZZ
@given(arguments=ARGUMENTS)
def test_the_hf_import_command_ends_in_a_command_error_or_success(offline, arguments):
    try:
        call_command("hf_import", *arguments, "--no-progress")
    except CommandError as error:
        assert str(error)
        assert "Traceback" not in str(error)


@FUZZ
@given(
    job_argument=st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70),
        st.text(max_size=20),
        st.none(),
        st.floats(allow_nan=True),
        st.booleans(),
    )
)
def test_the_import_job_skips_an_id_that_is_no_queued_import(offline, job_argument):
    assert run_import(job_argument) == "skipped"
    assert not ImportRequest.objects.filter(status=ImportRequest.Status.RUNNING).exists()
