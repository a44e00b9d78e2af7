"""aegis_catalog.lib.hub against the Hub double, through the real huggingface_hub client."""

from __future__ import annotations

import hashlib
import json
import socket
from datetime import UTC
from pathlib import Path

import httpx2
import pytest
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id as hf_validate_repo_id
from hypothesis import given
from hypothesis import strategies as st

from aegis_catalog.lib.hub import (
    EntryNotFound,
    GatedRepo,
    HubClient,
    HubError,
    HubUnavailable,
    InvalidRepoId,
    InvalidRevision,
    InvalidSearchParameter,
    InvalidToken,
    NoFilesMatched,
    RepoNotFound,
    RevisionNotFound,
    validate_repo_id,
    validate_revision,
)
from devservers.hub_double import HubDouble

BERT = "acme/tiny-bert"
BERT_FILES = [
    ".gitattributes",
    "README.md",
    "config.json",
    "model.safetensors",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.txt",
]


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(content) + content).hexdigest()


@pytest.fixture
def client(hub_env: HubDouble) -> HubClient:
    return HubClient(hub_env.url, timeout=10)


@pytest.fixture
def token_client(hub_env: HubDouble) -> HubClient:
    return HubClient(hub_env.url, token=hub_env.token, timeout=10)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---- search ---------------------------------------------------------------------------------


def test_it_searches_by_text_and_library_most_downloaded_first(client: HubClient) -> None:
    result = client.search("model-1", library="timm", limit=50)

    ids = [item.repo_id for item in result.items]
    assert ids, "expected some demo-org/model-1x repos using timm"
    assert all(repo_id.startswith("demo-org/model-1") for repo_id in ids)
    assert all(item.library_name == "timm" for item in result.items)
    downloads = [item.downloads for item in result.items]
    assert downloads == sorted(downloads, reverse=True)
    assert result.next_cursor is None


def test_it_filters_by_task_and_license(client: HubClient) -> None:
    result = client.search(task="text-generation", license="mit", limit=100)

    assert result.items
    for item in result.items:
        assert item.pipeline_tag == "text-generation"
        assert item.license == "mit"
        assert "license:mit" in item.tags
    assert "acme/gated-llama" not in [item.repo_id for item in result.items]  # llama2 license


def test_it_reports_summary_fields(client: HubClient, hub_double: HubDouble) -> None:
    (item,) = client.search("tiny-bert").items

    assert item.repo_id == BERT
    assert item.author == "acme"
    assert item.commit == hub_double.resolve(BERT)
    assert item.downloads == 125_000
    assert item.likes == 42
    assert item.library_name == "transformers"
    assert item.pipeline_tag == "fill-mask"
    assert item.license == "apache-2.0"
    assert item.gated is False
    assert item.private is False
    assert item.last_modified is not None
    assert item.last_modified.tzinfo is not None


def test_it_pages_through_all_results_with_the_cursor(client: HubClient) -> None:
    pages = [client.search(library="transformers", sort="likes", limit=4)]
    while pages[-1].next_cursor is not None:
        pages.append(
            client.search(
                library="transformers", sort="likes", limit=4, cursor=pages[-1].next_cursor
            )
        )

    ids = [item.repo_id for page in pages for item in page.items]
    assert len(pages) > 2
    assert all(len(page.items) == 4 for page in pages[:-1])
    assert len(ids) == len(set(ids))
    expected = {f"demo-org/model-{index:02d}" for index in range(0, 30, 3)}
    expected |= {BERT, "acme/gated-llama", "acme/hostile-card", "acme/no-card"}
    assert set(ids) == expected  # the private repo stays hidden without a token
    likes = [item.likes for page in pages for item in page.items]
    assert likes == sorted(likes, reverse=True)


def test_it_shows_private_models_in_search_only_with_the_token(
    client: HubClient, token_client: HubClient
) -> None:
    assert client.search("private").items == ()
    assert [item.repo_id for item in token_client.search("private").items] == ["acme/private-model"]


def test_it_sorts_by_last_modified(client: HubClient) -> None:
    items = client.search("demo-org", sort="last_modified", limit=30).items

    times = [item.last_modified for item in items]
    assert len(times) == 30
    assert times == sorted(times, reverse=True)  # type: ignore[type-var]


@pytest.mark.parametrize(
    "arguments",
    [
        {"sort": "random"},
        {"limit": 0},
        {"limit": 1000},
        {"cursor": "=&&=="},
        {"cursor": ""},
        {"cursor": "limit=100000"},
        {"cursor": "abc&full=true"},
        {"cursor": "bm90LWEtaHViLWN1cnNvcg=="},  # cursor-shaped, but the Hub did not make it
    ],
)
def test_it_rejects_bad_search_arguments(client: HubClient, arguments: dict) -> None:
    with pytest.raises(InvalidSearchParameter):
        client.search(**arguments)


# ---- model info -----------------------------------------------------------------------------


def test_it_pins_the_commit_and_lists_files_with_their_digests(
    client: HubClient, hub_double: HubDouble
) -> None:
    model = client.model_info(BERT)
    true_bytes = hub_double.files(BERT)

    assert model.commit == hub_double.resolve(BERT, "main")
    assert len(model.commit) == 40
    assert [item.path for item in model.files] == BERT_FILES
    for item in model.files:
        content = true_bytes[item.path]
        assert item.size == len(content)
        if item.path.endswith(".safetensors"):
            assert item.is_lfs
            assert item.lfs_sha256 == hashlib.sha256(content).hexdigest()
        else:
            assert not item.is_lfs
            assert item.blob_id == git_blob_sha1(content)
    assert model.total_size == sum(len(content) for content in true_bytes.values())


def test_it_reads_card_metadata_and_commit_time(client: HubClient, hub_double: HubDouble) -> None:
    model = client.model_info(BERT)

    assert model.card_data["license"] == "apache-2.0"
    assert model.card_data["datasets"] == ["wikitext"]
    assert model.card_data["base_model"] == "google-bert/bert-base-uncased"
    assert model.license == "apache-2.0"
    assert model.pipeline_tag == "fill-mask"
    assert model.library_name == "transformers"
    assert "bert" in model.tags
    assert model.gated is False
    assert model.private is False
    assert model.commit_time.tzinfo == UTC
    latest_commit_time = hub_double._repos[BERT].commits[model.commit].time
    assert model.commit_time == latest_commit_time


def test_it_resolves_a_tag_and_an_older_commit(client: HubClient, hub_double: HubDouble) -> None:
    assert hub_double.demo is not None
    first, latest = hub_double.demo.commits[BERT]

    by_tag = client.model_info(BERT, "v1.0")
    by_sha = client.model_info(BERT, first)
    at_main = client.model_info(BERT, "main")

    assert by_tag.commit == by_sha.commit == first
    assert at_main.commit == latest
    assert by_sha.commit_time < at_main.commit_time
    old_weights = by_sha.file("model.safetensors")
    assert (
        old_weights.lfs_sha256
        == hashlib.sha256(hub_double.files(BERT, first)["model.safetensors"]).hexdigest()
    )
    assert old_weights.lfs_sha256 != at_main.file("model.safetensors").lfs_sha256


def test_it_downloads_an_older_commit_exactly(
    client: HubClient, hub_double: HubDouble, tmp_path: Path
) -> None:
    assert hub_double.demo is not None
    first = hub_double.demo.commits[BERT][0]

    paths = client.download(BERT, first, tmp_path, ["config.json", "model.safetensors"])

    old = hub_double.files(BERT, first)
    assert paths["config.json"].read_bytes() == old["config.json"]
    assert paths["model.safetensors"].read_bytes() == old["model.safetensors"]
    assert "hidden_dropout_prob" not in json.loads(old["config.json"])


def test_it_reports_unknown_repos_and_revisions(client: HubClient) -> None:
    with pytest.raises(RepoNotFound, match=r"acme/does-not-exist") as missing_repo:
        client.model_info("acme/does-not-exist")
    assert client.endpoint in str(missing_repo.value)

    with pytest.raises(RevisionNotFound, match=r"no-such-branch") as missing_revision:
        client.model_info(BERT, "no-such-branch")
    assert BERT in str(missing_revision.value)


def test_it_needs_the_token_for_a_private_repo(client: HubClient, token_client: HubClient) -> None:
    with pytest.raises(RepoNotFound, match="HF_TOKEN"):
        client.model_info("acme/private-model")

    assert token_client.model_info("acme/private-model").private is True


def test_it_reports_a_refused_token_without_revealing_it(hub_env: HubDouble) -> None:
    secret = "hf_not_a_valid_token_1234567890"
    client = HubClient(hub_env.url, token=secret, timeout=10)

    with pytest.raises(InvalidToken) as refused:
        client.model_info(BERT)
    assert secret not in str(refused.value)
    assert secret not in repr(client)


# ---- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "",
        "../x",
        "a b",
        "a/b/c",
        "gpt2",
        "/acme/x",
        "acme/x/",
        "acme/-x",
        "acme/x.",
        ".acme/x",
        "acme/x..y",
        "acme/x--y",
        "acme/x.git",
        "acme/caf\u00e9",
        "acme/" + "x" * 97,
        "acme/x\n",
    ],
)
def test_it_rejects_invalid_repo_ids(value: str, client: HubClient) -> None:
    with pytest.raises(InvalidRepoId):
        validate_repo_id(value)
    with pytest.raises(InvalidRepoId):
        client.model_info(value)


@given(
    st.text(alphabet="ab_-./ \u00e9", max_size=12)
    | st.from_regex(r"[A-Za-z0-9._-]{1,4}/[A-Za-z0-9._-]{1,4}", fullmatch=True)
)
def test_it_is_at_least_as_strict_as_huggingface_hub(value: str) -> None:
    try:
        validate_repo_id(value)
    except InvalidRepoId:
        return
    hf_validate_repo_id(value)  # must not raise HFValidationError
    assert value.count("/") == 1


def test_huggingface_hub_validation_errors_are_what_the_property_test_expects() -> None:
    with pytest.raises(HFValidationError):
        hf_validate_repo_id("a/-b")


@pytest.mark.parametrize("value", ["acme/tiny-bert", "A_b/c.d-e_", "x/" + "y" * 96])
def test_it_accepts_valid_repo_ids(value: str) -> None:
    assert validate_repo_id(value) == value


@pytest.mark.parametrize(
    "value", ["", "a b", "../main", "main..x", "x" * 201, "-main", "main/", "x.lock", "a:b"]
)
def test_it_rejects_invalid_revisions(value: str) -> None:
    with pytest.raises(InvalidRevision):
        validate_revision(value)


@pytest.mark.parametrize("value", ["main", "v1.0", "refs/pr/1", "a" * 40, "release/2024-01"])
def test_it_accepts_valid_revisions(value: str) -> None:
    assert validate_revision(value) == value


# ---- file selection -------------------------------------------------------------------------


def test_it_selects_files_with_huggingface_hub_patterns(client: HubClient) -> None:
    model = client.model_info(BERT)

    weights_and_config = client.select_files(model, ["*.safetensors", "*.json"], ["tokenizer/"])
    tokenizer = client.select_files(model, ["tokenizer/"], [])
    everything_but_card = client.select_files(model, [], ["README.md", ".*"])

    assert [item.path for item in weights_and_config] == ["config.json", "model.safetensors"]
    assert [item.path for item in tokenizer] == [
        "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.txt",
    ]
    assert [item.path for item in everything_but_card] == [
        "config.json",
        "model.safetensors",
        "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.txt",
    ]


def test_it_raises_when_no_file_matches(client: HubClient) -> None:
    model = client.model_info(BERT)

    with pytest.raises(NoFilesMatched, match=r"\*\.gguf"):
        client.select_files(model, ["*.gguf"], [])
    with pytest.raises(NoFilesMatched):
        client.select_files(model, ["*.json"], ["*"])


# ---- downloads ------------------------------------------------------------------------------


def test_it_downloads_exactly_the_requested_files(
    client: HubClient, hub_double: HubDouble, tmp_path: Path
) -> None:
    commit = hub_double.resolve(BERT)
    wanted = ["config.json", "model.safetensors", "tokenizer/vocab.txt"]
    reports: list[tuple[int, int]] = []

    paths = client.download(
        BERT, commit, tmp_path, wanted, progress=lambda done, total: reports.append((done, total))
    )

    true_bytes = hub_double.files(BERT, commit)
    assert sorted(paths) == sorted(wanted)
    for path in wanted:
        assert paths[path] == tmp_path.joinpath(*path.split("/"))
        assert paths[path].read_bytes() == true_bytes[path]
    on_disk = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert on_disk == sorted(wanted)  # no README, no .cache/huggingface bookkeeping left
    total = sum(len(true_bytes[path]) for path in wanted)
    assert reports[-1] == (total, total)
    assert all(report[1] == total for report in reports)
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)


def test_it_fetches_lfs_files_from_the_cdn_without_the_token(
    token_client: HubClient, hub_double: HubDouble, tmp_path: Path
) -> None:
    repo_id = "acme/gated-llama"
    commit = hub_double.resolve(repo_id)
    before = len(hub_double.requests)

    paths = token_client.download(repo_id, commit, tmp_path, ["model.safetensors"])

    assert paths["model.safetensors"].read_bytes() == hub_double.files(repo_id)["model.safetensors"]
    new_requests = hub_double.requests[before:]
    cdn_gets = [r for r in new_requests if r.listener == "cdn" and r.method == "GET"]
    resolves = [r for r in new_requests if "/resolve/" in r.path]
    assert len(cdn_gets) == 1
    assert "authorization" not in cdn_gets[0].headers
    assert resolves
    assert all(r.headers["authorization"] == f"Bearer {hub_double.token}" for r in resolves)


def test_it_needs_the_token_for_gated_files(
    client: HubClient, token_client: HubClient, hub_double: HubDouble, tmp_path: Path
) -> None:
    repo_id = "acme/gated-llama"
    model = client.model_info(repo_id)  # metadata of a gated repo is public
    assert model.gated == "manual"

    with pytest.raises(GatedRepo, match="HF_TOKEN") as refused:
        client.download(repo_id, model.commit, tmp_path / "anonymous", ["model.safetensors"])
    assert client.endpoint in str(refused.value)
    assert repo_id in str(refused.value)

    paths = token_client.download(repo_id, model.commit, tmp_path / "granted", ["config.json"])
    assert paths["config.json"].read_bytes() == hub_double.files(repo_id)["config.json"]


def test_it_does_not_fetch_finished_files_again(
    fresh_hub_double: HubDouble, hub_env: HubDouble, tmp_path: Path
) -> None:
    double = fresh_hub_double
    files = {
        "a.safetensors": b"\x01" * 3000,
        "b.bin": b"\x02" * 2000,
        "c/config.json": b'{"a": 1}',
        "d.txt": b"hello",
    }
    commit = double.add_repo("acme/resume", files)
    client = HubClient(double.url, timeout=10)
    client.download("acme/resume", commit, tmp_path, list(files))
    (tmp_path / "b.bin").unlink()
    (tmp_path / "d.txt").write_bytes(b"hel")  # an interrupted write: wrong size
    double.clear_requests()
    reports: list[tuple[int, int]] = []

    paths = client.download(
        "acme/resume", commit, tmp_path, list(files), progress=lambda *r: reports.append(r)
    )

    assert {path: double.body_fetches("acme/resume", path) for path in files} == {
        "a.safetensors": 0,
        "b.bin": 1,
        "c/config.json": 0,
        "d.txt": 1,
    }
    assert {path: local.read_bytes() for path, local in paths.items()} == files
    total = sum(map(len, files.values()))
    assert reports[0] == (3000 + len(b'{"a": 1}'), total)  # kept files count as done at once
    assert reports[-1] == (total, total)


def test_it_checks_the_download_arguments(client: HubClient, tmp_path: Path) -> None:
    with pytest.raises(InvalidRevision, match="40-hex"):
        client.download(BERT, "main", tmp_path, ["config.json"])
    commit = client.model_info(BERT).commit
    with pytest.raises(EntryNotFound, match=r"missing\.bin"):
        client.download(BERT, commit, tmp_path, ["config.json", "missing.bin"])
    assert not (tmp_path / "config.json").exists()


def test_it_downloads_corrupted_bytes_of_the_right_size(
    fresh_hub_double: HubDouble, hub_env: HubDouble, tmp_path: Path
) -> None:
    double = fresh_hub_double
    content = bytes(range(256)) * 16
    commit = double.add_repo("acme/corrupt", {"model.safetensors": content, "notes.txt": b"abc"})
    double.corrupt("acme/corrupt", "model.safetensors")
    double.corrupt("acme/corrupt", "notes.txt")
    client = HubClient(double.url, timeout=10)

    model = client.model_info("acme/corrupt")
    paths = client.download("acme/corrupt", commit, tmp_path, ["model.safetensors", "notes.txt"])

    served = paths["model.safetensors"].read_bytes()
    assert len(served) == len(content)
    assert served != content
    assert model.file("model.safetensors").lfs_sha256 == hashlib.sha256(content).hexdigest()
    assert hashlib.sha256(served).hexdigest() != model.file("model.safetensors").lfs_sha256
    notes = paths["notes.txt"].read_bytes()
    assert len(notes) == 3
    assert git_blob_sha1(notes) != model.file("notes.txt").blob_id


# ---- cards ----------------------------------------------------------------------------------


def test_it_fetches_the_model_card_text(client: HubClient, hub_double: HubDouble) -> None:
    commit = hub_double.resolve(BERT)

    card = client.fetch_card(BERT, commit)

    assert card == hub_double.files(BERT)["README.md"].decode()
    assert card.startswith("---\nlicense: apache-2.0\n")
    assert "# Tiny BERT" in card


def test_it_fetches_a_gated_repos_card_without_a_token(
    client: HubClient, hub_double: HubDouble
) -> None:
    card = client.fetch_card("acme/gated-llama", hub_double.resolve("acme/gated-llama"))

    assert "You need to accept the license." in card


def test_it_returns_an_empty_card_when_the_repo_has_none(
    client: HubClient, hub_double: HubDouble
) -> None:
    assert client.fetch_card("acme/no-card", hub_double.resolve("acme/no-card")) == ""


# ---- the Hub being down ---------------------------------------------------------------------


def test_it_reports_an_unreachable_endpoint(hub_env: HubDouble, tmp_path: Path) -> None:
    url = closed_port_url()
    client = HubClient(url, timeout=2)

    for call in (
        lambda: client.model_info(BERT),
        lambda: client.search("bert"),
        lambda: client.fetch_card(BERT, "a" * 40),
        lambda: client.download(BERT, "a" * 40, tmp_path, ["config.json"]),
    ):
        with pytest.raises(HubUnavailable, match=url.replace(".", r"\.")):
            call()


def test_it_reports_server_errors_as_unavailable(
    fresh_hub_double: HubDouble, hub_env: HubDouble
) -> None:
    double = fresh_hub_double
    double.add_repo("acme/flaky", {"config.json": b"{}"})
    client = HubClient(double.url, timeout=5)
    double.fail_api_with = 503

    with pytest.raises(HubUnavailable, match="503"):
        client.model_info("acme/flaky")
    with pytest.raises(HubUnavailable, match="503"):
        client.search("flaky")

    double.fail_api_with = None
    assert client.model_info("acme/flaky").files[0].path == "config.json"


def test_all_hub_errors_share_one_base_class() -> None:
    for error in (
        EntryNotFound,
        GatedRepo,
        HubUnavailable,
        InvalidRepoId,
        InvalidRevision,
        InvalidToken,
        NoFilesMatched,
        RepoNotFound,
        RevisionNotFound,
    ):
        assert issubclass(error, HubError)


# ---- the double's own contract --------------------------------------------------------------


def test_the_double_serves_byte_ranges_and_hub_headers(hub_double: HubDouble) -> None:
    commit = hub_double.resolve(BERT)
    url = f"{hub_double.url}/{BERT}/resolve/{commit}/config.json"
    content = hub_double.files(BERT)["config.json"]

    head = httpx2.head(url)
    part = httpx2.get(url, headers={"Range": "bytes=5-14"})
    missing = httpx2.head(f"{hub_double.url}/{BERT}/resolve/{commit}/nope.txt")
    redirect = httpx2.head(f"{hub_double.url}/{BERT}/resolve/main/model.safetensors")

    assert head.headers["X-Repo-Commit"] == commit
    assert head.headers["ETag"] == f'"{git_blob_sha1(content)}"'
    assert int(head.headers["Content-Length"]) == len(content)
    assert part.status_code == 206
    assert part.content == content[5:15]
    assert part.headers["Content-Range"] == f"bytes 5-14/{len(content)}"
    assert missing.status_code == 404
    assert missing.headers["X-Error-Code"] == "EntryNotFound"
    weights = hub_double.files(BERT)["model.safetensors"]
    assert redirect.status_code == 302
    assert redirect.headers["X-Linked-Etag"] == f'"{hashlib.sha256(weights).hexdigest()}"'
    assert int(redirect.headers["X-Linked-Size"]) == len(weights)
    assert redirect.headers["Location"].startswith(hub_double.cdn_url + "/cdn/")
    assert httpx2.get(f"{hub_double.url}/api/agent-harnesses").status_code == 404
