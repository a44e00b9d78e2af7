"""The upstream watch in Chromium: a registry admin (also an importer) asks for a check, sees the
drift badge and the diff on the model page, and imports the new commit in one click."""

from __future__ import annotations

import re

import django_rq
import pytest

from imports.models import ImportRequest
from registry.models import ModelVersion, UpstreamState
from tests.browser.chromium import (
    Screenshots,
    chromium_page,
    require_chromium,
    sign_in,
    start_worker_thread,
)
from tests.factories import PASSWORD, make_user
from tests.registry.upstream_support import (
    REPO,
    WEIGHTS,
    import_watched_repo,
    relicense_and_retrain,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def check_now_and_see_the_diff(page, shots, before: str, after: str) -> None:
    """Press "Check upstream now": the panel follows the queued check until the diff shows."""
    from playwright.sync_api import expect

    page.click("#upstream-check-button")
    expect(page.locator("#upstream-pending")).to_contain_text("asked by rosa")
    worker = start_worker_thread("default")
    expect(page.locator("#upstream-badge a")).to_have_text("changed upstream", timeout=60_000)
    expect(page.locator("#upstream-pending")).to_have_count(0)
    worker.join(timeout=30)
    assert not worker.is_alive()
    expect(page.locator("#upstream-new-commit")).to_have_text(after)
    expect(page.locator("#upstream-commit")).to_contain_text(before[:12])
    expect(page.locator("#upstream-commit")).to_contain_text("Relicense and retrain")
    expect(page.locator("#upstream-license del")).to_have_text("mit")
    expect(page.locator("#upstream-license ins")).to_have_text("apache-2.0")
    weights = page.locator("#upstream-files tr", has_text="model.safetensors")
    expect(weights.locator("td").first).to_have_text("changed")
    expect(weights.locator("td.num").first).to_have_text(f"{len(WEIGHTS)}\xa0bytes")
    expect(page.locator("#upstream-files tr[data-change=added]")).to_contain_text("extra.json")
    expect(page.locator("#upstream-files tr[data-change=removed]")).to_contain_text("notes.txt")
    shots(page, "drift-badge-and-diff")


def import_in_one_click(page, shots, after: str) -> None:
    """The import form under the diff: one click, then the import page until it succeeds."""
    from playwright.sync_api import expect

    button = page.locator("#upstream-import-button")
    expect(button).to_have_text(f"Import {after[:12]} as a new version")
    button.click()
    page.wait_for_url(re.compile(r"/imports/\d+/$"))
    expect(page.locator("#import-status")).to_have_text("queued")
    worker = start_worker_thread("imports")
    expect(page.locator("#import-status")).to_have_text("succeeded", timeout=60_000)
    worker.join(timeout=30)
    shots(page, "new-commit-imported")


def test_the_drift_badge_the_diff_and_the_one_click_import(
    aegis, fresh_hub_double, live_server, request
):
    require_chromium()
    from playwright.sync_api import expect

    import_watched_repo(aegis, fresh_hub_double)
    before = fresh_hub_double.resolve(REPO)
    after = relicense_and_retrain(fresh_hub_double, "apache-2.0")
    make_user("rosa", "registry-admin", "importer")
    django_rq.get_queue("default").empty()
    shots = Screenshots(request.node.name)

    with chromium_page(live_server.url) as page:
        sign_in(page, "rosa", PASSWORD)
        page.goto("/registry/watched/")
        expect(page.locator("#upstream-summary")).to_contain_text("Not compared with the Hub yet")
        expect(page.locator("#upstream-badge")).to_be_empty()
        shots(page, "not-checked-yet")

        check_now_and_see_the_diff(page, shots, before, after)

        page.goto("/registry/")
        expect(page.locator("tr", has_text="watched").locator("[data-upstream]")).to_have_text(
            "changed upstream"
        )
        shots(page, "registry-list-badge")

        page.goto("/registry/watched/")
        import_in_one_click(page, shots, after)

        page.goto("/registry/watched/")
        page.click("#upstream-check-button")
        expect(page.locator("#upstream-pending")).to_contain_text("asked by rosa")
        worker = start_worker_thread("default")  # once queued: a burst worker stops when idle
        expect(page.locator("#upstream-in-sync")).to_be_visible(timeout=60_000)
        expect(page.locator("#upstream-badge")).to_be_empty()
        worker.join(timeout=30)
        shots(page, "in-sync-again")

    version = ModelVersion.objects.get(source_commit=after)
    import_request = ImportRequest.objects.get(model_version=version)
    assert (import_request.actor, import_request.revision) == ("rosa", after)
    assert version.license == "apache-2.0"
    state = UpstreamState.objects.get(model__name="watched")
    assert state.state == UpstreamState.State.IN_SYNC and state.baseline == version
    assert len(shots.taken) == 5 and all(path.stat().st_size > 1000 for path in shots.taken)
