"""What the upstream watch asks of the Hub client, against the Hub double: commit listings,
renamed and deleted repos, and the wait a rate-limited answer asks for."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aegis_catalog.lib.hub import HubClient, HubUnavailable, RepoNotFound, RevisionNotFound
from aegis_catalog.lib.hub.translate import retry_after
from devservers.hub_double import HubDouble


@pytest.fixture
def double(fresh_hub_double: HubDouble, hub_env: HubDouble) -> HubDouble:
    fresh_hub_double.add_repo(
        "acme/moving", {"config.json": b"{}"}, card_data={"license": "mit"}, message="First"
    )
    return fresh_hub_double


def test_it_lists_the_commits_of_a_revision_newest_first(double: HubDouble) -> None:
    first = double.resolve("acme/moving")
    second = double.add_commit("acme/moving", {"a.txt": b"a"}, message="Add a\n\nwith a body")
    third = double.add_commit("acme/moving", {"b.txt": b"b"}, message="Add b")
    client = HubClient(double.url, timeout=10)

    commits = client.list_commits("acme/moving", "main")

    assert [item.commit for item in commits] == [third, second, first]
    assert [item.title for item in commits] == ["Add b", "Add a", "First"]
    assert commits[0].authors == ("acme",)
    assert commits[0].created_at is not None and commits[0].created_at.tzinfo is not None
    assert [item.commit for item in client.list_commits("acme/moving", second)] == [second, first]
    assert len(client.list_commits("acme/moving", "main", limit=1)) == 1


def test_a_renamed_repo_answers_under_its_new_id(double: HubDouble) -> None:
    commit = double.resolve("acme/moving")
    double.rename_repo("acme/moving", "newco/moved")
    client = HubClient(double.url, timeout=10)

    model = client.model_info("acme/moving")

    assert (model.repo_id, model.commit) == ("newco/moved", commit)
    redirects = [entry for entry in double.requests if entry.status == 307]
    assert redirects and redirects[0].path.startswith("/api/models/acme/moving/revision/main")
    assert "license: mit" in client.fetch_card("acme/moving", commit)  # /resolve/ redirects too
    assert client.list_commits("acme/moving", commit)[0].commit == commit


def test_a_deleted_repo_and_a_deleted_branch_are_not_found(double: HubDouble) -> None:
    client = HubClient(double.url, timeout=10)
    with pytest.raises(RevisionNotFound):
        client.model_info("acme/moving", "v2")

    double.delete_repo("acme/moving")

    with pytest.raises(RepoNotFound):
        client.model_info("acme/moving")
    with pytest.raises(RepoNotFound):
        client.list_commits("acme/moving", "main")


def test_a_rate_limited_answer_says_how_long_to_wait(double: HubDouble) -> None:
    client = HubClient(double.url, timeout=10, retries=0)
    double.inject_fault(429, retry_after=7, path_contains="/api/models/acme/moving")

    with pytest.raises(HubUnavailable, match="429") as raised:
        client.model_info("acme/moving")

    assert (raised.value.status, raised.value.retry_after) == (429, 7)
    assert client.model_info("acme/moving").repo_id == "acme/moving"


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    assert retry_after("120") == 120
    assert retry_after("Mon, 30 Nov 2026 12:00:30 GMT", now=now) == 30
    assert retry_after("Mon, 30 Nov 2026 11:00:00 GMT", now=now) == 0
    assert retry_after("soon") is None
    assert retry_after(None) is None
