"""The upstream watch against the Hub double: a model imported for real, then its repo changed
upstream (a new commit, gated, deleted, renamed, a rate-limited Hub). Each check records the
state and diff, and the audit trail gets one event per change, never one for a Hub error."""

from __future__ import annotations

import pytest

from imports.models import ImportRequest
from registry.models import AuditEvent, ModelVersion, UpstreamState
from registry.upstream.fetch import Retries
from registry.upstream.watch import watch_pass
from tests.factories import imported
from tests.registry.upstream_support import (
    NEW_WEIGHTS,
    REPO,
    WEIGHTS,
    import_watched_repo,
    relicense_and_retrain,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def upstream(aegis, fresh_hub_double):
    import_watched_repo(aegis, fresh_hub_double)
    return fresh_hub_double


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def retries(waits) -> Retries:
    """Three retries, the waits recorded instead of slept (the double's faults count requests)."""
    return Retries(retries=3, wait=0.5, max_wait=30, sleep=waits.append)


def state() -> UpstreamState:
    return UpstreamState.objects.get(model__name="watched")


def events(action: str = "upstream.changed") -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("sequence"))


def test_an_untouched_repo_is_in_sync_and_nothing_goes_on_the_trail(upstream, retries):
    [result] = watch_pass(retries=retries)

    assert (result.model_name, result.outcome) == ("watched", "in_sync")
    current = state()
    assert current.state == UpstreamState.State.IN_SYNC
    assert current.diff == {} and not current.needs_attention
    assert current.upstream_commit == upstream.resolve(REPO)
    assert current.tracked_revision == "main" and current.checked_at is not None
    assert events() == []


def test_a_new_commit_changing_the_license_and_a_file_is_one_event_needing_attention(
    upstream, retries
):
    before = upstream.resolve(REPO)
    after = relicense_and_retrain(upstream)

    [result] = watch_pass(retries=retries)

    assert (result.outcome, result.needs_attention) == ("changed", True)
    current = state()
    assert current.state == UpstreamState.State.CHANGED and current.needs_attention
    diff = current.diff
    assert diff["commit"] == {
        "revision": "main",
        "before": before,
        "after": after,
        "time": diff["commit"]["time"],
    }
    assert [item["title"] for item in diff["new_commits"]] == ["Relicense and retrain"]
    assert diff["new_commits_complete"] is True
    assert diff["license"] == {"before": "mit", "after": "cc-by-nc-4.0"}
    assert diff["files"]["added"] == [
        {"path": "extra.json", "size": 2, "digest": diff["files"]["added"][0]["digest"]}
    ]
    assert [item["path"] for item in diff["files"]["removed"]] == ["notes.txt"]
    [changed_file] = [item for item in diff["files"]["changed"] if item["path"] != "README.md"]
    assert changed_file["path"] == "model.safetensors"
    assert (changed_file["size_before"], changed_file["size_after"]) == (
        len(WEIGHTS),
        len(NEW_WEIGHTS),
    )
    assert (
        changed_file["digest_after"]
        == "sha256:" + upstream.file_info(REPO, "model.safetensors").sha256
    )
    assert "CC-BY-NC-4.0 is not on the allow-list" in diff["attention"][0]
    [event] = events()
    assert (event.actor, event.object_type, event.model_name) == ("aegis", "model", "watched")
    assert event.details["changes"]["license"] == {"before": "mit", "after": "cc-by-nc-4.0"}
    assert event.details["changes"]["commit"] == {"before": before, "after": after}
    assert event.details["files changed"][-1] == (
        f"model.safetensors ({len(WEIGHTS):,} → {len(NEW_WEIGHTS):,} bytes)"
    )
    assert event.details["files added"] == ["extra.json (2 bytes)"]

    watch_pass(retries=retries)  # nothing new upstream: no second event
    assert len(events()) == 1


def test_a_license_change_the_policy_allows_needs_no_attention(upstream, retries):
    upstream.add_commit(REPO, {"README.md": "---\nlicense: apache-2.0\n---\n"})

    [result] = watch_pass(retries=retries)

    assert (result.outcome, result.needs_attention) == ("changed", False)
    assert state().diff["license"] == {"before": "mit", "after": "apache-2.0"}
    assert "attention" not in state().diff
    assert len(events()) == 1


def test_a_repo_made_gated_is_a_change(upstream, retries):
    upstream.update_repo(REPO, gated=True)

    [result] = watch_pass(retries=retries)

    assert result.outcome == "changed"
    current = state()
    assert current.diff == {"gated": {"before": "no", "after": "manual"}}
    assert not current.needs_attention
    [event] = events()
    assert event.details["changes"] == {"gated": {"before": "no", "after": "manual"}}


def test_a_deleted_repo_is_gone_and_needs_attention(upstream, retries):
    upstream.delete_repo(REPO)

    [result] = watch_pass(retries=retries)

    assert (result.outcome, result.needs_attention) == ("gone", True)
    current = state()
    assert current.state == UpstreamState.State.GONE and current.needs_attention
    assert current.diff["gone"] == "repo"
    assert "is gone from the Hub" in current.diff["attention"][0]
    [event] = events()
    assert event.details["changes"]["repo"] == {"before": REPO, "after": "(the repo is gone)"}
    assert event.details["needs attention"] == current.diff["attention"]


def test_a_renamed_repo_is_followed_to_its_new_id(upstream, retries):
    upstream.rename_repo(REPO, "newco/watched")

    [result] = watch_pass(retries=retries)

    assert (result.outcome, result.needs_attention) == ("changed", False)
    assert state().diff == {"renamed_to": "newco/watched"}
    [event] = events()
    assert event.details["changes"]["repo"] == {"before": REPO, "after": "newco/watched"}


def test_a_hub_answering_429_then_200_is_asked_again_after_retry_after(upstream, retries, waits):
    after = upstream.add_commit(REPO, {"notes.txt": "v2"}, message="Notes")
    upstream.inject_fault(429, times=1, retry_after=2, path_contains=f"/api/models/{REPO}")
    upstream.clear_requests()

    [result] = watch_pass(retries=retries)

    assert result.outcome == "changed"
    assert waits == [2]  # the wait Retry-After asked for
    statuses = [entry.status for entry in upstream.requests if "/api/models/" in entry.path]
    assert statuses == [429, 200, 200]  # model info, again, then the commit listing
    current = state()
    assert current.upstream_commit == after and current.error == ""
    assert len(events()) == 1  # the new commit's; none for the 429


def test_a_hub_that_keeps_answering_429_changes_nothing_and_records_the_error(
    upstream, retries, waits
):
    watch_pass(retries=retries)
    checked = state().checked_at
    upstream.add_commit(REPO, {"notes.txt": "v2"})
    fault = upstream.inject_fault(429, times=None, retry_after=1, path_contains="/api/models/")

    [result] = watch_pass(retries=retries)

    assert (result.outcome, result.rate_limited) == ("error", True)
    assert waits == [1, 1, 1]
    current = state()
    assert current.state == UpstreamState.State.IN_SYNC and current.diff == {}
    assert "HTTP 429" in current.error and "4 attempts" in current.error
    assert checked is not None and current.checked_at == checked
    assert current.attempted_at is not None and current.attempted_at > checked
    assert events() == []

    upstream.clear_faults()
    assert fault.remaining is None
    watch_pass(retries=retries)
    assert state().state == UpstreamState.State.CHANGED and state().error == ""
    assert len(events()) == 1


def test_a_retry_after_beyond_the_bound_is_not_waited_for(upstream, waits):
    upstream.inject_fault(429, times=None, retry_after=3600, path_contains="/api/models/")

    [result] = watch_pass(retries=Retries(retries=3, wait=0.5, max_wait=60, sleep=waits.append))

    assert result.outcome == "error" and waits == []
    assert "longer than AEGIS_UPSTREAM_MAX_WAIT" in state().error
    assert events() == []


def test_the_pass_stops_at_a_rate_limited_check(upstream, retries, aegis):
    upstream.add_repo("acme/zz-second", {"config.json": "{}"}, card_data={"license": "mit"})
    assert imported("acme/zz-second").status == ImportRequest.Status.SUCCEEDED
    upstream.inject_fault(429, times=None, path_contains="/api/models/")

    results = watch_pass(retries=retries)

    assert [(item.model_name, item.outcome) for item in results] == [
        ("watched", "error"),
        ("zz-second", "skipped"),
    ]


def test_importing_the_new_commit_brings_the_model_back_in_sync(upstream, retries):
    after = upstream.add_commit(REPO, {"notes.txt": "v2"}, message="Notes")
    watch_pass(retries=retries)
    assert state().state == UpstreamState.State.CHANGED

    request = imported(REPO, "watched", "2")
    assert request.status == ImportRequest.Status.SUCCEEDED, request.error
    watch_pass(retries=retries)

    current = state()
    assert current.state == UpstreamState.State.IN_SYNC and current.diff == {}
    assert current.baseline is not None and current.baseline.version == "2"
    assert current.upstream_commit == after
    [event] = events("upstream.in_sync")
    assert event.details["version"] == "2"


def test_a_rejected_newer_version_is_not_the_baseline(upstream, retries):
    after = upstream.add_commit(REPO, {"notes.txt": "v2"}, message="Notes")
    assert imported(REPO, "watched", "2").status == ImportRequest.Status.SUCCEEDED
    ModelVersion.objects.filter(version="2").update(status=ModelVersion.Status.REJECTED)

    [result] = watch_pass(retries=retries)

    current = state()
    assert result.outcome == "changed"
    assert current.baseline is not None and current.baseline.version == "1"
    assert current.diff["commit"]["after"] == after
