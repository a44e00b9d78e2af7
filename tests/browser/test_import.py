"""Must-show 1, in Chromium: an importer searches, reads the card, imports, watches, opens it."""

from __future__ import annotations

import re

import pytest

from imports.models import ImportRequest
from registry.models import ModelVersion
from tests.browser.chromium import (
    Screenshots,
    chromium_page,
    require_chromium,
    sign_in,
    start_worker_thread,
)
from tests.factories import PASSWORD, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def test_it_imports_a_model_while_the_importer_watches(aegis, live_server, request):
    require_chromium()
    from playwright.sync_api import expect

    make_user("alice", "importer")
    shots = Screenshots(request.node.name)
    commit = aegis.hub.resolve("acme/tiny-bert")

    with chromium_page(live_server.url) as page:
        sign_in(page, "alice", PASSWORD)
        shots(page, "signed-in")

        page.fill("#id_q", "tiny")  # live search: htmx asks after a short pause
        rows = page.locator("#results tr.result")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-repo", "acme/tiny-bert")
        expect(page).to_have_url(re.compile(r"[?&]q=tiny"))
        shots(page, "live-search-results")

        page.click("#results a[href='/hub/acme/tiny-bert/']")
        expect(page.locator("#model-card h1")).to_have_text("Tiny BERT")
        expect(page.locator("#model-card")).to_contain_text("A very small BERT for tests.")
        shots(page, "model-page-with-card")

        page.click("#import-button")
        page.wait_for_url(re.compile(r"/imports/\d+/$"))
        expect(page.locator("#import-status")).to_have_text("queued")
        shots(page, "import-queued")

        worker = start_worker_thread()
        expect(page.locator("#import-status")).to_have_text("succeeded", timeout=60_000)
        expect(page.locator("#overall-percent")).to_have_text("100%")
        expect(page.locator("#overall-bar")).to_have_attribute("value", "100")
        expect(page.locator("#progress")).not_to_have_attribute("hx-trigger", re.compile(".*"))
        shots(page, "import-succeeded")
        worker.join(timeout=30)
        assert not worker.is_alive()

        page.click("#registry-link")
        expect(page.locator("#source-commit")).to_have_text(commit)
        shots(page, "registry-entry")

    import_request = ImportRequest.objects.get()
    version = ModelVersion.objects.get()
    assert import_request.status == ImportRequest.Status.SUCCEEDED
    assert import_request.model_version_id == version.pk
    assert (version.source_repo, version.source_commit) == ("acme/tiny-bert", commit)
    assert version.imported_by == "alice"
    assert [path.name for path in shots.taken] == [
        "01-signed-in.png",
        "02-live-search-results.png",
        "03-model-page-with-card.png",
        "04-import-queued.png",
        "05-import-succeeded.png",
        "06-registry-entry.png",
    ]
    assert all(path.stat().st_size > 1000 for path in shots.taken)
