"""Must-show 2, in Chromium: a viewer sees no Import button, and a POST to import gets 403."""

from __future__ import annotations

import pytest

from imports.models import ImportRequest
from tests.browser.chromium import Screenshots, chromium_page, require_chromium, sign_in
from tests.factories import PASSWORD, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


def test_it_shows_a_viewer_no_import_button_and_refuses_their_post(hub, live_server, request):
    require_chromium()
    from playwright.sync_api import expect

    make_user("bob", "viewer")
    shots = Screenshots(request.node.name)

    with chromium_page(live_server.url) as page:
        sign_in(page, "bob", PASSWORD)
        page.goto("/hub/acme/tiny-bert/")
        expect(page.locator("#model-card h1")).to_have_text("Tiny BERT")
        expect(page.locator("#import-button")).to_have_count(0)
        expect(page.locator("form#import-form")).to_have_count(0)
        expect(page.get_by_role("button", name="Import")).to_have_count(0)
        shots(page, "viewer-model-page")

        # A hand-made POST with a valid CSRF token: refused by the view's own permission check.
        token = page.locator("input[name=csrfmiddlewaretoken]").first.get_attribute("value")
        response = page.request.post(
            "/hub/acme/tiny-bert/import/",
            form={
                "csrfmiddlewaretoken": token,
                "model_name": "tiny-bert",
                "version": "1.0",
                "revision": "main",
                "register": "on",
            },
            headers={"Referer": live_server.url + "/hub/acme/tiny-bert/"},
        )
        assert response.status == 403
        assert "You need to be in the importer group to import models" in response.text()
        page.set_content(response.text())
        shots(page, "viewer-post-refused")

    assert not ImportRequest.objects.exists()
